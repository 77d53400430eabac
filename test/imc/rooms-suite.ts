// Rooms over real SIP traffic: users on their own UDP ports talk to Parley's room service.
// Run against each store driver by the *.test.ts files beside it.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA, UserPool } from '../support/ua.js';
import type { SipMessage } from '../../src/sip/index.js';
import { command } from './room-helpers.js';

export function roomsSuite(driver: string, makeDatabase: () => Promise<string | undefined>): void {
  describe(`rooms on ${driver}`, () => {
    let s: TestServer;
    const users = new UserPool(() => s.udp);
    let database: string;
    const imc = { history: 3, max_rate: 10000, rate_burst: 10000, max_members: 60 };

    const user = (name: string) => users.get(name);

    const manager = 'sip:chat-manager@localhost';

    before(async () => {
      database = (await makeDatabase()) ?? `sqlite:${join(mkdtempSync(join(tmpdir(), 'parley-imc-')), 'rooms.db')}`;
      s = await startServer({ database, imc: imc as never });
    });
    after(async () => {
      users.closeAll();
      await s.stop();
    });

    describe('rooms', () => {
      test('create, join, talk: fan-out to members but the sender, with the speaker named', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        assert.match(await command(alice, manager, '#create chat-team'), /created room sip:chat-team@localhost/);
        const joinedNotice = alice.waitForRequest((m) => m.body.toString().includes('has joined'));
        assert.match(await command(bob, 'sip:chat-team@localhost', '#join'), /you joined sip:chat-team@localhost/);
        assert.match((await joinedNotice).body.toString(), /bob/);
        assert.match(await command(carol, manager, '#join chat-team'), /you joined/);
        const atBob = bob.waitForRequest((m) => m.body.toString() === '<alice> hello team');
        const atCarol = carol.waitForRequest((m) => m.body.toString() === '<alice> hello team');
        assert.equal((await alice.message('sip:chat-team@localhost', 'hello team')).status, 200);
        const [b] = await Promise.all([atBob, atCarol]);
        assert.match(b.get('from')!, /<sip:chat-team@localhost>/);
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(alice.received.filter((m) => m.body.toString().includes('hello team')).length, 0, 'the sender gets no copy');
      });

      test('a member whose address holds an escaped "@" joins and gets what the room sends, addressed as registered', async () => {
        const alice = await user('alice');
        // Registered as sip:dora%40home@localhost: the user part is "dora@home".
        const dora = await user('dora%40home');
        assert.match(await command(alice, manager, '#create chat-escaped'), /created room sip:chat-escaped@localhost/);
        assert.match(await command(dora, 'sip:chat-escaped@localhost', '#join'), /you joined sip:chat-escaped@localhost/);
        const copy = dora.waitForRequest((m) => m.body.toString() === '<alice> hello dora');
        assert.equal((await alice.message('sip:chat-escaped@localhost', 'hello dora')).status, 200);
        assert.equal((await copy).get('to'), 'sip:dora%40home@localhost');
        assert.match(await command(alice, 'sip:chat-escaped@localhost', '#members'), /sip:dora%40home@localhost/);
      });

      test('a room named in a command with an escape is the room its address names', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const room = 'sip:chat-two%20words@localhost';
        assert.equal(await command(alice, manager, '#create chat-two%20words'), `created room ${room}; you are its owner`);
        assert.match(await command(bob, room, '#join'), /^you joined sip:chat-two%20words@localhost/);
        assert.match(await command(bob, manager, `#join ${room}`), /^refused: you are already a member of sip:chat-two%20words@localhost$/);
        const got = bob.waitForRequest((m) => m.body.toString() === '<alice> spaced out');
        assert.equal((await alice.message(room, 'spaced out')).status, 200);
        await got;
        assert.ok(s.server.rooms!.listRooms().some((r) => r.uri === room), 'one room, written as its address');
        assert.equal(await command(alice, manager, '#create chat-two words'), 'refused: unknown option "words"; usage: #create [room] [private]');
        assert.equal(await command(alice, manager, '#create chat-line%0Abreak'), 'refused: a room name has no control characters');
        assert.match(await command(alice, manager, '#create chat-%FF'), /^refused: "chat-%FF" is no room's address \(bad escape in "chat-%FF"\)/);
        // Named by the address it is created at: checked as a command's name is.
        assert.equal(await command(alice, `sip:chat-${'x'.repeat(70)}@localhost`, '#create'), 'refused: a room name has 1 to 64 characters');
      });

      test('a non-member writing to a room gets 403 and nothing is broadcast', async () => {
        const dave = await user('dave');
        const bob = await user('bob');
        const before = bob.received.length;
        assert.equal((await dave.message('sip:chat-team@localhost', 'let me in')).status, 403);
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(bob.received.slice(before).filter((m) => m.body.toString().includes('let me in')).length, 0);
      });

      test('a non-text body is relayed as what it is, not as a chat line', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const composing = '<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>';
        const got = bob.waitForRequest((m) => m.get('content-type') === 'application/im-iscomposing+xml');
        await alice.message('sip:chat-team@localhost', composing, [], 'application/im-iscomposing+xml');
        assert.equal((await got).body.toString(), composing);
      });

      test('private room: invitation, accept and reject; only invited users may join', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        assert.match(await command(alice, manager, '#create chat-secret private'), /created private room/);
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#join'), /refused: .*private.*invitation/);
        const invitation = bob.waitForRequest((m) => m.body.toString().includes('invites you'));
        assert.match(await command(alice, 'sip:chat-secret@localhost', '#invite bob'), /invited sip:bob@localhost/);
        assert.match((await invitation).body.toString(), /#accept/);
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#accept'), /you joined/);
        assert.match(await command(alice, 'sip:chat-secret@localhost', '#invite sip:carol@localhost'), /invited/);
        assert.match(await command(carol, manager, '#deny chat-secret'), /declined/);
        const members = await command(alice, 'sip:chat-secret@localhost', '#members');
        assert.match(members, /alice <sip:alice@localhost> owner/);
        assert.match(members, /bob <sip:bob@localhost> member/);
        assert.doesNotMatch(members, /carol/);
      });

      test('permissions: members cannot remove or invite; admins cannot remove the owner; the owner sets roles', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await user('carol');
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#invite carol'), /refused: only the owner and admins/);
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#modify bob admin'), /refused: only the owner may change roles/);
        assert.match(await command(alice, 'sip:chat-secret@localhost', '#role bob admin'), /sip:bob@localhost is now admin/);
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#remove alice'), /refused: the owner cannot be removed/);
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#add carol'), /added sip:carol@localhost/);
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#remove carol'), /removed sip:carol@localhost/);
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#destroy'), /refused: only the owner may destroy/);
      });

      test('nick and topic show up in the room', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        // A right-to-left override would show "<ecila> ..." lines as Alice's.
        assert.equal(await command(bob, 'sip:chat-team@localhost', '#nick \u202eecila'), 'refused: a nick has at most 32 characters and no <, >, " or control characters');
        assert.match(await command(bob, 'sip:chat-team@localhost', '#nick bobby'), /your nick .* is bobby/);
        assert.match(await command(bob, 'sip:chat-team@localhost', '#topic plans for friday'), /refused: only the owner and admins/);
        assert.match(await command(alice, 'sip:chat-team@localhost', '#topic plans for friday'), /topic set/);
        assert.match(await command(bob, 'sip:chat-team@localhost', '#topic'), /topic of sip:chat-team@localhost: plans for friday/);
        const atAlice = alice.waitForRequest((m) => m.body.toString() === '<bobby> hi');
        await bob.message('sip:chat-team@localhost', 'hi');
        assert.match((await atAlice).get('from')!, /^"bobby" <sip:chat-team@localhost>/);
        assert.match(await command(alice, manager, '#rooms'), /sip:chat-team@localhost 3 members - plans for friday/);
        assert.doesNotMatch(await command(alice, manager, '#rooms'), /chat-secret/);
      });

      test('a user part that would show as someone else stands escaped as its default nick', async () => {
        const alice = await user('alice');
        // U+202E, a right-to-left override: unescaped, "<\u202eecila>" shows as "<alice>".
        const mallory = await user('%E2%80%AEecila');
        assert.match(await command(alice, manager, '#create chat-bidi'), /created room/);
        assert.match(await command(mallory, 'sip:chat-bidi@localhost', '#join'), /you joined/);
        const seen = alice.waitForRequest((m) => m.body.toString().endsWith('> trust me'));
        assert.equal((await mallory.message('sip:chat-bidi@localhost', 'trust me')).status, 200);
        assert.equal((await seen).body.toString(), '<%E2%80%AEecila> trust me');
      });

      test('history: a member who joins gets the last messages with their original Date', async () => {
        const alice = await user('alice');
        for (const n of [1, 2, 3, 4]) await alice.message('sip:chat-team@localhost', `history ${n}`);
        const erin = await user('erin');
        const last = erin.waitForRequest((m) => m.body.toString() === '<alice> history 4');
        await command(erin, 'sip:chat-team@localhost', '#join');
        const got = await last;
        assert.ok(got.get('date'));
        const bodies = erin.received.map((m) => m.body.toString()).filter((b) => b.startsWith('<alice> history'));
        assert.deepEqual(bodies, ['<alice> history 2', '<alice> history 3', '<alice> history 4'], 'the last 3 (imc.history), in order');
        // The next member who joins gets the same history, each message a request of its own.
        const frank = await user('frank');
        const atFrank = frank.waitForRequest((m) => m.body.toString() === '<alice> history 4');
        await command(frank, 'sip:chat-team@localhost', '#join');
        const again = await atFrank;
        assert.equal(again.get('date'), got.get('date'));
        assert.notEqual(again.callId, got.callId);
        assert.deepEqual(frank.received.map((m) => m.body.toString()).filter((b) => b.startsWith('<alice> history')), bodies);
      });

      test('an offline member gets room messages when registering again', async () => {
        const alice = await user('alice');
        const erin = await user('erin');
        assert.equal((await erin.register(0)).status, 200);
        assert.equal((await alice.message('sip:chat-team@localhost', 'while you were away')).status, 200);
        await new Promise((r) => setTimeout(r, 300));
        const got = erin.waitForRequest((m) => m.body.toString() === '<alice> while you were away');
        await erin.register();
        assert.ok(await got);
      });

      test('malformed commands get a clear reply and change nothing', async () => {
        const alice = await user('alice');
        const roomsBefore = JSON.stringify(s.server.rooms!.listRooms());
        assert.match(await command(alice, manager, '#frobnicate'), /refused: unknown command "frobnicate"; send #help/);
        assert.match(await command(alice, manager, '#create'), /refused: name the room, or send the command to the room; usage: #create \[room\] \[private\]/);
        assert.match(await command(alice, manager, '#create chat-x public'), /refused: unknown option "public"/);
        assert.match(await command(alice, manager, '#create chat-a@example.org'), /refused: rooms live only in localhost/);
        assert.match(await command(alice, manager, '#create chat-manager'), /refused: .*(manager|must match)/);
        assert.match(await command(alice, manager, '#create bad<room>'), /refused: .*characters/);
        assert.match(await command(alice, manager, `#create chat-${'x'.repeat(80)}`), /refused: a room name has 1 to 64 characters/);
        assert.match(await command(alice, 'sip:chat-team@localhost', '#invite sip:bob@bad_host'), /refused: "sip:bob@bad_host" is not a user address/);
        assert.match(await command(alice, manager, '#join'), /refused: name the room/);
        assert.match(await command(alice, manager, '#create chat-nul\0x'), /refused/);
        const big = alice.waitForRequest((m) => m.body.toString().includes('larger than'));
        assert.equal((await alice.message(manager, `#create chat-${'y'.repeat(10 * 1024)}`)).status, 413);
        await big;
        const latin1 = alice.waitForRequest((m) => m.body.toString().includes('not valid UTF-8'));
        assert.equal((await alice.message(manager, Buffer.from('#create chat-caf\xe9', 'latin1'), [], 'text/plain;charset=iso-8859-1')).status, 415);
        await latin1;
        assert.equal(JSON.stringify(s.server.rooms!.listRooms()), roomsBefore, 'no room created or changed');
      });

      test('the owner leaving destroys the room, and the members are told', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const told = bob.waitForRequest((m) => m.body.toString().includes('the room is closed'));
        assert.match(await command(alice, 'sip:chat-secret@localhost', '#leave'), /destroyed/);
        await told;
        assert.equal(s.server.rooms!.findRoom('chat-secret'), undefined);
        assert.match(await command(bob, manager, '#join chat-secret'), /created room/, 'the name is free again (create_on_join)');
        assert.match(await command(bob, 'sip:chat-secret@localhost', '#destroy'), /destroyed/);
      });
    });

    describe('persistence', () => {
      test('a restart keeps rooms, members, roles and nicks', async () => {
        const before = s.server.rooms!.listMembers('chat-team');
        await s.stop();
        s = await startServer({ database, imc: imc as never });
        assert.deepEqual(s.server.rooms!.listMembers('chat-team'), before);
        assert.ok(before!.some((m) => m.nick === 'bobby'));
        assert.equal(s.server.rooms!.findRoom('chat-team')?.topic, 'plans for friday');
        users.closeAll();
      });
    });

    describe('load', () => {
      test('a burst of 500 room messages to 50 members: all delivered, in order per member, none twice', async () => {
        const owner = await user('boss');
        await command(owner, manager, '#create chat-load');
        const members: TestUA[] = [];
        for (let i = 0; i < 49; i++) {
          const m = await user(`load${i}`);
          await command(m, 'sip:chat-load@localhost', '#join');
          members.push(m);
        }
        await new Promise((r) => setTimeout(r, 500));
        const sends: Promise<SipMessage>[] = [];
        for (let n = 0; n < 500; n++) sends.push(owner.message('sip:chat-load@localhost', `burst ${n}`));
        const statuses = await Promise.all(sends);
        assert.ok(statuses.every((r) => r.status === 200));
        const deadline = Date.now() + 60_000;
        const count = (m: TestUA) => m.received.filter((r) => r.body.toString().startsWith('<boss> burst ')).length;
        while (Date.now() < deadline && members.some((m) => count(m) < 500)) await new Promise((r) => setTimeout(r, 200));
        for (const m of members) {
          const bodies = m.received.map((r) => r.body.toString()).filter((b) => b.startsWith('<boss> burst '));
          assert.equal(bodies.length, 500, `${m.options.user} got ${bodies.length}`);
          assert.deepEqual(bodies, Array.from({ length: 500 }, (_, n) => `<boss> burst ${n}`), `${m.options.user}: in order, none twice`);
        }
      });
    });
  });
}
