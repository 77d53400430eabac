// Two users creating the same room at the same moment: one gets the room, the other is told it
// exists, and nothing fails inside Parley (the store's writes let other requests in meanwhile).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { UserPool } from '../support/ua.js';
import { command } from './room-helpers.js';

let s: TestServer;
const users = new UserPool(() => s.udp);

before(async () => {
  s = await startServer();
});
after(async () => {
  users.closeAll();
  await s.stop();
});

test('two #create of one room at once: one creates it, the other is told it exists, no error logged', async () => {
  const alice = await users.get('alice');
  const bob = await users.get('bob');
  const manager = 'sip:chat-manager@localhost';
  for (let round = 0; round < 5; round++) {
    const replies = await Promise.all([command(alice, manager, `#create chat-race${round}`), command(bob, manager, `#create chat-race${round}`)]);
    assert.equal(replies.filter((reply) => /^created room/.test(reply)).length, 1, replies.join(' | '));
    assert.equal(replies.filter((reply) => /exists already/.test(reply)).length, 1, replies.join(' | '));
  }
  assert.deepEqual(s.logs.filter((line) => line.includes('"level":"error"') || line.includes('"level":50')), []);
});
