// GRUUs (RFC 5627): a phone that registers as a device (+sip.instance) with Supported: gruu gets a
// public and a temporary GRUU, each reaching that phone only; a device is its instance, so a phone
// registering from a new address replaces its old binding.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { contactParam, newInstance, registerDevice } from './devices.js';

let s: TestServer;
const agent = udpAgents();
before(async () => {
  s = await startServer();
});
after(() => s.stop());

const messages = (ua: { received: Array<{ method: string; body: Buffer }> }) => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());

test('a device with Supported: gruu gets pub-gruu and temp-gruu; the public GRUU reaches that device only', async () => {
  const phone = await agent('alice', s.udp);
  const laptop = await agent('alice', s.udp);
  const bob = await agent('bob', s.udp);
  const instance = newInstance();
  const ok = await registerDevice(phone, { instance, supported: 'gruu' });
  assert.equal(ok.status, 200);
  assert.equal(contactParam(ok, phone.contact, 'pub-gruu'), `sip:alice@localhost;gr=${instance}`);
  assert.match(contactParam(ok, phone.contact, 'temp-gruu') ?? '', /^sip:tgruu\.[A-Za-z0-9_-]+@localhost;gr$/);
  assert.match(ok.getAll('contact')[0]!, new RegExp(`\\+sip\\.instance="<${instance}>"`));
  assert.deepEqual(ok.getAll('supported'), ['gruu']);
  assert.equal((await registerDevice(laptop, { supported: 'gruu' })).status, 200);

  const toPhone = phone.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message(`sip:alice@localhost;gr=${instance}`, 'for the phone')).status, 200);
  const got = await toPhone;
  assert.equal(got.uri, phone.contact, 'the GRUU is retargeted to the device\'s contact');
  // The AOR reaches both devices; the laptop's first message is that one, not the phone's.
  const toLaptop = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message('sip:alice@localhost', 'for every device')).status, 200);
  await toLaptop;
  assert.deepEqual(messages(laptop), ['for every device']);
  // A message for one device that it does not take now is not stored for every device.
  phone.answer = 480;
  assert.equal((await bob.message(`sip:alice@localhost;gr=${instance}`, 'later?')).status, 480);
});

test('a temporary GRUU reaches its device while the registration lasts, then gets 480; one Parley did not issue gets 404', async () => {
  const phone = await agent('carol', s.udp);
  const bob = await agent('bob', s.udp);
  const instance = newInstance();
  const ok = await registerDevice(phone, { instance, supported: 'gruu' });
  const temporary = contactParam(ok, phone.contact, 'temp-gruu')!;
  const refreshed = contactParam(await registerDevice(phone, { instance, supported: 'gruu' }), phone.contact, 'temp-gruu')!;
  assert.notEqual(refreshed, temporary, 'each REGISTER hands out a new temporary GRUU');

  for (const gruu of [temporary, refreshed]) {
    const toPhone = phone.waitForRequest((m) => m.method === 'MESSAGE');
    assert.equal((await bob.message(gruu, `via ${gruu}`)).status, 200);
    assert.equal((await toPhone).body.toString(), `via ${gruu}`);
  }
  assert.equal((await bob.message('sip:tgruu.bm90LWlzc3VlZC1ieS1wYXJsZXktYXQtYWxs@localhost;gr', 'forged')).status, 404);

  // A registration under a new Call-ID ends the temporary GRUUs of the old one (RFC 5627 §5.1).
  const renewed = phone.build('REGISTER', 'sip:localhost', {
    to: `<${phone.aor}>`,
    headers: [{ name: 'contact', value: `<${phone.contact}>;+sip.instance="<${instance}>"` }, { name: 'supported', value: 'gruu' }],
  });
  renewed.set('call-id', 'a-new-call-id@test');
  const current = contactParam(await phone.send(renewed), phone.contact, 'temp-gruu')!;
  assert.equal((await bob.message(temporary, 'old one')).status, 480);
  const toPhone = phone.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message(current, 'new one')).status, 200);
  await toPhone;

  assert.equal((await registerDevice(phone, { instance, expires: 0 })).status, 200);
  const gone = await bob.message(temporary, 'too late');
  assert.equal(gone.status, 480);
  assert.equal((await bob.message(`sip:carol@localhost;gr=${instance}`, 'too late')).status, 480);
  assert.equal((await bob.message(`sip:nobody@localhost;gr=${instance}`, 'who?')).status, 404);
});

test('a phone registering its instance from a new address replaces its binding, outbound flow or not', async () => {
  const oldAddress = await agent('dave', s.udp);
  const newAddress = await agent('dave', s.udp);
  const bob = await agent('bob', s.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(oldAddress, { instance, regId: 1, supported: 'outbound' })).status, 200);
  const moved = await registerDevice(newAddress, { instance });
  assert.equal(moved.status, 200);
  assert.deepEqual(moved.getAll('contact').map((c) => /<([^>]+)>/.exec(c)![1]), [newAddress.contact]);
  const toNew = newAddress.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message('sip:dave@localhost', 'where are you?')).status, 200);
  await toNew;
  assert.deepEqual(messages(oldAddress), []);
});

test('a GRUU is taken as From and Contact: MESSAGE, SUBSCRIBE, and the NOTIFYs reach the device', async () => {
  const phone = await agent('erin', s.udp);
  const bob = await agent('bob', s.udp);
  await bob.register();
  const instance = newInstance();
  const ok = await registerDevice(phone, { instance, supported: 'gruu' });
  const gruu = contactParam(ok, phone.contact, 'pub-gruu')!;

  const toBob = bob.waitForRequest((m) => m.method === 'MESSAGE');
  const sent = phone.build('MESSAGE', bob.aor, { body: 'from my phone' });
  sent.set('from', `<${gruu}>;tag=g1`).add('contact', `<${gruu}>`);
  assert.equal((await phone.send(sent)).status, 200);
  assert.match((await toBob).get('from')!, new RegExp(`gr=${instance}`));

  const subscribe = phone.build('SUBSCRIBE', bob.aor, { headers: [{ name: 'event', value: 'presence' }, { name: 'contact', value: `<${gruu}>` }] });
  subscribe.set('from', `<${gruu}>;tag=g2`);
  const notified = phone.waitForRequest((m) => m.method === 'NOTIFY');
  const accepted = await phone.send(subscribe);
  assert.equal(accepted.status, 200);
  const notify = await notified;
  assert.equal(notify.uri, gruu, 'the NOTIFY goes to the GRUU the subscriber gave as its Contact');
  assert.match(notify.get('to')!, new RegExp(`gr=${instance}`));
});

test('a GRUU cannot be registered as a contact (403), nor a reg-id that is no number (400)', async () => {
  const phone = await agent('fay', s.udp);
  const register = (contact: string) => phone.send(phone.build('REGISTER', 'sip:localhost', { to: `<${phone.aor}>`, headers: [{ name: 'contact', value: contact }] }));
  const loop = await register(`<sip:fay@localhost;gr=${newInstance()}>`);
  assert.equal(loop.status, 403);
  assert.equal(loop.reason, 'Forbidden (a GRUU cannot be registered as a contact)');
  const bad = await register(`<${phone.contact}>;+sip.instance="<${newInstance()}>";reg-id=first`);
  assert.equal(bad.status, 400);
  assert.equal(bad.reason, 'Bad reg-id parameter');
});
