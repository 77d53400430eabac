// The checks every request passes run in one order: a request failing several gets the answer of
// the first (method, Request-URI scheme, Max-Forwards, Proxy-Require, REGISTER's domain,
// credentials), before any route is looked up.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { REQUEST_HOOKS } from '../../src/server/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';

let s: TestServer;
let alice: TestUA;

before(async () => {
  s = await startServer({ auth: { policy: 'required' } });
  alice = await TestUA.create({ user: 'alice', server: s.udp, password: 'secret' });
});
after(async () => {
  alice.close();
  await s.stop();
});

const MAX_FORWARDS_0 = { name: 'max-forwards', value: '0' };
const PROXY_REQUIRE = { name: 'proxy-require', value: 'x-teleport' };

async function answer(method: string, uri: string, headers: Array<{ name: string; value: string }> = [], to?: string): Promise<string> {
  const request = alice.build(method, uri, { to });
  for (const header of headers) request.set(header.name, header.value);
  const response = await alice.send(request);
  return `${response.status} ${response.reason}`;
}

test('the hooks, in the order they run', () => {
  assert.deepEqual(REQUEST_HOOKS.map((hook) => hook.name), [
    'shuttingDown', 'knownMethod', 'requestUriScheme', 'maxForwards', 'loop', 'proxyRequire', 'ownRoutes',
    'optionsToServer', 'registerDomain', 'authenticate', 'optionsToUser',
  ]);
});

test('an unknown method is refused before its Request-URI scheme is looked at', async () => {
  assert.equal(await answer('TELEPORT', 'tel:+15551234'), '501 Not Implemented');
});

test('the scheme before Max-Forwards, Max-Forwards before Proxy-Require', async () => {
  assert.equal(await answer('MESSAGE', 'tel:+15551234', [MAX_FORWARDS_0]), '416 Unsupported URI Scheme');
  assert.equal(await answer('MESSAGE', 'sip:bob@localhost', [MAX_FORWARDS_0, PROXY_REQUIRE]), '483 Too Many Hops');
});

test('Proxy-Require and a REGISTER for a foreign domain are refused before credentials are asked for', async () => {
  assert.equal(await answer('MESSAGE', 'sip:bob@localhost', [PROXY_REQUIRE]), '420 Bad Extension');
  assert.equal(await answer('REGISTER', 'sip:example.org', [], '<sip:alice@example.org>'), '403 Forbidden (domain not served here)');
  assert.match(await answer('MESSAGE', 'sip:bob@localhost'), /^407 /);
});

test('OPTIONS to Parley itself needs no credentials; to a user it does', async () => {
  assert.equal(await answer('OPTIONS', 'sip:localhost'), '200 OK');
  assert.match(await answer('OPTIONS', 'sip:bob@localhost'), /^407 /);
});
