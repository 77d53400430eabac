// Devices registered without +sip.instance next to one with: each such device is its contact's
// address (its URI without parameters), and one asleep while another device took a message gets
// that message when it registers again from that address, whatever its parameters (a softphone's
// new `rinstance`). One that comes back from another address with nothing else changed is the one it
// was (test/devices/recognised-devices.test.ts for users with no device known by an instance).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { messages, newInstance, registerDevice } from './devices.js';

let s: TestServer;
const agent = udpAgents();
before(async () => {
  s = await startServer({ relay: { accept_timeout: 1 } as never });
});
after(() => s.stop());

/** Two devices of `user` registered without +sip.instance (each its own contact), a tablet with one, and a sender. */
async function twoContactDevices(user: string) {
  const phone = await agent(user, s.udp);
  const laptop = await agent(user, s.udp);
  const tablet = await agent(user, s.udp);
  const instance = newInstance();
  const sender = await agent(`${user}-friend`, s.udp);
  assert.equal((await phone.register()).status, 200);
  assert.equal((await laptop.register()).status, 200);
  assert.equal((await registerDevice(tablet, { instance })).status, 200);
  const tabletAway = async () => assert.equal((await registerDevice(tablet, { instance, expires: 0 })).status, 200);
  return { phone, laptop, tabletAway, instance, sender, aor: `sip:${user}@localhost`, user: `${user}@localhost` };
}

test('a device without +sip.instance asleep while the other took a message gets exactly that message, once, when it registers again with its contact', async () => {
  const { phone, laptop, sender, aor, user } = await twoContactDevices('cody');
  const both = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'to both'));
  assert.equal((await sender.message(aor, 'to both')).status, 200);
  await Promise.all(both);
  // The laptop, a client like the phone from a new port, got its first message once the phone took it too (another device).
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'taken by both: nothing kept');

  assert.equal((await phone.register(0)).status, 200);
  const toLaptop = laptop.waitForRequest((m) => m.body.toString() === 'while the phone slept');
  assert.equal((await sender.message(aor, 'while the phone slept')).status, 200, 'the laptop took it');
  await toLaptop;
  assert.deepEqual(await s.server.store.deliveries.pendingCounts(user), [{ aor: user, device: phone.contact, pending: 1 }], 'kept for the phone only');

  const backlog = phone.waitForRequest((m) => m.body.toString() === 'while the phone slept');
  assert.equal((await phone.register()).status, 200);
  await backlog;
  // A refresh and a later message: nothing already taken comes again.
  assert.equal((await phone.register()).status, 200);
  const later = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'later'));
  assert.equal((await sender.message(aor, 'later')).status, 200);
  await Promise.all(later);
  assert.deepEqual(messages(phone), ['to both', 'while the phone slept', 'later']);
  assert.deepEqual(messages(laptop), ['to both', 'while the phone slept', 'later']);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'the row of what the phone took gone');
});

test('with no device registered the sender gets 202, and each device without +sip.instance gets the message when it registers again', async () => {
  const { phone, laptop, tabletAway, instance, sender, aor, user } = await twoContactDevices('dora');
  assert.equal((await phone.register(0)).status, 200);
  assert.equal((await laptop.register(0)).status, 200);
  await tabletAway();
  assert.equal((await sender.message(aor, 'nobody home')).status, 202);
  assert.deepEqual((await s.server.store.deliveries.pendingCounts(user)).map((c) => c.device).sort(), [laptop.contact, phone.contact, instance].sort());
  for (const ua of [laptop, phone]) {
    const got = ua.waitForRequest((m) => m.body.toString() === 'nobody home');
    assert.equal((await ua.register()).status, 200);
    await got;
  }
  assert.deepEqual(messages(phone), ['nobody home']);
  assert.deepEqual(messages(laptop), ['nobody home']);
});

test('a device registering from a new address (port) with nothing else changed is the one it was: it takes over what waited for it, and leaves no ghost', async () => {
  const { phone, laptop, sender, aor, user } = await twoContactDevices('emil');
  assert.equal((await phone.register(0)).status, 200);
  const toLaptop = laptop.waitForRequest((m) => m.body.toString() === 'for the old phone');
  assert.equal((await sender.message(aor, 'for the old phone')).status, 200);
  await toLaptop;

  const moved = await agent('emil', s.udp);
  assert.notEqual(moved.contact, phone.contact);
  const backlog = moved.waitForRequest((m) => m.body.toString() === 'for the old phone');
  assert.equal((await moved.register()).status, 200);
  await backlog;
  const next = [moved, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'next'));
  assert.equal((await sender.message(aor, 'next')).status, 200);
  await Promise.all(next);
  assert.deepEqual(messages(moved), ['for the old phone', 'next']);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).every((c) => c.device !== moved.contact) || undefined, 'what the phone took gone');
  const remembered = (await s.server.store.deliveries.devicesOf(user, 0)).map((d) => d.device);
  assert.ok(remembered.includes(moved.contact) && !remembered.includes(phone.contact), `the old address no longer remembered: ${remembered.join(', ')}`);
  assert.deepEqual((await s.server.store.deliveries.pendingCounts(user)).map((c) => c.device), [], 'nothing kept for a ghost of the phone');
});

test('a message stored before (one row for the user) still goes to the next device without +sip.instance that registers', async () => {
  const { phone, laptop, tabletAway, sender, aor, user } = await twoContactDevices('fay');
  assert.equal((await phone.register(0)).status, 200);
  assert.equal((await laptop.register(0)).status, 200);
  await tabletAway();
  const now = Date.now();
  await s.server.store.offline.add({ aor: user, fromHeader: '<sip:hal@localhost>', toHeader: `<sip:${user}>`, contentType: 'text/plain', body: Buffer.from('from before'), receivedAt: now, expiresAt: now + 60_000 }, 10);
  const got = laptop.waitForRequest((m) => m.body.toString() === 'from before');
  assert.equal((await laptop.register()).status, 200);
  await got;
  assert.equal((await phone.register()).status, 200);
  const live = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'live'));
  assert.equal((await sender.message(aor, 'live')).status, 200);
  await Promise.all(live);
  assert.deepEqual(messages(laptop), ['from before', 'live']);
  assert.deepEqual(messages(phone), ['live'], 'taken once, by the laptop');
});

test('messages stored before (one row for the user) reach a device before what was kept for it since, each in the order it came', async () => {
  const user = 'hana@localhost';
  const phone = await agent('hana', s.udp);
  const sender = await agent('hana-friend', s.udp);
  assert.equal((await phone.register()).status, 200);
  assert.equal((await phone.register(0)).status, 200);
  const now = Date.now();
  for (const body of ['before 1', 'before 2', 'before 3']) {
    await s.server.store.offline.add({ aor: user, fromHeader: '<sip:hal@localhost>', toHeader: `<sip:${user}>`, contentType: 'text/plain', body: Buffer.from(body), receivedAt: now, expiresAt: now + 60_000 }, 10);
  }
  for (const body of ['kept 1', 'kept 2', 'kept 3']) assert.equal((await sender.message(`sip:${user}`, body)).status, 202);
  assert.deepEqual((await s.server.store.deliveries.pendingCounts(user)).map((c) => c.pending), [3], 'kept for the phone');

  assert.equal((await phone.register()).status, 200);
  await eventually(() => messages(phone).length === 6 || undefined, 'every message delivered');
  assert.deepEqual(messages(phone), ['before 1', 'before 2', 'before 3', 'kept 1', 'kept 2', 'kept 3']);
  const live = phone.waitForRequest((m) => m.body.toString() === 'live');
  // Taken at once, or (its queue still recording what it took) through its queue.
  assert.ok([200, 202].includes((await sender.message(`sip:${user}`, 'live')).status));
  await live;
  assert.deepEqual(messages(phone).slice(6), ['live']);
});

test('a device without +sip.instance registering again from its address with other parameters is the same device: it gets what came meanwhile, once', async () => {
  const { phone, laptop, sender, aor, user } = await twoContactDevices('gil');
  const withParams = (rinstance: string, expires: number) =>
    phone.send(phone.build('REGISTER', 'sip:localhost', { to: `<${phone.aor}>`, headers: [{ name: 'contact', value: `<${phone.contact};rinstance=${rinstance}>` }, { name: 'expires', value: String(expires) }] }));
  assert.equal((await phone.register(0)).status, 200);
  assert.equal((await withParams('a1', 3600)).status, 200);
  assert.equal((await withParams('a1', 0)).status, 200);
  const toLaptop = laptop.waitForRequest((m) => m.body.toString() === 'while the app was closed');
  assert.equal((await sender.message(aor, 'while the app was closed')).status, 200);
  await toLaptop;
  assert.deepEqual(await s.server.store.deliveries.pendingCounts(user), [{ aor: user, device: phone.contact, pending: 1 }]);

  const backlog = phone.waitForRequest((m) => m.body.toString() === 'while the app was closed');
  assert.equal((await withParams('b2', 3600)).status, 200);
  const request = await backlog;
  assert.equal(request.uri, `${phone.contact};rinstance=b2`, 'sent to the contact it registered now');
  const later = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'later'));
  assert.equal((await sender.message(aor, 'later')).status, 200);
  await Promise.all(later);
  assert.deepEqual(messages(phone), ['while the app was closed', 'later']);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'the row of what the phone took gone');
});
