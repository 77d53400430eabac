// A UDP softphone without +sip.instance restarted on a new port, its old binding still registered:
// the two are two devices until the old one expires unrefreshed (two phones of one model behind one
// NAT differ in nothing but the port), yet when nothing came back from the old port lately, the new
// one gets what waited there first, in order, before anything newer, and never twice; the old port,
// should a phone still be there, keeps its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents, type TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { rpc } from '../admin/client.js';
import type { SipMessage } from '../../src/sip/index.js';
import { messages as bodies } from './devices.js';

let s: TestServer;
const udpAgent = udpAgents();
before(async () => {
  // A request nothing answers times out after a second (relay.fork_timeout).
  s = await startServer({ relay: { accept_timeout: 1, fork_timeout: 1 } as never, registrar: { min_expires: 1 } as never });
});
after(async () => {
  await s.stop();
});

const ZOIPER = 'Z 5.6.1 v2.10.20.1';
const MICROSIP = 'MicroSIP/3.21.3';

function registerUdp(ua: TestUA, userAgent: string, expires: number): Promise<SipMessage> {
  return ua.send(ua.build('REGISTER', 'sip:localhost', {
    to: `<${ua.aor}>`,
    headers: [{ name: 'contact', value: `<${ua.contact}>` }, { name: 'expires', value: String(expires) }, { name: 'user-agent', value: userAgent }],
  }));
}

const address = (ua: TestUA) => ua.contact.replace(/;.*/, '');

async function devicesOf(user: string): Promise<Array<{ device: string; pending: number }>> {
  return (await rpc(s, 'devices.list', { user: `sip:${user}` })).result.devices;
}

/**
 * `name`'s laptop (taking what it gets) and a Zoiper phone registered for `phoneExpires` seconds
 * whose app died: nothing answers at its port, and Parley saw that (the log line). `before` was
 * sent meanwhile: the laptop took it, the phone's port keeps it.
 */
async function phoneGoneSilent(name: string, sender: TestUA, phoneExpires: number, before: string[]) {
  const user = `${name}@localhost`;
  const laptop = await udpAgent(name, s.udp);
  const phone = await udpAgent(name, s.udp);
  assert.equal((await registerUdp(laptop, MICROSIP, 3600)).status, 200);
  assert.equal((await registerUdp(phone, ZOIPER, phoneExpires)).status, 200);
  phone.answer = null;
  assert.equal((await sender.message(`sip:${user}`, before[0]!)).status, 200, 'the laptop took it');
  await eventually(() => s.logs.some((line) => line.includes('nothing came back from the device') && line.includes(address(phone))), 'the phone\'s port seen silent');
  for (const body of before.slice(1)) assert.equal((await sender.message(`sip:${user}`, body)).status, 200);
  return { user, laptop, phone };
}

test('a UDP softphone without +sip.instance restarted on a new port while nothing answers at its old one gets what waited there first, in order, before what comes after; once the old binding expires unrefreshed, nothing comes twice', async () => {
  const sender = await udpAgent('walt', s.udp);
  const { user, laptop, phone: old } = await phoneGoneSilent('vera', sender, 6, ['before the restart 1', 'before the restart 2']);
  assert.equal((await registerUdp(laptop, MICROSIP, 3600)).status, 200, 'another device refreshing its registration tells nothing of the phone');

  const back = await udpAgent('vera', s.udp);
  const backlog = back.waitForRequest((m) => m.body.toString() === 'before the restart 2');
  assert.equal((await registerUdp(back, ZOIPER, 3600)).status, 200);
  assert.equal(s.server.registrar.lookup(user).length, 3, 'the old port, still registered, may be another phone');
  await backlog;
  const live = back.waitForRequest((m) => m.body.toString() === 'after the restart');
  // Taken at once (200), or behind what the drain of its queue has still to record (202).
  assert.ok([200, 202].includes((await sender.message(`sip:${user}`, 'after the restart')).status));
  await live;
  assert.deepEqual(bodies(back), ['before the restart 1', 'before the restart 2', 'after the restart']);

  await eventually(async () => !(await devicesOf(user)).some((d) => d.device === address(old)) || undefined, 'the old port taken for the new one once its binding expired', 20_000);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'nothing left waiting');
  const later = back.waitForRequest((m) => m.body.toString() === 'later');
  assert.equal((await sender.message(`sip:${user}`, 'later')).status, 200);
  await later;
  assert.deepEqual(bodies(back), ['before the restart 1', 'before the restart 2', 'after the restart', 'later'], 'nothing twice');
  assert.deepEqual(bodies(laptop), ['before the restart 1', 'before the restart 2', 'after the restart', 'later']);
});

test('a phone at the old port that was silent only a moment (out of coverage) is still a device of its own: back, it gets its own backlog in order too, while the phone at the new port got a copy of it first', async () => {
  const sender = await udpAgent('wim', s.udp);
  const { user, phone: first } = await phoneGoneSilent('vida', sender, 3600, ['while it was away 1', 'while it was away 2']);

  const second = await udpAgent('vida', s.udp);
  const copies = second.waitForRequest((m) => m.body.toString() === 'while it was away 2');
  assert.equal((await registerUdp(second, ZOIPER, 3600)).status, 200);
  await copies;

  // Back in coverage, the first one refreshes its registration from its port: what waited for it comes, in order.
  first.answer = 200;
  assert.equal((await registerUdp(first, ZOIPER, 3600)).status, 200);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what each took recorded');
  const later = [first, second].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'later'));
  assert.equal((await sender.message(`sip:${user}`, 'later')).status, 200);
  await Promise.all(later);
  const got = bodies(first);
  assert.deepEqual(got.slice(got.lastIndexOf('while it was away 1')), ['while it was away 1', 'while it was away 2', 'later'], 'its own backlog once back, in order');
  assert.deepEqual(bodies(second), ['while it was away 1', 'while it was away 2', 'later']);
  const devices = (await devicesOf(user)).map((d) => d.device);
  assert.ok(devices.includes(address(first)) && devices.includes(address(second)), 'two phones');
  assert.equal(s.server.registrar.lookup(user).length, 3, 'neither taken for the other');
});

test('a user\'s only device, a UDP softphone without +sip.instance whose app died, restarted on a new port: it gets what came meanwhile first, in order, then what comes after', async () => {
  const user = 'vito@localhost';
  const sender = await udpAgent('wes', s.udp);
  const phone = await udpAgent('vito', s.udp);
  assert.equal((await registerUdp(phone, ZOIPER, 3600)).status, 200);
  // Its devices read: the next message is forked to it, the user's only device, and stored only if not reached.
  assert.equal((await sender.message(`sip:${user}`, 'live')).status, 200);
  phone.answer = null;
  assert.equal((await sender.message(`sip:${user}`, 'while it was down 1')).status, 202, 'not reached: kept for it');
  await eventually(() => s.logs.some((line) => line.includes('nothing came back from the device') && line.includes(address(phone))), 'the phone\'s port seen silent');
  assert.equal((await sender.message(`sip:${user}`, 'while it was down 2')).status, 202);

  const back = await udpAgent('vito', s.udp);
  const backlog = back.waitForRequest((m) => m.body.toString() === 'while it was down 2');
  assert.equal((await registerUdp(back, ZOIPER, 3600)).status, 200);
  await backlog;
  const live = back.waitForRequest((m) => m.body.toString() === 'after the restart');
  // Taken at once (200), or behind what the drain of its queue has still to record (202).
  assert.ok([200, 202].includes((await sender.message(`sip:${user}`, 'after the restart')).status));
  await live;
  assert.deepEqual(bodies(back), ['while it was down 1', 'while it was down 2', 'after the restart']);
});
