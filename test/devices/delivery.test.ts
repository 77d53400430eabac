// Durable per-device delivery: every device a user was seen registering from gets every message,
// including one that was away (not registered) when it came and registers again later.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents, type TestUA } from '../support/ua.js';
import { newInstance, registerDevice } from './devices.js';
import { adminToken, adminUrl, rpc, sample, scrape } from '../admin/client.js';
import { parley } from '../support/cli.js';
import { StreamUA } from '../support/stream-ua.js';
import { eventually } from '../support/eventually.js';

let s: TestServer;
const agent = udpAgents();
const streams: StreamUA[] = [];
before(async () => {
  s = await startServer({ relay: { accept_timeout: 1 } as never });
});
after(async () => {
  for (const ua of streams) ua.close();
  await s.stop();
});

const messages = (ua: TestUA | StreamUA) => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());

/** Two devices of `user`, each with its own instance, both registered, and a sender. */
async function twoDevices(user: string) {
  const phone = await agent(user, s.udp);
  const laptop = await agent(user, s.udp);
  const sender = await agent(`${user}-friend`, s.udp);
  const phoneInstance = newInstance();
  const laptopInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  return { phone, laptop, sender, phoneInstance, laptopInstance, aor: `sip:${user}@localhost` };
}

test('a device away when a message came gets exactly that message, once, when it registers again', async () => {
  const { phone, laptop, sender, phoneInstance, aor } = await twoDevices('ann');
  const both = [phone.waitForRequest((m) => m.method === 'MESSAGE'), laptop.waitForRequest((m) => m.method === 'MESSAGE')];
  assert.equal((await sender.message(aor, 'to both')).status, 200);
  await Promise.all(both);

  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  const toLaptop = laptop.waitForRequest((m) => m.body.toString() === 'while the phone slept');
  assert.equal((await sender.message(aor, 'while the phone slept')).status, 200, 'the laptop answered');
  await toLaptop;

  const backlog = phone.waitForRequest((m) => m.body.toString() === 'while the phone slept');
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  await backlog;
  // A refresh and a later message: nothing already taken comes again.
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  const later = phone.waitForRequest((m) => m.body.toString() === 'later');
  assert.equal((await sender.message(aor, 'later')).status, 200);
  await later;
  assert.deepEqual(messages(phone), ['to both', 'while the phone slept', 'later']);
  assert.deepEqual(messages(laptop), ['to both', 'while the phone slept', 'later']);
});

test('a GRUU reaches its device only, and nothing of it is kept for the others', async () => {
  const { phone, laptop, sender, laptopInstance } = await twoDevices('bea');
  const toLaptop = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await sender.message(`sip:bea@localhost;gr=${laptopInstance}`, 'laptop only')).status, 200);
  await toLaptop;
  assert.deepEqual(messages(phone), []);
  assert.deepEqual(await s.server.store.deliveries.pendingCounts('bea@localhost'), []);
});

test('with no device registered the sender gets 202; each device gets it when it registers, one that never comes back blocks no one', async () => {
  const { phone, laptop, sender, phoneInstance, laptopInstance, aor } = await twoDevices('cid');
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, expires: 0 })).status, 200);
  const first = await sender.message(aor, 'one');
  assert.equal(first.status, 202);
  assert.match(first.reason, /stored/);
  assert.equal((await sender.message(aor, 'two')).status, 202);

  const last = laptop.waitForRequest((m) => m.body.toString() === 'two');
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  await last;
  assert.deepEqual(messages(laptop), ['one', 'two']);
  // The phone never came back: its deliveries stay, the laptop's are done.
  const pending = await s.server.store.deliveries.pendingCounts('cid@localhost');
  assert.equal(pending.find(({ device }) => device === phoneInstance)?.pending, 2);
});

test('a device that does not answer, or answers 503, keeps the message; the sender gets 202 after relay.accept_timeout', async () => {
  const { phone, laptop, sender, phoneInstance, aor } = await twoDevices('dot');
  phone.answer = null;
  const toLaptop = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await sender.message(aor, 'laptop answers')).status, 200, 'an unresponsive phone does not hold up the laptop\'s 200');
  await toLaptop;
  phone.answer = 503;
  laptop.answer = 503;
  assert.equal((await sender.message(aor, 'both busy')).status, 202);
  phone.answer = null;
  laptop.answer = null;
  const accepted = await sender.message(aor, 'nobody answers in time');
  assert.equal(accepted.status, 202);
  assert.match(accepted.reason, /stored/);

  // The phone registers again: it gets what it answered 503 to, with its Date.
  phone.answer = 200;
  const phoneGot = phone.waitForRequest((m) => m.body.toString() === 'both busy' && m.has('date'));
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  await phoneGot;
});

test('Priority: non-urgent waits behind normal messages; Expires: 0 and isComposing are never kept', async () => {
  const { phone, sender, phoneInstance, laptop, laptopInstance, aor } = await twoDevices('eli');
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, expires: 0 })).status, 200);
  assert.equal((await sender.message(aor, 'receipt', [{ name: 'priority', value: 'non-urgent' }])).status, 202);
  assert.equal((await sender.message(aor, 'now or never', [{ name: 'expires', value: '0' }])).status, 480);
  const composing = '<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>';
  assert.equal((await sender.message(aor, composing, [], 'application/im-iscomposing+xml')).status, 480);
  assert.equal((await sender.message(aor, 'hello')).status, 202);

  const last = phone.waitForRequest((m) => m.body.toString() === 'receipt');
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  await last;
  assert.deepEqual(messages(phone), ['hello', 'receipt']);
});

test('1,000 deliveries waiting for one device are delivered in order, a page at a time', async () => {
  const { phone, phoneInstance, laptop, laptopInstance } = await twoDevices('fay');
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, expires: 0 })).status, 200);
  const deliveries = s.server.store.deliveries;
  const aor = 'fay@localhost';
  const now = Date.now();
  const total = 1000;
  for (let i = 0; i < total; i++) {
    const message = { aor, fromHeader: '<sip:gus@localhost>', toHeader: `<sip:${aor}>`, contentType: 'text/plain', body: Buffer.from(`m${i}`), receivedAt: now, expiresAt: now + 60_000 };
    assert.equal(typeof (await deliveries.add(message, [phoneInstance], 0, total)), 'number');
  }
  const pageSizes: number[] = [];
  const removals: number[] = [];
  const { pendingFor, done } = deliveries;
  deliveries.pendingFor = async (...args) => {
    const page = await pendingFor.apply(deliveries, args);
    if (args[1] === phoneInstance) pageSizes.push(page.length);
    return page;
  };
  deliveries.done = (ids, device) => {
    // Only this device's: another test's device may still take a message it was sent, its transaction's retransmissions
    // lasting up to 32 s (dot's phone answers again while this runs).
    if (device === phoneInstance) removals.push(ids.length);
    return done.call(deliveries, ids, device);
  };
  try {
    const last = phone.waitForRequest((m) => m.body.toString() === `m${total - 1}`, 60_000);
    assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
    await last;
    await eventually(async () => (await deliveries.pendingCounts(aor)).length === 0, 'every row taken gone');
  } finally {
    deliveries.pendingFor = pendingFor;
    deliveries.done = done;
  }
  assert.deepEqual(removals, Array.from({ length: total / 100 }, () => 100), 'the rows a device took go a page at a time');
  assert.deepEqual(messages(phone), Array.from({ length: total }, (_, i) => `m${i}`), 'every message, once, in order');
  assert.ok(Math.max(...pageSizes) <= 100, `pages of ${Math.max(...pageSizes)}`);
  assert.ok(pageSizes.length >= total / 100, `${pageSizes.length} pages`);
  assert.deepEqual(messages(laptop), [], 'rows of one device are not another\'s');
});

/** A store read held until `release()`: `asked` settles once it was asked for; `restore` puts the store's own back. */
interface HeldRead {
  asked: Promise<void>;
  release(): void;
  restore(): void;
}

/** What holding a read needs: `hold` is awaited by the wrapper before the read it holds. */
function heldRead(install: (hold: () => Promise<void>) => () => void): HeldRead {
  let ask!: () => void;
  const asked = new Promise<void>((resolve) => (ask = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const restore = install(() => {
    ask();
    return released;
  });
  return { asked, release, restore };
}

/**
 * `user`'s phone, away with `older` waiting for it, registers; while the read of what waits (held
 * by `holdRead`) is under way, a MESSAGE comes. Its sender gets 200 once the phone took it after
 * `older`, each once.
 */
async function messageWhileQueueRead(user: string, keepOlder: (aor: string, phoneInstance: string) => Promise<void>, holdRead: (phoneInstance: string) => HeldRead) {
  const phone = await agent(user, s.udp);
  const sender = await agent(`${user}-friend`, s.udp);
  const phoneInstance = newInstance();
  const aor = `sip:${user}@localhost`;
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  await keepOlder(aor, phoneInstance);
  const deliveries = s.server.store.deliveries;
  // The read is held until the MESSAGE was asked to be stored behind what it reads.
  const read = holdRead(phoneInstance);
  const storing = heldRead((hold) => {
    const { add } = deliveries;
    deliveries.add = async (...args) => {
      deliveries.add = add;
      await hold();
      return add.apply(deliveries, args);
    };
    return () => (deliveries.add = add);
  });
  // Told, not held.
  storing.release();
  try {
    assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
    await read.asked;
    const toPhone = phone.waitForRequest((m) => m.body.toString() === 'meanwhile');
    const answered = sender.message(aor, 'meanwhile');
    await storing.asked;
    read.release();
    const [answer] = await Promise.all([answered, toPhone]);
    assert.equal(answer.status, 200, `${answer.status} ${answer.reason}: the phone is online and took it`);
  } finally {
    read.restore();
    storing.restore();
    read.release();
  }
  const next = phone.waitForRequest((m) => m.body.toString() === 'next');
  assert.equal((await sender.message(aor, 'next')).status, 200);
  await next;
  assert.deepEqual(messages(phone), ['older', 'meanwhile', 'next'], 'in order, each once');
  await eventually(async () => (await deliveries.pendingCounts(`${user}@localhost`)).length === 0, 'every row taken gone');
}

test('a message that comes while the queue of a device that just registered is read gets 200: the device takes it after what waited, once', async () => {
  const deliveries = s.server.store.deliveries;
  await messageWhileQueueRead(
    'ola',
    async (aor) => assert.equal((await (await agent('ola-early', s.udp)).message(aor, 'older')).status, 202, 'away: stored'),
    (phoneInstance) => heldRead((hold) => {
      const { pendingFor } = deliveries;
      deliveries.pendingFor = async (...args) => {
        if (args[1] !== phoneInstance) return pendingFor.apply(deliveries, args);
        deliveries.pendingFor = pendingFor;
        await hold();
        return pendingFor.apply(deliveries, args);
      };
      return () => (deliveries.pendingFor = pendingFor);
    }),
  );
});

test('a message that comes while a user\'s messages from before per-device delivery are read for the device that just registered gets 200, after them', async () => {
  const offline = s.server.store.offline;
  await messageWhileQueueRead(
    'pia',
    async () => {
      const now = Date.now();
      await offline.add({ aor: 'pia@localhost', fromHeader: '<sip:hal@localhost>', toHeader: '<sip:pia@localhost>', contentType: 'text/plain', body: Buffer.from('older'), receivedAt: now, expiresAt: now + 60_000 }, 10);
    },
    () => heldRead((hold) => {
      const { listFor } = offline;
      offline.listFor = async (...args) => {
        if (args[0] !== 'pia@localhost') return listFor.apply(offline, args);
        offline.listFor = listFor;
        await hold();
        return listFor.apply(offline, args);
      };
      return () => (offline.listFor = listFor);
    }),
  );
});

test('the devices of a user are read from the store once, not for every message, and again once one of them registers', async () => {
  const { phone, laptop, sender, aor } = await twoDevices('hope');
  const deliveries = s.server.store.deliveries;
  const { devicesOf } = deliveries;
  let reads = 0;
  deliveries.devicesOf = (...args) => {
    reads++;
    return devicesOf.apply(deliveries, args);
  };
  try {
    for (const body of ['one', 'two', 'three']) {
      const both = [phone.waitForRequest((m) => m.body.toString() === body), laptop.waitForRequest((m) => m.body.toString() === body)];
      assert.equal((await sender.message(aor, body)).status, 200);
      await Promise.all(both);
    }
    assert.equal(reads, 1);
    const tablet = await agent('hope', s.udp);
    assert.equal((await registerDevice(tablet, { instance: newInstance() })).status, 200);
    const all = [phone, laptop, tablet].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'four'));
    assert.equal((await sender.message(aor, 'four')).status, 200);
    await Promise.all(all);
    assert.equal(reads, 2, 'read again after the tablet registered');
  } finally {
    deliveries.devicesOf = devicesOf;
  }
  assert.deepEqual(messages(phone), ['one', 'two', 'three', 'four']);
});

test('messages stored before per-device delivery (one row for the user) still go to the next device that registers', async () => {
  const { phone, phoneInstance, laptop, laptopInstance } = await twoDevices('gil');
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, expires: 0 })).status, 200);
  const now = Date.now();
  await s.server.store.offline.add({ aor: 'gil@localhost', fromHeader: '<sip:hal@localhost>', toHeader: '<sip:gil@localhost>', contentType: 'text/plain', body: Buffer.from('from before'), receivedAt: now, expiresAt: now + 60_000 }, 10);
  const got = laptop.waitForRequest((m) => m.body.toString() === 'from before');
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  await got;
  // Taken once: a new registration does not bring it again.
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  const live = laptop.waitForRequest((m) => m.body.toString() === 'live');
  assert.equal((await laptop.message('sip:gil@localhost', 'live')).status, 200);
  await live;
  assert.deepEqual(messages(laptop), ['from before', 'live']);
});

test('devices.list and `parley devices list` show each device with its flows, last registration and pending messages; a metric counts what waits', async () => {
  const { phone, laptop, sender, phoneInstance, laptopInstance, aor } = await twoDevices('kim');
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  const before = sample((await scrape(s, adminToken(s))).text, 'parley_relay_pending_deliveries') ?? 0;
  const toLaptop = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await sender.message(aor, 'for the phone later')).status, 200);
  await toLaptop;
  assert.ok((sample((await scrape(s, adminToken(s))).text, 'parley_relay_pending_deliveries') ?? 0) >= before + 1);

  const { result } = await rpc(s, 'devices.list', { user: 'sip:kim@localhost' });
  assert.equal(result.aor, 'sip:kim@localhost');
  const byDevice = new Map(result.devices.map((d: { device: string }) => [d.device, d]));
  const phoneEntry = byDevice.get(phoneInstance) as { instance: string; flows: unknown[]; pending: number; lastSeen: string };
  assert.equal(phoneEntry.instance, phoneInstance);
  assert.deepEqual(phoneEntry.flows, [], 'not registered');
  assert.equal(phoneEntry.pending, 1);
  assert.ok(Date.parse(phoneEntry.lastSeen) <= Date.now());
  const laptopEntry = byDevice.get(laptopInstance) as { flows: Array<{ contact: string; source: string }>; pending: number };
  assert.equal(laptopEntry.flows.length, 1);
  assert.equal(laptopEntry.flows[0]!.contact, laptop.contact);
  assert.match(laptopEntry.flows[0]!.source, /^udp:127\.0\.0\.1:\d+$/);

  const bad = await rpc(s, 'devices.list', { user: 'kim' });
  assert.match(bad.error?.message ?? '', /"user" must be user@domain/);

  const cli = await parley(['devices', 'list', 'kim@localhost', '--admin', adminUrl(s), '--token', adminToken(s)]);
  assert.equal(cli.code, 0, cli.stderr);
  const lines = cli.stdout.trim().split('\n');
  assert.match(lines[0]!, /^DEVICE\s+FLOWS\s+LAST SEEN\s+PENDING/);
  assert.match(lines.find((l) => l.startsWith(phoneInstance))!, /\s-\s+\S+\s+1\b/);
  assert.match(lines.find((l) => l.startsWith(laptopInstance))!, /udp:127\.0\.0\.1:\d+\s+\S+\s+0\b/);
});

test('a registered device that answered 503 gets that message again before the next one, without registering again', async () => {
  const { phone, laptop, sender, laptopInstance, aor } = await twoDevices('ivy');
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, expires: 0 })).status, 200);
  phone.answer = 503;
  assert.equal((await sender.message(aor, 'first')).status, 202);
  phone.answer = 200;
  const second = phone.waitForRequest((m) => m.body.toString() === 'second');
  assert.equal((await sender.message(aor, 'second')).status, 202);
  await second;
  assert.deepEqual(messages(phone), ['first', 'first', 'second'], 'the 503 answered, then the queue in order');
});

test('a device whose TCP flow broke gets what came meanwhile once it registers again over a new connection', async () => {
  const instance = newInstance();
  const flow = await StreamUA.connect({ proto: 'tcp', user: 'joy', server: s.tcp });
  streams.push(flow);
  const laptop = await agent('joy', s.udp);
  const sender = await agent('joy-friend', s.udp);
  assert.equal((await registerDevice(flow, { instance, regId: 1, uriParams: ';ob', supported: 'outbound' })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: newInstance() })).status, 200);

  flow.close();
  await eventually(() => s.server.registrar.lookup('joy@localhost').length === 1, 'the broken flow dropped');
  const toLaptop = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await sender.message('sip:joy@localhost', 'while the flow was down')).status, 200);
  await toLaptop;

  const again = await StreamUA.connect({ proto: 'tcp', user: 'joy', server: s.tcp });
  streams.push(again);
  const backlog = again.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await registerDevice(again, { instance, regId: 1, uriParams: ';ob', supported: 'outbound' })).status, 200);
  assert.equal((await backlog).body.toString(), 'while the flow was down');
  assert.deepEqual(messages(again), ['while the flow was down']);
});

test('each device gets the message as a copy of its own: its contact as Request-URI, Parley\'s Via above the sender\'s, one hop fewer, the sender\'s other headers and body as sent', async () => {
  const { phone, laptop, sender, aor } = await twoDevices('amos');
  const arrived = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.method === 'MESSAGE'));
  const response = await sender.message(aor, 'to every device, héhé', [{ name: 'subject', value: 'copies' }, { name: 'p-asserted-identity', value: '<sip:ceo@localhost>' }]);
  assert.equal(response.status, 200);
  const [toPhone, toLaptop] = await Promise.all(arrived);
  for (const [ua, leg] of [[phone, toPhone!], [laptop, toLaptop!]] as const) {
    assert.equal(leg.uri, ua.contact);
    const vias = leg.getAll('via');
    assert.equal(vias.length, 2, leg.toString());
    assert.match(vias[0]!, /^SIP\/2\.0\/UDP 127\.0\.0\.1:\d+;branch=z9hG4bK/);
    assert.match(vias[1]!, new RegExp(`:${sender.localPort};`));
    assert.equal(leg.get('max-forwards'), '69');
    assert.equal(leg.get('subject'), 'copies');
    assert.equal(leg.has('p-asserted-identity'), false);
    assert.equal(leg.body.toString(), 'to every device, héhé');
    assert.equal(leg.callId, toPhone!.callId);
  }
  assert.notEqual(toPhone!.getAll('via')[0], toLaptop!.getAll('via')[0], 'a branch each');
});
