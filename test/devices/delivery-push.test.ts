// Push (RFC 8599) for per-device delivery: a device that registered with push parameters and is
// away when a message comes for it is woken through its provider (a local webhook stand-in here);
// receipts wake no one, an invalid token drops the device's push parameters, and the parameters
// never travel on to the device.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { startHttpStandIn, type StandIn } from '../support/push-providers.js';
import { rpc } from '../admin/client.js';
import { newInstance, registerDevice } from './devices.js';

let hook: StandIn;
let s: TestServer;
const agent = udpAgents();

before(async () => {
  hook = await startHttpStandIn();
  s = await startServer({ push: { enabled: true, attempts: 1, webhook_url: `${hook.url}/wake?token=$token&call=$call_id` } });
});
after(async () => {
  await s?.stop();
  await hook?.close();
});

/** Resolves once a log line contains `text` (Parley logs it when the work it names is done). */
async function logged(text: string): Promise<void> {
  while (!s.logs.some((line) => line.includes(text))) await sleep(20);
}

const PUSH_PARAMS = ';pn-provider=acme;pn-prid=token-1;pn-param=app1';

test('an away device with push parameters is woken for a message, not for a receipt; it gets the message when it registers, without pn-* in the Request-URI', async () => {
  const phone = await agent('lia', s.udp);
  const sender = await agent('max', s.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(phone, { instance, uriParams: PUSH_PARAMS })).status, 200);
  const live = phone.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await sender.message('sip:lia@localhost', 'while awake')).status, 200);
  assert.equal((await live).uri, phone.contact, 'the push parameters are not forwarded');

  assert.equal((await registerDevice(phone, { instance, uriParams: PUSH_PARAMS, expires: 0 })).status, 200);
  const receipt = '<?xml version="1.0"?><imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>1</message-id><delivery-notification><status><delivered/></status></delivery-notification></imdn>';
  assert.equal((await sender.message('sip:lia@localhost', receipt, [], 'message/imdn+xml')).status, 202);
  const pushed = hook.nextRequest();
  const away = sender.build('MESSAGE', 'sip:lia@localhost', { body: 'wake up' });
  assert.equal((await sender.send(away)).status, 202);
  const request = await pushed;
  assert.equal(request.path, `/wake?token=token-1&call=${encodeURIComponent(away.callId)}`);
  assert.equal(hook.requests.length, 1, 'the receipt pushed nothing');

  const backlog = phone.waitForRequest((m) => m.body.toString() === 'wake up');
  assert.equal((await registerDevice(phone, { instance, uriParams: PUSH_PARAMS })).status, 200);
  const delivered = await backlog;
  assert.equal(delivered.uri, phone.contact, 'the push parameters are not forwarded');
});

test('a token the provider no longer knows drops the device\'s push parameters: the next message pushes nothing', async () => {
  const phone = await agent('ned', s.udp);
  const sender = await agent('ola', s.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(phone, { instance, uriParams: ';pn-provider=acme;pn-prid=stale;pn-param=app1' })).status, 200);
  assert.equal((await registerDevice(phone, { instance, uriParams: ';pn-provider=acme;pn-prid=stale;pn-param=app1', expires: 0 })).status, 200);
  const before = hook.requests.length;
  hook.answer('/wake?token=stale', { status: 410 });
  assert.equal((await sender.message('sip:ned@localhost', 'first')).status, 202);
  await logged('push parameters of the device dropped');
  const { result } = await rpc(s, 'devices.list', { user: 'ned@localhost' });
  assert.equal(result.devices[0].contact, phone.contact);
  assert.equal((await sender.message('sip:ned@localhost', 'second')).status, 202);
  // Another away device's push, asked for after it, marks the point by which one for ned would have come.
  const other = await agent('pia', s.udp);
  const otherInstance = newInstance();
  assert.equal((await registerDevice(other, { instance: otherInstance, uriParams: ';pn-provider=acme;pn-prid=marker;pn-param=app1' })).status, 200);
  assert.equal((await registerDevice(other, { instance: otherInstance, uriParams: ';pn-provider=acme;pn-prid=marker;pn-param=app1', expires: 0 })).status, 200);
  const marker = hook.nextRequest();
  assert.equal((await sender.message('sip:pia@localhost', 'marker')).status, 202);
  assert.match((await marker).path, /token=marker/);
  assert.deepEqual(hook.requests.slice(before).map((r) => /token=(\w+)/.exec(r.path)![1]), ['stale', 'marker'], 'only the first message to ned was pushed');
});
