// The room's side of a conversation as a chat client shows it: #create answered from the new room's
// address (Kamailio's imc does so), a room created by writing #create to its address, an empty
// message refused rather than shown as a blank line, and the owner and admins of a private room
// told who tried to join, so they may invite.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNameAddr } from '../../src/sip/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { UserPool } from '../support/ua.js';
import { command, receivedWith } from './room-helpers.js';

describe('room conversations', () => {
  let s: TestServer;
  const users = new UserPool(() => s.udp);
  const manager = 'sip:chat-manager@localhost';

  before(async () => {
    s = await startServer({ imc: { history: 0 } });
  });
  after(async () => {
    users.closeAll();
    await s.stop();
  });

  test('#create to the manager is confirmed from the new room, where the conversation goes on', async () => {
    const alice = await users.get('alice');
    const confirmation = alice.waitForRequest((m) => m.body.toString().startsWith('created room'));
    assert.equal((await alice.message(manager, '#create chat-home')).status, 200);
    const created = await confirmation;
    assert.equal(created.body.toString(), 'created room sip:chat-home@localhost; you are its owner');
    const room = parseNameAddr(created.get('from')!).uri;
    assert.equal(room, 'sip:chat-home@localhost', 'From is the room, not the manager');
    // Answering that message is writing to the room.
    assert.match(await command(alice, room, '#members'), /^members of sip:chat-home@localhost \(1\):\nalice <sip:alice@localhost> owner$/);
  });

  test('#create with no name, written to a room address, creates that room', async () => {
    const bob = await users.get('bob');
    assert.equal(await command(bob, 'sip:chat-by-uri@localhost', '#create'), 'created room sip:chat-by-uri@localhost; you are its owner');
    assert.equal(await command(bob, 'sip:chat-by-uri2@localhost', '#create private'), 'created private room sip:chat-by-uri2@localhost; you are its owner');
    assert.deepEqual(
      s.server.rooms!.listRooms().filter((r) => r.uri.startsWith('sip:chat-by-uri')),
      [
        { uri: 'sip:chat-by-uri@localhost', private: false, members: 1, topic: undefined },
        { uri: 'sip:chat-by-uri2@localhost', private: true, members: 1, topic: undefined },
      ],
    );
    assert.equal(await command(bob, 'sip:chat-by-uri@localhost', '#create'), 'refused: sip:chat-by-uri@localhost exists already');
    assert.equal(await command(bob, manager, '#create'), 'refused: name the room, or send the command to the room; usage: #create [room] [private]');
  });

  test('an empty or blank message to a room gets 400 and is not fanned out', async () => {
    const alice = await users.get('alice');
    const carol = await users.get('carol');
    const room = 'sip:chat-home@localhost';
    assert.match(await command(carol, room, '#join'), /you joined/);
    const seen = carol.received.length;
    for (const body of ['', ' ', ' \r\n\t ']) {
      const response = await alice.message(room, body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.equal(response.reason, 'Bad Request (empty message)');
    }
    // Each member's deliveries keep their order: once this one is in, a blank line would be too.
    const next = carol.waitForRequest((m) => m.body.toString() === '<alice> after the blanks');
    assert.equal((await alice.message(room, 'after the blanks')).status, 200);
    await next;
    assert.deepEqual(receivedWith(carol, '<alice>', seen).map((m) => m.body.toString()), ['<alice> after the blanks']);
  });

  test('#join of a private room without invitation is refused, and its owner and admins are told who tried', async () => {
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((name) => users.get(name)));
    const room = 'sip:chat-club@localhost';
    assert.match(await command(alice, manager, '#create chat-club private'), /created private room/);
    assert.match(await command(alice, room, '#add bob'), /added/);
    assert.match(await command(alice, room, '#modify bob admin'), /is now admin/);
    assert.match(await command(alice, room, '#add carol'), /added/);
    const carolSeen = carol.received.length;

    const knock = '*** sip:dave@localhost tried to join; #invite sip:dave@localhost to let them in';
    const atAlice = alice.waitForRequest((m) => m.body.toString() === knock);
    const atBob = bob.waitForRequest((m) => m.body.toString() === knock);
    assert.equal(await command(dave, room, '#join'), 'refused: sip:chat-club@localhost is private: you need an invitation');
    const [toOwner, toAdmin] = await Promise.all([atAlice, atBob]);
    assert.equal(parseNameAddr(toOwner.get('from')!).uri, room, 'told by the room');
    assert.equal(parseNameAddr(toAdmin.get('from')!).uri, room);
    // Carol, a plain member, is not told: a post after it reaches her with nothing before it.
    const post = carol.waitForRequest((m) => m.body.toString() === '<alice> welcome soon');
    assert.equal((await alice.message(room, 'welcome soon')).status, 200);
    await post;
    assert.deepEqual(receivedWith(carol, 'tried to join', carolSeen), []);
    assert.deepEqual(s.server.rooms!.listMembers('chat-club')!.map((m) => m.uri), ['sip:alice@localhost', 'sip:bob@localhost', 'sip:carol@localhost']);

    // What the notice suggests lets dave in.
    assert.match(await command(bob, room, '#invite sip:dave@localhost'), /invited sip:dave@localhost/);
    const told = [alice, bob, carol].map((member) => member.waitForRequest((m) => m.body.toString() === '*** dave (sip:dave@localhost) has joined the room'));
    assert.match(await command(dave, room, '#accept'), /you joined sip:chat-club@localhost/);
    await Promise.all(told);
  });
});
