// kill -9 safety of the rooms: a #create, #join or role change confirmed by its reply MESSAGE is on
// disk at that moment, so Parley killed right after and started again on the same database still has it;
// so is a room post answered 200, which the restarted Parley delivers to every member.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA } from '../support/ua.js';
import { killAll, startParley, type ParleyProcess } from '../support/process.js';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from '../support/eventually.js';
import { command } from './room-helpers.js';

const uas: TestUA[] = [];
after(() => {
  for (const agent of uas) agent.close();
  killAll();
});

async function user(name: string, server: { host: string; port: number }): Promise<TestUA> {
  const agent = await TestUA.create({ user: name, server });
  uas.push(agent);
  assert.equal((await agent.register()).status, 200);
  return agent;
}

/** SIGKILL at once, then the same database and ports again. */
async function crashAndRestart(parley: ParleyProcess): Promise<ParleyProcess> {
  parley.kill('SIGKILL');
  const status = await parley.exited;
  assert.equal(status.signal, 'SIGKILL');
  assert.ok(!parley.logs.some((line) => line.includes('"parley stopped"')), 'a killed process cannot have stopped cleanly');
  return startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });
}

describe('rooms survive kill -9', () => {
  test('a confirmed #create, #join and role change are kept, with the roles', async () => {
    let parley = await startParley();
    try {
      const manager = 'sip:chat-manager@localhost';
      const room = 'sip:chat-crash@localhost';
      const alice = await user('alice', parley.udp);
      const bob = await user('bob', parley.udp);

      assert.match(await command(alice, manager, '#create chat-crash'), /created room sip:chat-crash@localhost/);
      parley = await crashAndRestart(parley);
      const afterCreate = await command(alice, manager, '#members chat-crash');
      assert.match(afterCreate, /members of sip:chat-crash@localhost \(1\)/);
      assert.match(afterCreate, /alice <sip:alice@localhost> owner/);

      assert.match(await command(bob, room, '#join'), /you joined sip:chat-crash@localhost/);
      parley = await crashAndRestart(parley);
      const afterJoin = await command(bob, room, '#members');
      assert.match(afterJoin, /members of sip:chat-crash@localhost \(2\)/);
      assert.match(afterJoin, /alice <sip:alice@localhost> owner/);
      assert.match(afterJoin, /bob <sip:bob@localhost> member/);

      assert.match(await command(alice, room, '#modify bob admin'), /sip:bob@localhost is now admin/);
      parley = await crashAndRestart(parley);
      assert.match(await command(alice, room, '#members'), /bob <sip:bob@localhost> admin/);
      // And the restored room works: bob, an admin, may set the topic; alice's words reach bob.
      assert.match(await command(bob, room, '#topic after the crash'), /topic set/);
      const atBob = bob.waitForRequest((m) => m.body.toString() === '<alice> still here');
      assert.equal((await alice.message(room, 'still here')).status, 200);
      await atBob;
    } finally {
      await parley.stop();
    }
  });
});

describe('room posts survive kill -9', () => {
  /** The posts a member got, in the order it got them, each once (a post delivered again after the restart is a tolerated duplicate). */
  const postsAt = (agent: TestUA): string[] => [
    ...new Set(agent.received.filter((m: SipMessage) => m.method === 'MESSAGE').map((m) => m.body.toString()).filter((body) => body.startsWith('<alice> post '))),
  ];

  test('every post answered 200 before the kill reaches every member after the restart, in order', async () => {
    let parley = await startParley();
    try {
      const room = 'sip:chat-burst@localhost';
      const alice = await user('alice', parley.udp);
      const bob = await user('bob', parley.udp);
      const carol = await user('carol', parley.udp);
      assert.match(await command(alice, 'sip:chat-manager@localhost', '#create chat-burst'), /created room/);
      assert.match(await command(bob, room, '#join'), /you joined/);
      const carolJoined = bob.waitForRequest((m) => m.body.toString().includes('carol') && m.body.toString().includes('has joined'));
      assert.match(await command(carol, room, '#join'), /you joined/);
      // Answered before bob goes silent: otherwise that notice, not the posts, would be what waits at the kill.
      await carolJoined;

      // bob's device stops answering: his posts wait in Parley, one after another, when the kill comes.
      bob.answer = null;
      const posts = Array.from({ length: 20 }, (_, index) => `<alice> post ${index + 1}`);
      for (const [index] of posts.entries()) assert.equal((await alice.message(room, `post ${index + 1}`)).status, 200);
      await eventually(() => postsAt(bob).length > 0, 'the first post at bob (unanswered)');
      parley = await crashAndRestart(parley);

      bob.answer = 200;
      await eventually(() => postsAt(bob).length === posts.length && postsAt(carol).length === posts.length, 'every post at bob and carol', 30_000);
      assert.deepEqual(postsAt(bob), posts);
      assert.deepEqual(postsAt(carol), posts);
    } finally {
      await parley.stop();
    }
  });
});
