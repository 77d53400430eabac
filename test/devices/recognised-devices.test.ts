// Users whose devices all register without +sip.instance (Zoiper, MicroSIP over TCP) get every
// message on every device too: a device is its contact's address, and one that comes back from a
// new address (a new TCP connection's port) is recognised as the one it was when nothing but the
// port changed (same User-Agent, scheme, user, host and transport) and that one is gone: it takes
// over what waited for it, once, in order, and leaves no second device behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { StreamUA } from '../support/stream-ua.js';
import { udpAgents, type TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { rpc } from '../admin/client.js';
import { createResponse, randomToken, type SipMessage } from '../../src/sip/index.js';

let s: TestServer;
const udpAgent = udpAgents();
const closers: Array<() => void> = [];
before(async () => {
  s = await startServer({ relay: { accept_timeout: 1 } as never, registrar: { min_expires: 1 } as never });
});
after(async () => {
  for (const close of closers) close();
  await s.stop();
});

const ZOIPER = 'Z 5.6.1 v2.10.20.1';
const MICROSIP = 'MicroSIP/3.21.3';

/** A client over TCP for `user` with its User-Agent, on a connection of its own. */
async function tcpClient(user: string, userAgent: string) {
  const ua = await StreamUA.connect({ proto: 'tcp', user, server: s.tcp });
  closers.push(() => ua.close());
  const register = (expires = 3600): Promise<SipMessage> =>
    ua.send(ua.build('REGISTER', 'sip:localhost', {
      to: `<${ua.aor}>`,
      headers: [{ name: 'contact', value: `<${ua.contact}>` }, { name: 'expires', value: String(expires) }, { name: 'user-agent', value: userAgent }],
    }));
  const messages = () => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
  const got = (body: string) => ua.waitForRequest((m) => m.method === 'MESSAGE' && m.body.toString() === body);
  return { ua, register, messages, got };
}

/** Closes the client's connection and waits until Parley saw it closed; its binding stays, unreachable. */
async function dropConnection(client: { ua: StreamUA }, aor: string): Promise<void> {
  const binding = s.server.registrar.lookup(aor).find((b) => b.contact === client.ua.contact)!;
  client.ua.close();
  await eventually(() => !s.server.transports.isConnected(binding.connectionId!), 'the connection seen closed');
}

/** The bodies of the MESSAGEs a UA received, in the order they came. */
const bodies = (ua: { received: SipMessage[] }) => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
const address = (ua: { contact: string }) => ua.contact.replace(/;.*/, '');

/** A user's two devices over UDP: a laptop that takes what it gets, and a phone with the Zoiper User-Agent. */
async function laptopAndPhone(user: string, phoneExpires = 3600) {
  const laptop = await udpAgent(user, s.udp);
  const phone = await udpAgent(user, s.udp);
  assert.equal((await registerUdp(laptop, MICROSIP, 3600)).status, 200);
  assert.equal((await registerUdp(phone, ZOIPER, phoneExpires)).status, 200);
  return { laptop, phone };
}

/** A user's two devices: a laptop over UDP that takes what it gets, and a phone with the Zoiper User-Agent over a TCP connection of its own. */
async function laptopAndTcpPhone(user: string) {
  const laptop = await udpAgent(user, s.udp);
  assert.equal((await registerUdp(laptop, MICROSIP, 3600)).status, 200);
  return { laptop, phone: await tcpPhone(user) };
}

/** A client of `user` with the Zoiper User-Agent over a TCP connection of its own, registered; another one is, to the server, the same client from a new port. */
async function tcpPhone(user: string): Promise<StreamUA> {
  const back = await tcpClient(user, ZOIPER);
  assert.equal((await back.register()).status, 200);
  return back.ua;
}

/**
 * `name`'s only device, over TCP without +sip.instance, with `body` from `senderName` on its way over
 * its connection (not answered yet) when a client like it registers over a new one, `newer`.
 */
async function onTheWayToSoleDevice(name: string, senderName: string, body: string) {
  const user = `${name}@localhost`;
  const old = await tcpPhone(name);
  const sender = await udpAgent(senderName, s.udp);
  // Its devices read: the next message is forked to it, the user's only device, and stored only if not reached.
  assert.equal((await sender.message(`sip:${user}`, 'live')).status, 200);
  old.answer = null;
  const first = old.waitForRequest((m) => m.body.toString() === body);
  const firstSent = sender.message(`sip:${user}`, body);
  const firstToOld = await first;
  const newer = await tcpPhone(name);
  assert.equal(s.server.registrar.lookup(user).length, 2, 'the old connection, still registered, may be another device');
  return { old, sender, firstToOld, firstSent, newer };
}

async function devicesOf(user: string): Promise<Array<{ device: string; pending: number; flows: unknown[] }>> {
  return (await rpc(s, 'devices.list', { user: `sip:${user}` })).result.devices;
}

test('a TCP client without +sip.instance that lost its connection while another device took messages gets exactly those, once, in order, when it comes back from a new port; it is not a second device', async () => {
  const user = 'zoe@localhost';
  const desktop = await tcpClient('zoe', ZOIPER);
  const laptop = await tcpClient('zoe', MICROSIP);
  const sender = await tcpClient('yann', ZOIPER);
  assert.equal((await desktop.register()).status, 200);
  assert.equal((await laptop.register()).status, 200);
  assert.equal((await sender.register()).status, 200);
  const both = [desktop.got('to both'), laptop.got('to both')];
  assert.equal((await sender.ua.message('sip:zoe@localhost', 'to both')).status, 200);
  await Promise.all(both);

  await dropConnection(desktop, user);
  for (const body of ['first while away', 'second while away']) {
    const toLaptop = laptop.got(body);
    assert.equal((await sender.ua.message('sip:zoe@localhost', body)).status, 200, 'the laptop took it');
    await toLaptop;
  }
  assert.deepEqual(await s.server.store.deliveries.pendingCounts(user), [{ aor: user, device: desktop.ua.contact.replace(/;.*/, ''), pending: 2 }], 'kept for the desktop only');

  // Another client of the same user from the same host is not the desktop: it takes nothing over.
  const other = await tcpClient('zoe', 'Linphone/5.2.0');
  assert.equal((await other.register()).status, 200);
  assert.equal((await other.register(0)).status, 200);
  assert.deepEqual(other.messages(), []);
  // Nor is the same client of another user.
  const stranger = await tcpClient('xena', ZOIPER);
  assert.equal((await stranger.register()).status, 200);
  assert.deepEqual(stranger.messages(), []);

  const back = await tcpClient('zoe', ZOIPER);
  assert.notEqual(back.ua.contact, desktop.ua.contact, 'a new port');
  const backlog = back.got('second while away');
  assert.equal((await back.register()).status, 200);
  await backlog;
  assert.deepEqual(back.messages(), ['first while away', 'second while away']);
  assert.deepEqual(s.server.registrar.lookup(user).map((b) => b.contact).sort(), [back.ua.contact, laptop.ua.contact].sort(), 'the old connection\'s binding replaced');
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what it took recorded');

  const later = [back.got('later'), laptop.got('later')];
  assert.equal((await sender.ua.message('sip:zoe@localhost', 'later')).status, 200);
  await Promise.all(later);
  assert.deepEqual(back.messages(), ['first while away', 'second while away', 'later']);
  assert.deepEqual(laptop.messages(), ['to both', 'first while away', 'second while away', 'later']);
  const address = (ua: StreamUA) => ua.contact.replace(/;.*/, '');
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 1 || undefined, 'what the desktop took gone');
  assert.deepEqual(await s.server.store.deliveries.pendingCounts(user), [{ aor: user, device: address(other.ua), pending: 1 }], 'only the other client, away, has something waiting');
  const devices = await devicesOf(user);
  assert.deepEqual(devices.map((d) => d.device).sort(), [back.ua, laptop.ua, other.ua].map(address).sort(), 'no ghost of the desktop');
});

test('a user\'s only device without +sip.instance, registered but not reached, keeps the message for itself: it gets it when it comes back from a new connection', async () => {
  const user = 'walt@localhost';
  const phone = await tcpClient('walt', MICROSIP);
  const sender = await tcpClient('vera', MICROSIP);
  assert.equal((await phone.register()).status, 200);
  const live = phone.got('live');
  assert.equal((await sender.ua.message('sip:walt@localhost', 'live')).status, 200);
  await live;
  await dropConnection(phone, user);
  assert.equal((await sender.ua.message('sip:walt@localhost', 'kept for the phone')).status, 202);
  assert.deepEqual((await s.server.store.deliveries.pendingCounts(user)).map((c) => c.pending), [1], 'kept for that device');

  const back = await tcpClient('walt', MICROSIP);
  const backlog = back.got('kept for the phone');
  assert.equal((await back.register()).status, 200);
  await backlog;
  assert.deepEqual(back.messages(), ['kept for the phone']);
  assert.equal((await devicesOf(user)).length, 1, 'one device');
});

/** A REGISTER of a UDP client's contact with its User-Agent. */
function registerUdp(ua: TestUA, userAgent: string, expires: number): Promise<SipMessage> {
  return ua.send(ua.build('REGISTER', 'sip:localhost', {
    to: `<${ua.aor}>`,
    headers: [{ name: 'contact', value: `<${ua.contact}>` }, { name: 'expires', value: String(expires) }, { name: 'user-agent', value: userAgent }],
  }));
}

test('two phones of one model without +sip.instance behind one NAT, the first one not reached for a while when the second one registers: the second does not replace it, each gets every message once, the first its own backlog in order once it is reached again', async () => {
  const user = 'uma@localhost';
  const first = await udpAgent('uma', s.udp);
  const sender = await udpAgent('tom', s.udp);
  assert.equal((await registerUdp(first, ZOIPER, 3600)).status, 200);
  // Out of coverage a moment: what comes to its port is not taken.
  first.answer = 503;
  assert.equal((await sender.message('sip:uma@localhost', 'while the first was away')).status, 202);

  const second = await udpAgent('uma', s.udp);
  assert.equal((await registerUdp(second, ZOIPER, 3600)).status, 200);
  assert.deepEqual(s.server.registrar.lookup(user).map((b) => b.contact).sort(), [first.contact, second.contact].sort(), 'two devices');
  const toSecond = second.waitForRequest((m) => m.body.toString() === 'to both');
  assert.equal((await sender.message('sip:uma@localhost', 'to both')).status, 200, 'the second one took it');
  await toSecond;

  // Back in coverage, the first one refreshes its registration from its port: what waited for it comes, in order.
  first.answer = 200;
  const reached = first.received.length;
  assert.equal((await registerUdp(first, ZOIPER, 3600)).status, 200);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what both took recorded');
  const later = [first, second].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'later'));
  assert.equal((await sender.message('sip:uma@localhost', 'later')).status, 200);
  await Promise.all(later);
  assert.deepEqual(bodies(first).slice(reached), ['while the first was away', 'to both', 'later'], 'its backlog once, in order, then the next one');
  assert.deepEqual(bodies(second), ['to both', 'later'], 'not what came before it registered');
  assert.deepEqual((await devicesOf(user)).map((d) => d.device).sort(), [address(first), address(second)].sort());
});
test('a TCP client without +sip.instance that came back over a new connection while its old one looked open, a message still on its way there: what comes meanwhile waits until the old connection fails that message, then the new one gets both in order and the old binding is dropped', async () => {
  const user = 'ugne@localhost';
  const { laptop, phone: old } = await laptopAndTcpPhone('ugne');
  const sender = await udpAgent('taro', s.udp);
  // The app dies with a message on its way over its connection, which does not look closed (a phone that changed networks).
  old.answer = null;
  const first = old.waitForRequest((m) => m.body.toString() === 'before it came back');
  assert.equal((await sender.message(`sip:${user}`, 'before it came back')).status, 200, 'the laptop took it');
  const firstToOld = await first;

  const back = await tcpPhone('ugne');
  assert.equal(s.server.registrar.lookup(user).length, 3, 'the old connection, still registered, may be another device');
  const second = old.waitForRequest((m) => m.body.toString() === 'after it came back');
  assert.equal((await sender.message(`sip:${user}`, 'after it came back')).status, 200, 'the laptop took it');
  const secondToOld = await second;
  assert.deepEqual(bodies(back), [], 'not before the old connection is known to be another device or this one');

  const both = back.waitForRequest((m) => m.body.toString() === 'after it came back');
  old.write(createResponse(firstToOld, 503).toBuffer());
  await both;
  assert.deepEqual(bodies(back), ['before it came back', 'after it came back']);
  await eventually(() => s.server.registrar.lookup(user).length === 2 || undefined, 'the old binding dropped');
  assert.deepEqual(s.server.registrar.lookup(user).map((b) => b.contact).sort(), [back.contact, laptop.contact].sort());
  old.write(createResponse(secondToOld, 503).toBuffer());
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what it took recorded');

  const live = back.waitForRequest((m) => m.body.toString() === 'later');
  assert.equal((await sender.message(`sip:${user}`, 'later')).status, 200);
  await live;
  assert.deepEqual(bodies(back), ['before it came back', 'after it came back', 'later']);
  assert.deepEqual(bodies(laptop), ['before it came back', 'after it came back', 'later']);
  assert.deepEqual((await devicesOf(user)).map((d) => d.device).sort(), [address(back), address(laptop)].sort(), 'no ghost of the old connection');
});

test('a UDP client without +sip.instance that came back on a new port while its old binding looked alive: once that binding expired unrefreshed, the new one gets what the old one had waiting from before, not what it took itself', async () => {
  const user = 'ugo@localhost';
  const { phone: old } = await laptopAndPhone('ugo', 2);
  const sender = await udpAgent('tim', s.udp);
  old.answer = null;
  const first = old.waitForRequest((m) => m.body.toString() === 'before it came back');
  assert.equal((await sender.message(`sip:${user}`, 'before it came back')).status, 200);
  const firstToOld = await first;
  const back = await udpAgent('ugo', s.udp);
  assert.equal((await registerUdp(back, ZOIPER, 3600)).status, 200);

  await eventually(async () => !(await devicesOf(user)).some((d) => d.device === address(old)) || undefined, 'the old port taken over once its binding expired', 15_000);
  assert.deepEqual(s.server.registrar.lookup(user).map((b) => b.contact).includes(old.contact), false, 'the old binding expired');
  // Sent there before the new one came, it waits for the old port's answer: that port could still take it.
  const backlog = back.waitForRequest((m) => m.body.toString() === 'before it came back');
  old.sendRaw(createResponse(firstToOld, 408).toBuffer());
  await backlog;
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what it took recorded');
  assert.deepEqual(bodies(back), ['before it came back'], 'taken once');
  assert.equal((await devicesOf(user)).some((d) => d.device === address(old)), false, 'the old address forgotten');
});

test('a TCP client without +sip.instance that came back over a new connection, its old one then failing a message: what the old connection had not answered yet from before waits for that answer, and one it takes late the new one does not get again', async () => {
  const user = 'ulrik@localhost';
  const { laptop, phone: old } = await laptopAndTcpPhone('ulrik');
  const sender = await udpAgent('tilda', s.udp);
  old.answer = null;
  const first = old.waitForRequest((m) => m.body.toString() === 'before it came back');
  assert.equal((await sender.message(`sip:${user}`, 'before it came back')).status, 200, 'the laptop took it');
  const firstToOld = await first;
  const back = await tcpPhone('ulrik');
  const second = old.waitForRequest((m) => m.body.toString() === 'after it came back');
  assert.equal((await sender.message(`sip:${user}`, 'after it came back')).status, 200, 'the laptop took it');
  const secondToOld = await second;

  const deliveries = s.server.store.deliveries;
  const { pendingFor } = deliveries;
  let takenOverRead!: () => void;
  const read = new Promise<void>((resolve) => (takenOverRead = resolve));
  deliveries.pendingFor = async (...args) => {
    const page = await pendingFor.apply(deliveries, args);
    if (args[1] === address(back) && page.some((d) => d.message.body.toString() === 'before it came back')) takenOverRead();
    return page;
  };
  try {
    const secondToBack = back.waitForRequest((m) => m.body.toString() === 'after it came back');
    // The old connection fails what came after: it was the client that came back, which takes over from it.
    old.write(createResponse(secondToOld, 503).toBuffer());
    await read;
    // Its queue read, the old connection takes the message from before, late.
    old.write(createResponse(firstToOld, 200).toBuffer());
    await secondToBack;
  } finally {
    deliveries.pendingFor = pendingFor;
  }
  assert.deepEqual(bodies(back), ['after it came back'], 'not what the old connection took');
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what it took recorded');
  assert.deepEqual(bodies(laptop), ['before it came back', 'after it came back']);
  assert.deepEqual((await devicesOf(user)).map((d) => d.device).sort(), [address(back), address(laptop)].sort(), 'no ghost of the old connection');
});

test('a user\'s only device over TCP without +sip.instance that came back over a new connection while a message was on its way over its old one: the new one gets that message, once the old connection failed it, before what came after it came back', async () => {
  const user = 'ulf@localhost';
  const { old, sender, firstToOld, firstSent, newer: back } = await onTheWayToSoleDevice('ulf', 'tove', 'before it came back');
  const second = old.waitForRequest((m) => m.body.toString() === 'after it came back');
  const secondSent = sender.message(`sip:${user}`, 'after it came back');
  const secondToOld = await second;
  const toBack = ['before it came back', 'after it came back'].map((body) => back.waitForRequest((m) => m.body.toString() === body));
  // The old connection fails what came after: it was the client that came back, which takes over from it.
  old.write(createResponse(secondToOld, 503).toBuffer());
  await eventually(() => s.server.registrar.lookup(user).length === 1 || undefined, 'the old binding dropped');
  old.write(createResponse(firstToOld, 503).toBuffer());
  assert.equal((await firstSent).status, 202);
  assert.equal((await secondSent).status, 202);
  await Promise.all(toBack);
  assert.deepEqual(bodies(back), ['before it came back', 'after it came back']);
  assert.deepEqual(bodies(old), ['live', 'before it came back', 'after it came back']);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what it took recorded');
  assert.deepEqual((await devicesOf(user)).map((d) => d.device), [address(back)]);
});

test('a user\'s only device over TCP without +sip.instance that takes, over its old connection, a message sent there before a client like it registered over a new one is another device: the new one gets what came since at once, once, without waiting for the old connection', async () => {
  const user = 'uwe@localhost';
  const { old, sender, firstToOld, firstSent, newer: other } = await onTheWayToSoleDevice('uwe', 'tekla', 'before the other came');
  // The old connection takes what it was sent as the user's only device: a device lives there.
  old.write(createResponse(firstToOld, 200).toBuffer());
  assert.equal((await firstSent).status, 200);

  // The old connection no longer answers for now: what comes next waits for it there, not for the other one.
  const second = old.waitForRequest((m) => m.body.toString() === 'after the other came');
  const toOther = other.waitForRequest((m) => m.body.toString() === 'after the other came');
  assert.equal((await sender.message(`sip:${user}`, 'after the other came')).status, 200, 'the other one took it');
  await toOther;
  old.write(createResponse(await second, 200).toBuffer());
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what both took recorded');
  assert.deepEqual(bodies(other), ['after the other came']);
  assert.deepEqual(bodies(old), ['live', 'before the other came', 'after the other came']);
  assert.equal(s.server.registrar.lookup(user).length, 2, 'neither taken for the other');
});

test('two phones of one model behind one NAT, each with its own port, are two devices: the second one to register gets its first message at once, without waiting for the first phone\'s answer, and both keep getting every message', async () => {
  const user = 'uri@localhost';
  const { phone: first } = await laptopAndPhone('uri');
  const sender = await udpAgent('toni', s.udp);
  const second = await udpAgent('uri', s.udp);
  assert.equal((await registerUdp(second, ZOIPER, 3600)).status, 200);
  // The first phone answers later.
  first.answer = null;
  const toFirst = first.waitForRequest((m) => m.body.toString() === 'hello');
  const toSecond = second.waitForRequest((m) => m.body.toString() === 'hello');
  assert.equal((await sender.message(`sip:${user}`, 'hello')).status, 200, 'the second phone took it');
  await toSecond;
  first.sendRaw(createResponse(await toFirst, 200).toBuffer());
  first.answer = 200;
  const again = [first, second].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'again'));
  assert.equal((await sender.message(`sip:${user}`, 'again')).status, 200);
  await Promise.all(again);
  assert.deepEqual(bodies(first), ['hello', 'again']);
  assert.deepEqual(bodies(second), ['hello', 'again']);
  assert.equal(s.server.registrar.lookup(user).length, 3, 'neither taken for the other');
});

test('a TCP client whose old connection answers a message while a client like it that came back over a new connection takes over what waited there: the new one does not get that message again', async () => {
  const user = 'ulla@localhost';
  const old = await tcpPhone('ulla');
  const sender = await udpAgent('tess', s.udp);
  old.answer = 503;
  assert.equal((await sender.message(`sip:${user}`, 'first')).status, 202);
  // The old connection answers no more for a while: the first message, sent again with the next one, waits there.
  old.answer = null;
  const resent = old.waitForRequest((m) => m.body.toString() === 'first');
  assert.equal((await sender.message(`sip:${user}`, 'second')).status, 202);
  const firstAgain = await resent;

  const back = await tcpPhone('ulla');
  assert.deepEqual(s.server.registrar.lookup(user).map((b) => b.contact), [back.contact], 'the old connection taken for the new one');
  const secondToBack = back.waitForRequest((m) => m.body.toString() === 'second');
  // The old connection's answer comes while the new one takes over what waited for it.
  old.write(createResponse(firstAgain, 200).toBuffer());
  await secondToBack;
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what it took recorded');
  assert.deepEqual(bodies(back), ['second'], 'the first one, taken over the old connection, not again');
});

/** A web client over a WebSocket for `user`, with a contact of a made-up user and `.invalid` host, as a browser SIP library draws each time it starts. */
async function webClient(user: string, userAgent: string) {
  const ua = await StreamUA.connect({ proto: 'ws', user, server: s.ws! });
  closers.push(() => ua.close());
  const contact = `sip:${randomToken(8)}@${ua.viaHost};transport=ws`;
  const register = (): Promise<SipMessage> =>
    ua.send(ua.build('REGISTER', 'sip:localhost', {
      to: `<${ua.aor}>`,
      headers: [{ name: 'contact', value: `<${contact}>` }, { name: 'expires', value: '600' }, { name: 'user-agent', value: userAgent }],
    }));
  const messages = () => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
  return { ua, contact, register, messages };
}

test('a web client over a WebSocket without +sip.instance, reloaded (a new made-up contact on a new connection) after its connection closed, is the one it was: it gets what came meanwhile, in order, and leaves no ghost', async () => {
  const user = 'wanda@localhost';
  const JSSIP = 'JsSIP 3.10.1';
  const laptop = await udpAgent('wanda', s.udp);
  const sender = await udpAgent('vic', s.udp);
  assert.equal((await registerUdp(laptop, MICROSIP, 3600)).status, 200);
  const tab = await webClient('wanda', JSSIP);
  assert.equal((await tab.register()).status, 200);
  const first = tab.ua.waitForRequest((m) => m.body.toString() === 'before the reload');
  assert.equal((await sender.message(`sip:${user}`, 'before the reload')).status, 200);
  await first;

  const binding = s.server.registrar.lookup(user).find((b) => b.contact === tab.contact)!;
  tab.ua.close();
  await eventually(() => !s.server.transports.isConnected(binding.connectionId!), 'the connection seen closed');
  for (const body of ['during the reload 1', 'during the reload 2']) assert.equal((await sender.message(`sip:${user}`, body)).status, 200, 'the laptop took it');

  // Another web client of the user is not that tab.
  const other = await webClient('wanda', 'SIP.js/0.21.2');
  assert.equal((await other.register()).status, 200);
  const reloaded = await webClient('wanda', JSSIP);
  const backlog = reloaded.ua.waitForRequest((m) => m.body.toString() === 'during the reload 2');
  assert.equal((await reloaded.register()).status, 200);
  await backlog;
  assert.deepEqual(reloaded.messages(), ['during the reload 1', 'during the reload 2']);
  assert.deepEqual(other.messages(), []);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts(user)).length === 0 || undefined, 'what it took recorded');
  const devices = (await devicesOf(user)).map((d) => d.device).sort();
  assert.deepEqual(devices, [address(laptop), other.contact.replace(/;.*/, ''), reloaded.contact.replace(/;.*/, '')].sort(), 'no ghost of the tab');
});
