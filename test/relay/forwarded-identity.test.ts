// What vouches for a sender stays with Parley: a forwarded request carries no credentials for
// Parley's realm (RFC 3261 §22.3), and no P-Asserted-Identity or Identity from an untrusted source.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { RemoteInfo } from 'node:dgram';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { computeHa1 } from '../../src/registrar/index.js';
import { type SipMessage, createResponse, parseMessage } from '../../src/sip/index.js';
import { bindUdp, closeUdp } from '../robustness/wire.js';

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

test('a MESSAGE for another domain reaches relay.outbound_proxy without them either', async () => {
  // The outbound proxy: a socket that answers 200 to where each request came from.
  const proxy = await bindUdp();
  const arrived = new Promise<SipMessage>((resolve) => {
    proxy.on('message', (data: Buffer, from: RemoteInfo) => {
      const message = parseMessage(data);
      proxy.send(createResponse(message, 200).toBuffer(), from.port, from.address);
      resolve(message);
    });
  });
  const viaProxy = await startServer({ relay: { outbound_proxy: `sip:127.0.0.1:${proxy.address().port}` } });
  try {
    const carol = await TestUA.create({ user: 'carol', server: viaProxy.udp });
    agents.push(carol);
    const response = await carol.message('sip:x@example.org', 'hello there', [
      { name: 'p-asserted-identity', value: '<sip:ceo@localhost>' },
      { name: 'proxy-authorization', value: 'Digest username="carol", realm="localhost", nonce="n", uri="sip:x@example.org", response="0123"' },
    ]);
    assert.equal(response.status, 200, `${response.status} ${response.reason}`);
    const message = await arrived;
    assert.equal(message.uri, 'sip:x@example.org');
    assert.deepEqual(['proxy-authorization', 'p-asserted-identity'].filter((name) => message.has(name)), [], `forwarded as:\n${message.toString()}`);
  } finally {
    closeUdp(proxy);
    await viaProxy.stop();
  }
});
