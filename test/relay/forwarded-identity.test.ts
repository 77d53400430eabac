// What vouches for a sender stays with Parley: a forwarded request carries no credentials for
// Parley's realm (RFC 3261 §22.3), and no P-Asserted-Identity or Identity from an untrusted source.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { computeHa1 } from '../../src/registrar/index.js';

let s: TestServer;
const agents: TestUA[] = [];

before(async () => {
  s = await startServer({ auth: { policy: 'required' } as never });
  for (const [user, password] of [['alice', 'alice-secret'], ['bob', 'bob-secret']] as const) {
    await s.server.store.users.put({ username: user, domain: 'localhost', ...computeHa1(user, 'localhost', password) });
  }
});
after(async () => {
  for (const agent of agents) agent.close();
  await s.stop();
});

test('a MESSAGE relayed to a registered user arrives without credentials for Parley\'s realm, P-Asserted-Identity or Identity', async () => {
  const alice = await TestUA.create({ user: 'alice', password: 'alice-secret', server: s.udp });
  const bob = await TestUA.create({ user: 'bob', password: 'bob-secret', server: s.udp });
  agents.push(alice, bob);
  assert.equal((await bob.register()).status, 200);

  const foreign = 'Digest username="alice", realm="elsewhere.example", nonce="n", uri="sip:bob@localhost", response="0123"';
  const arrived = bob.waitForRequest((m) => m.method === 'MESSAGE');
  const response = await alice.message('sip:bob@localhost', 'who am I?', [
    { name: 'p-asserted-identity', value: '<sip:ceo@localhost>' },
    { name: 'identity', value: 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln;info=<https://cert.example/c.pem>' },
    { name: 'identity-info', value: '<https://cert.example/c.pem>' },
    { name: 'authorization', value: 'Digest username="alice", realm="localhost", nonce="n", uri="sip:bob@localhost", response="0123"' },
    { name: 'authorization', value: foreign },
  ]);
  assert.equal(response.status, 200, `${response.status} ${response.reason}`);
  const message = await arrived;
  assert.equal(message.body.toString(), 'who am I?');
  assert.deepEqual(
    ['proxy-authorization', 'p-asserted-identity', 'identity', 'identity-info'].filter((name) => message.has(name)),
    [],
    `forwarded as:\n${message.toString()}`,
  );
  // Credentials for another realm are for someone further on: they travel.
  assert.deepEqual(message.getAll('authorization'), [foreign]);
});
