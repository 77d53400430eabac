// Room options as a user sees them: extra_hdrs on everything the room service sends, message/cpim
// bodies (cpim: true), #join of a missing room refused (create_on_join: false), and no room at a
// known user's address (check_on_create: true).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { computeHa1 } from '../../src/registrar/index.js';
import type { SipMessage } from '../../src/sip/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { UserPool } from '../support/ua.js';
import { command, commandMessage } from './room-helpers.js';

describe('room options', () => {
  let s: TestServer;
  const users = new UserPool(() => s.udp);
  const manager = 'sip:chat-manager@localhost';
  const room = 'sip:chat-opts@localhost';

  const user = (name: string) => users.get(name);

  const xRoom = (m: SipMessage) => m.getAll('x-room');

  before(async () => {
    s = await startServer({ imc: { extra_hdrs: 'X-Room: parley', cpim: true, create_on_join: false, check_on_create: true, history: 5 } });
  });
  after(async () => {
    users.closeAll();
    await s.stop();
  });

  test('extra_hdrs is on command replies, event notices and room messages', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const created = await commandMessage(alice, manager, '#create chat-opts');
    assert.match(created.body.toString(), /created room sip:chat-opts@localhost/);
    assert.deepEqual(xRoom(created), ['parley'], 'on the reply of the manager');
    const joined = alice.waitForRequest((m) => m.body.toString().includes('has joined'));
    const join = await commandMessage(bob, room, '#join');
    assert.match(join.body.toString(), /you joined/);
    assert.deepEqual(xRoom(join), ['parley'], 'on the reply of the room');
    assert.deepEqual(xRoom(await joined), ['parley'], 'on the event notice');
    const refusal = await commandMessage(bob, room, '#destroy');
    assert.match(refusal.body.toString(), /^refused: only the owner/);
    assert.deepEqual(xRoom(refusal), ['parley'], 'on a refusal');
    const atBob = bob.waitForRequest((m) => m.body.toString().includes('with headers'));
    assert.equal((await alice.message(room, 'with headers')).status, 200);
    assert.deepEqual(xRoom(await atBob), ['parley'], 'on a room message');
  });

  test('cpim: room messages are message/cpim carrying the sender, a DateTime and the inner text', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    assert.match(await command(alice, room, '#nick ally'), /your nick .* is ally/);
    const sent = Date.now();
    const atBob = bob.waitForRequest((m) => m.body.toString().includes('héllo in cpim'));
    assert.equal((await alice.message(room, 'héllo in cpim')).status, 200);
    const got = await atBob;
    assert.match(got.get('content-type') ?? '', /^message\/cpim/i);
    assert.match(got.get('from') ?? '', /^"ally" <sip:chat-opts@localhost>/, 'SIP From: the room, with the nick');
    const text = got.body.toString('utf8');
    const [cpimHeaders, mimeHeaders, ...inner] = text.split('\r\n\r\n');
    assert.match(cpimHeaders!, /^From: "ally" <sip:alice@localhost>$/m, 'the real sender in CPIM From');
    assert.match(cpimHeaders!, /^To: <sip:chat-opts@localhost>$/m);
    const dateTime = /^DateTime: (.+)$/m.exec(cpimHeaders!)?.[1];
    assert.ok(dateTime, 'a DateTime header');
    const at = Date.parse(dateTime);
    assert.ok(at >= sent - 1000 && at <= Date.now() + 1000, `DateTime ${dateTime} is the time of sending`);
    assert.match(mimeHeaders!, /^Content-Type: text\/plain/im);
    assert.equal(inner.join('\r\n\r\n'), 'héllo in cpim', 'the inner body is the text as sent, not "<nick> text"');
    // History on join comes in the same form, with its original DateTime.
    const carol = await user('carol');
    const replayed = carol.waitForRequest((m) => m.body.toString().includes('héllo in cpim'));
    assert.match(await command(alice, room, '#add carol'), /added sip:carol@localhost/);
    const history = await replayed;
    assert.match(history.get('content-type') ?? '', /^message\/cpim/i);
    assert.match(history.body.toString(), new RegExp(`^DateTime: ${dateTime.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  });

  test('create_on_join: false: #join of a missing room is refused and creates nothing', async () => {
    const dave = await user('dave');
    assert.match(await command(dave, manager, '#join chat-missing'), /^refused: no room sip:chat-missing@localhost$/);
    assert.match(await command(dave, 'sip:chat-missing2@localhost', '#join'), /^refused: no room sip:chat-missing2@localhost$/);
    assert.equal(s.server.rooms!.findRoom('chat-missing'), undefined);
    assert.equal(s.server.rooms!.findRoom('chat-missing2'), undefined);
    assert.match(await command(dave, manager, '#rooms'), /^public rooms in localhost \(1\):\nsip:chat-opts@localhost/);
    assert.match(await command(dave, room, '#join'), /you joined/, 'an existing room can still be joined');
  });

  test("check_on_create: true: no room at a registered or provisioned user's address", async () => {
    await user('chat-bob');
    await s.server.store.users.put({ username: 'chat-carol', domain: 'localhost', ...computeHa1('chat-carol', 'localhost', 'secret') });
    const erin = await user('erin');
    assert.match(await command(erin, manager, '#create chat-bob'), /^refused: sip:chat-bob@localhost is a user's address$/);
    assert.match(await command(erin, manager, '#create chat-carol private'), /^refused: sip:chat-carol@localhost is a user's address$/);
    assert.equal(s.server.rooms!.findRoom('chat-bob'), undefined);
    assert.equal(s.server.rooms!.findRoom('chat-carol'), undefined);
    assert.match(await command(erin, manager, '#create chat-erin'), /created room sip:chat-erin@localhost/, 'a free address is fine');
  });
});
