// kill -9 safety of the rooms: a #create, #join or role change confirmed by its reply MESSAGE is on
// disk at that moment, so Parley killed right after and started again on the same database still has it.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA } from '../support/ua.js';
import { killAll, startParley, type ParleyProcess } from '../support/process.js';
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
