// A plugin from outside src/ (echo-plugin.ts), added to the default list, serves its address,
// uses the relay, and shows up at the admin endpoint: no change to the server needed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { defaultPlugins } from '../../src/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { UserPool } from '../support/ua.js';
import { adminUrl, rpc, sample, scrape } from '../admin/client.js';
import { echoPlugin } from './echo-plugin.js';

let s: TestServer;
const users = new UserPool(() => s.udp);

before(async () => {
  s = await startServer({}, [...defaultPlugins(), echoPlugin()]);
});
after(async () => {
  users.closeAll();
  await s.stop();
});

test('a MESSAGE to echo@localhost is answered 200 and its body comes back from echo', async () => {
  const alice = await users.get('alice');
  const echoed = alice.waitForRequest((m) => m.method === 'MESSAGE' && m.fromUri.user === 'echo');
  assert.equal((await alice.message('sip:echo@localhost', 'hello, echo')).status, 200);
  assert.equal((await echoed).body.toString(), 'hello, echo');
});

test('its RPC method, metric and health are served by the admin endpoint', async () => {
  assert.equal((await rpc(s, 'echo.count')).result, 1);
  assert.equal(sample((await scrape(s)).text, 'parley_echo_messages_total'), 1);
  const health = await fetch(`${adminUrl(s)}/health`);
  assert.equal(health.status, 200);
  const ok = { status: 'ok' };
  assert.deepEqual(await health.json(), { status: 'ok', plugins: { store: ok, relay: ok, presence: ok, echo: ok } });
});

test('other users of the domain still go to the relay', async () => {
  const [bob, carol] = await Promise.all([users.get('bob'), users.get('carol')]);
  const heard = carol.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message('sip:carol@localhost', 'not for echo')).status, 200);
  assert.equal((await heard).body.toString(), 'not for echo');
});
