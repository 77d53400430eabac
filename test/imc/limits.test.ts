// The room limits, with small configured values: members per room, rooms per user, messages per
// second per sender, body size. Each is refused with a clear answer and changes nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { UserPool } from '../support/ua.js';
import { command, receivedWith, sleep } from './room-helpers.js';
import { eventually } from '../support/eventually.js';
import { sample, scrape } from '../admin/client.js';

describe('room limits', () => {
  let s: TestServer;
  const users = new UserPool(() => s.udp);
  const manager = 'sip:chat-manager@localhost';

  const user = (name: string) => users.get(name);

  before(async () => {
    s = await startServer({ imc: { max_members: 3, max_rooms_per_user: 2, max_rate: 1, rate_burst: 3, max_body: 200, history: 0 } });
  });
  after(async () => {
    users.closeAll();
    await s.stop();
  });

  test('max_members: a join beyond it is refused and the room stays as it was', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const carol = await user('carol');
    const dave = await user('dave');
    const room = 'sip:chat-full@localhost';
    assert.match(await command(alice, manager, '#create chat-full'), /created room/);
    assert.match(await command(bob, room, '#join'), /you joined/);
    assert.match(await command(carol, room, '#join'), /you joined/);
    const membersBefore = s.server.rooms!.listMembers('chat-full');
    const seenBefore = [alice, bob, carol].map((a) => a.received.length);

    assert.match(await command(dave, room, '#join'), /^refused: sip:chat-full@localhost is full \(3 members\)$/);
    assert.match(await command(alice, room, '#add dave'), /^refused: sip:chat-full@localhost is full \(3 members\)$/);
    assert.match(await command(alice, room, '#invite dave'), /^refused: .*is full/);

    assert.deepEqual(s.server.rooms!.listMembers('chat-full'), membersBefore);
    assert.equal(membersBefore!.length, 3);
    const members = await command(dave, room, '#members');
    assert.match(members, /members of sip:chat-full@localhost \(3\)/);
    assert.doesNotMatch(members, /dave/);
    assert.equal((await dave.message(room, 'am I in?')).status, 403, 'dave is not a member');
    await sleep(200);
    // Nobody was told of a joining (or added, or invited) dave; alice got only the refusals.
    assert.deepEqual(receivedWith(bob, 'dave', seenBefore[1]), []);
    assert.deepEqual(receivedWith(carol, 'dave', seenBefore[2]), []);
    assert.ok(receivedWith(alice, 'dave', seenBefore[0]).every((m) => m.body.toString().startsWith('refused')));
  });

  test('max_rooms_per_user: a further #create (or #join creating a room) is refused', async () => {
    const erin = await user('erin');
    assert.match(await command(erin, manager, '#create chat-e1'), /created room/);
    assert.match(await command(erin, manager, '#create chat-e2 private'), /created private room/);
    const roomsBefore = JSON.stringify(s.server.rooms!.listRooms());
    assert.match(await command(erin, manager, '#create chat-e3'), /^refused: you own 2 rooms, the most allowed$/);
    assert.match(await command(erin, manager, '#join chat-e4'), /^refused: you own 2 rooms, the most allowed$/);
    assert.equal(JSON.stringify(s.server.rooms!.listRooms()), roomsBefore);
    assert.match(await command(erin, manager, '#members chat-e3'), /^refused: no room sip:chat-e3@localhost$/);
    // Others still may create, and erin may again once she destroyed one.
    assert.match(await command(await user('frank'), manager, '#create chat-f1'), /created room/);
    assert.match(await command(erin, 'sip:chat-e1@localhost', '#destroy'), /destroyed/);
    assert.match(await command(erin, manager, '#create chat-e3'), /created room/);
  });

  test('max_rate / rate_burst: a sender over the rate gets 503 with Retry-After, the excess is not broadcast', async () => {
    const gina = await user('gina');
    const hank = await user('hank');
    const room = 'sip:chat-rate@localhost';
    assert.match(await command(gina, manager, '#create chat-rate'), /created room/);
    assert.match(await command(hank, room, '#join'), /you joined/);
    const start = hank.received.length;
    const statuses: number[] = [];
    let refused: { status: number; reason?: string; retryAfter?: string } | undefined;
    for (let n = 1; n <= 6; n++) {
      const response = await gina.message(room, `rate ${n}`);
      statuses.push(response.status);
      if (response.status !== 200 && !refused) refused = { status: response.status, reason: response.reason, retryAfter: response.get('retry-after') };
    }
    // rate_burst 3 pass at once; the rest, within the same second, is refused (a slow machine may
    // have refilled one token by the last ones: max_rate 1/s).
    assert.deepEqual(statuses.slice(0, 4), [200, 200, 200, 503], `statuses ${statuses.join(' ')}`);
    assert.ok(statuses.filter((x) => x === 503).length >= 2, `statuses ${statuses.join(' ')}`);
    const accepted = statuses.flatMap((x, i) => (x === 200 ? [`<gina> rate ${i + 1}`] : []));
    assert.equal(refused?.status, 503);
    assert.match(refused?.reason ?? '', /too fast/, 'the reason phrase says why');
    assert.match(refused?.retryAfter ?? '', /^\d+/, 'a Retry-After header');
    assert.ok(Number.parseInt(refused!.retryAfter!, 10) >= 1);
    // Commands are not messages: gina can still talk to the room service.
    assert.match(await command(gina, room, '#members'), /members of sip:chat-rate@localhost \(2\)/);
    await sleep(300);
    const got = receivedWith(hank, 'rate ', start).map((m) => m.body.toString());
    assert.deepEqual(got, accepted, 'only what was accepted is broadcast');
    assert.ok(!got.includes('<gina> rate 4'), 'the first refused one is not broadcast');
    // Another sender has a bucket of its own.
    const atGina = gina.waitForRequest((m) => m.body.toString() === '<hank> mine');
    assert.equal((await hank.message(room, 'mine')).status, 200);
    await atGina;
    // After a while (max_rate 1/s) gina may post again.
    await sleep(1100);
    const later = hank.waitForRequest((m) => m.body.toString() === '<gina> later');
    assert.equal((await gina.message(room, 'later')).status, 200);
    await later;
  });

  test('max_body: a larger message gets 413 and a reply saying why, and is not broadcast', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const room = 'sip:chat-full@localhost';
    const start = bob.received.length;
    const reply = alice.waitForRequest((m) => m.body.toString().includes('larger than'));
    const big = `big ${'x'.repeat(300)}`;
    assert.equal((await alice.message(room, big)).status, 413);
    assert.equal((await reply).body.toString(), 'refused: message larger than 200 bytes');
    assert.match((await reply).get('from') ?? '', /sip:chat-full@localhost/);
    // A command over the limit too.
    const cmdReply = alice.waitForRequest((m) => m.body.toString().includes('larger than'));
    assert.equal((await alice.message(manager, `#create chat-${'y'.repeat(250)}`)).status, 413);
    await cmdReply;
    // Exactly at the limit is fine.
    const fits = `fits ${'z'.repeat(195)}`;
    assert.equal(Buffer.byteLength(fits), 200);
    const atBob = bob.waitForRequest((m) => m.body.toString() === `<alice> ${fits}`);
    assert.equal((await alice.message(room, fits)).status, 200);
    await atBob;
    await sleep(200);
    assert.equal(receivedWith(bob, 'big ', start).length, 0, 'the large message was not broadcast');
  });
});

describe('room deliveries behind', () => {
  let s: TestServer;
  const users = new UserPool(() => s.udp);

  before(async () => {
    s = await startServer({ imc: { max_backlog: 2, history: 0 } });
  });
  after(async () => {
    users.closeAll();
    await s.stop();
  });

  test('max_backlog: with that many posts waiting for a member, a new post gets 503 with Retry-After, and 200 again once they are delivered', async () => {
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((name) => users.get(name)));
    const room = 'sip:chat-slow@localhost';
    assert.match(await command(alice, 'sip:chat-manager@localhost', '#create chat-slow'), /created room/);
    assert.match(await command(bob, room, '#join'), /you joined/);
    assert.match(await command(carol, room, '#join'), /you joined/);

    bob.answer = null;
    assert.equal((await alice.message(room, 'one')).status, 200);
    assert.equal((await alice.message(room, 'two')).status, 200);
    const refused = await alice.message(room, 'three');
    assert.equal(refused.status, 503);
    assert.equal(refused.reason, 'Service Unavailable (room deliveries are behind)');
    assert.equal(refused.get('retry-after'), '5');
    assert.equal(sample((await scrape(s)).text, 'parley_imc_pending'), 2, 'both waiting posts show in the metrics');

    bob.answer = 200;
    // Pipelined, both may have reached bob already, unanswered: they are delivered once he answers their retransmissions.
    await eventually(async () => sample((await scrape(s)).text, 'parley_imc_pending') === 0 || undefined, 'both posts delivered', 15_000);
    assert.equal(receivedWith(bob, 'two').length, 1);
    const four = bob.waitForRequest((m) => m.body.toString() === '<carol> four');
    assert.equal((await carol.message(room, 'four')).status, 200);
    await four;
    assert.deepEqual(receivedWith(bob, 'three'), [], 'the refused post went nowhere');
    await eventually(async () => sample((await scrape(s)).text, 'parley_imc_pending') === 0 || undefined, 'no post pending once delivered');
  });
});
