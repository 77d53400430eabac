// Identity of room senders when authentication is on (auth.policy: required): commands and messages are
// taken from digest-authenticated senders only; a From of a foreign domain, which Parley cannot check,
// is not trusted, even when that address is a member of the room.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { computeHa1 } from '../../src/registrar/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { command, receivedWith, sleep } from './room-helpers.js';

describe('room identity with auth.policy: required', () => {
  let s: TestServer;
  const agents: TestUA[] = [];
  let alice: TestUA;
  let bob: TestUA;
  /** x@example.org, a foreign user with no credentials here; Parley reaches it through imc.outbound_proxy. */
  let x: TestUA;
  const manager = 'sip:chat-manager@localhost';
  const room = 'sip:chat-id@localhost';

  async function ua(user: string, options: { password?: string; domain?: string } = {}): Promise<TestUA> {
    const agent = await TestUA.create({ user, server: s?.udp ?? { host: '127.0.0.1', port: 9 }, ...options });
    agents.push(agent);
    return agent;
  }

  before(async () => {
    x = await ua('x', { domain: 'example.org' });
    s = await startServer({ auth: { policy: 'required' }, imc: { outbound_proxy: `sip:127.0.0.1:${x.localPort}`, history: 0 } });
    x.options.server = s.udp;
    for (const [username, password] of [['alice', 'alice-secret'], ['bob', 'bob-secret']] as const) {
      await s.server.store.users.put({ username, domain: 'localhost', ...computeHa1(username, 'localhost', password) });
    }
    alice = await ua('alice', { password: 'alice-secret' });
    bob = await ua('bob', { password: 'bob-secret' });
    assert.equal((await alice.register()).status, 200);
    assert.equal((await bob.register()).status, 200);
  });
  after(async () => {
    for (const agent of agents) agent.close();
    await s.stop();
  });

  test('authenticated members create, join, add and talk', async () => {
    assert.match(await command(alice, manager, '#create chat-id'), /created room sip:chat-id@localhost/);
    assert.match(await command(bob, room, '#join'), /you joined sip:chat-id@localhost/);
    const added = x.waitForRequest((m) => m.body.toString().includes('added you'));
    assert.match(await command(alice, room, '#add sip:x@example.org'), /added sip:x@example.org/);
    assert.match((await added).body.toString(), /alice added you to sip:chat-id@localhost/);
    const atBob = bob.waitForRequest((m) => m.body.toString() === '<alice> authenticated hello');
    const atX = x.waitForRequest((m) => m.body.toString() === '<alice> authenticated hello');
    assert.equal((await alice.message(room, 'authenticated hello')).status, 200);
    await Promise.all([atBob, atX]);
    const members = await command(bob, room, '#members');
    assert.match(members, /x <sip:x@example.org> member/);
  });

  test('an unauthenticated sender of a foreign domain is refused 403 and nothing is broadcast, member or not', async () => {
    const seen = [alice.received.length, bob.received.length];
    const xSeen = x.received.length;
    const message = await x.message(room, 'spoofed words');
    assert.equal(message.status, 403, `${message.status} ${message.reason}`);
    assert.match(message.reason, /authenticated/);
    for (const text of ['#members', '#leave', '#topic taken over']) assert.equal((await x.message(room, text)).status, 403, text);
    assert.equal((await x.message(manager, '#create chat-x')).status, 403);
    assert.equal((await x.message(manager, '#join chat-new')).status, 403);
    // A stranger of that domain is refused the same way.
    const y = await ua('y', { domain: 'example.org' });
    assert.equal((await y.message(room, 'stranger words')).status, 403);
    await sleep(300);
    assert.deepEqual(receivedWith(alice, 'words', seen[0]), []);
    assert.deepEqual(receivedWith(bob, 'words', seen[1]), []);
    assert.equal(x.received.length, xSeen, 'no reply MESSAGE to an unproven sender');
    assert.equal(s.server.rooms!.findRoom('chat-x'), undefined);
    assert.equal(s.server.rooms!.findRoom('chat-new'), undefined);
    assert.equal(s.server.rooms!.findRoom('chat-id')?.topic, undefined);
    assert.ok(s.server.rooms!.listMembers('chat-id')!.some((m) => m.uri === 'sip:x@example.org'), 'x was not removed by its unproven #leave');
  });

  test('a local From without (or with wrong) credentials is challenged, not taken', async () => {
    const seen = alice.received.length;
    const spoofer = await ua('bob');
    const challenged = await spoofer.message(room, 'bob says nothing of the sort');
    assert.equal(challenged.status, 407);
    const wrong = await ua('bob', { password: 'guess' });
    const refused = await wrong.message(room, 'bob says nothing of the sort');
    assert.ok(refused.status === 403 || refused.status === 407, `${refused.status} ${refused.reason}`);
    const spoofedCommand = await spoofer.message(room, '#leave');
    assert.equal(spoofedCommand.status, 407);
    await sleep(300);
    assert.deepEqual(receivedWith(alice, 'nothing of the sort', seen), []);
    const members = await command(bob, room, '#members');
    assert.match(members, /alice <sip:alice@localhost> owner/);
    assert.match(members, /bob <sip:bob@localhost> member/, 'the unproven #leave did not remove bob');
  });
});
