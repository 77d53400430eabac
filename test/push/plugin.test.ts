// Push as a plugin of a running server: off by default; when on, PUSH is there for the delivery of
// messages to devices, and its counts and health are served by the admin endpoint.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PUSH, parsePushTarget } from '../../src/push/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { startHttpStandIn, type StandIn } from '../support/push-providers.js';
import { adminUrl, rpc, scrape } from '../admin/client.js';

let hook: StandIn;
let s: TestServer;

before(async () => {
  hook = await startHttpStandIn();
  s = await startServer({ push: { enabled: true, attempts: 1, webhook_url: `${hook.url}/wake?token=$token` } });
});

after(async () => {
  await s?.stop();
  await hook?.close();
});

const target = parsePushTarget('sip:carol@192.0.2.3;pn-provider=acme;pn-prid=device-7;pn-param=app1')!;
const request = (deliveryId: string) => ({ deliveryId, device: 'urn:uuid:carol-phone', from: 'sip:bob@localhost', callId: `${deliveryId}@localhost`, kind: 'message' as const });

test('push is off by default: no PUSH service, and core.status says push: null', async () => {
  const plain = await startServer();
  try {
    assert.equal(plain.server.service(PUSH), undefined);
    assert.equal((await rpc(plain, 'core.status')).result.push, null);
  } finally {
    await plain.stop();
  }
});

test('pushes sent and failed are counted by provider, and a failing provider makes /health degraded until one succeeds', async () => {
  const push = s.server.service(PUSH)!;
  assert.deepEqual(push.configured, ['webhook']);
  assert.deepEqual(await push.notify(target, request('d1')), { status: 'sent' });
  assert.equal(hook.requests[0]!.path, '/wake?token=device-7');
  hook.answer('/wake', { status: 503 });
  assert.deepEqual(await push.notify(target, request('d2')), { status: 'failed', reason: 'webhook 503' });

  const metrics = (await scrape(s)).text;
  assert.match(metrics, /^parley_push_sent_total\{provider="webhook"\} 1$/m);
  assert.match(metrics, /^parley_push_failed_total\{provider="webhook"\} 1$/m);
  assert.match(metrics, /^parley_push_pending 0$/m);
  const degraded = await fetch(`${adminUrl(s)}/health`);
  assert.equal(degraded.status, 503);
  assert.deepEqual((await degraded.json()).plugins.push, { status: 'degraded', reason: 'last push failed (webhook: webhook 503)' });

  assert.deepEqual(await push.notify(target, request('d3')), { status: 'sent' });
  assert.equal((await fetch(`${adminUrl(s)}/health`)).status, 200);
  const status = (await rpc(s, 'core.status')).result.push;
  assert.deepEqual([status.providers, status.sent.webhook, status.failed.webhook], [['webhook'], 2, 1]);
});
