// A MESSAGE to a user with devices known by +sip.instance is written once: sent to the registered
// devices first, stored only for those that did not take it, before the sender's answer. What each
// device receives keeps the order the messages came, whatever answered first and whoever registered
// while a message was on its way to the store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { createResponse, type SipMessage } from '../../src/sip/index.js';
import type { DeliveryStore } from '../../src/store/index.js';
import { messages, newInstance, registerDevice } from './devices.js';
import { eventually } from '../support/eventually.js';

let s: TestServer;
const agent = udpAgents();
before(async () => {
  s = await startServer({ relay: { accept_timeout: 1 } as never });
});
after(() => s.stop());

const storedLines = (aor: string, from: number) => s.logs.slice(from).filter((line) => line.includes('"msg":"message stored') && line.includes(`"aor":"${aor}"`));

/** Two devices of `user` registered with instances of their own, the second then away; and a sender. */
async function phoneAndAwayTablet(user: string) {
  const phone = await agent(user, s.udp);
  const tablet = await agent(user, s.udp);
  const sender = await agent(`${user}-friend`, s.udp);
  const phoneInstance = newInstance();
  const tabletInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  assert.equal((await registerDevice(tablet, { instance: tabletInstance, expires: 0 })).status, 200);
  return { phone, tablet, sender, phoneInstance, tabletInstance, aor: `sip:${user}@localhost` };
}

/**
 * Holds the next message the per-device store is asked to write until `release()`: `adding`
 * settles once it was asked.
 */
function holdNextAdd(deliveries: DeliveryStore): { adding: Promise<void>; release(): void } {
  const add = deliveries.add;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let asked!: () => void;
  const adding = new Promise<void>((resolve) => (asked = resolve));
  deliveries.add = async (...args) => {
    deliveries.add = add;
    asked();
    await released;
    return add.apply(deliveries, args);
  };
  return { adding, release };
}

test('a message every registered device takes is never stored; one for a device away is stored for that device only', async () => {
  const phone = await agent('ada', s.udp);
  const laptop = await agent('ada', s.udp);
  const sender = await agent('ada-friend', s.udp);
  const laptopInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: newInstance() })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  let from = s.logs.length;
  const both = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString() === 'to both'));
  assert.equal((await sender.message('sip:ada@localhost', 'to both')).status, 200);
  await Promise.all(both);
  assert.deepEqual(storedLines('ada@localhost', from), [], 'taken by every device: not written');
  assert.deepEqual(await s.server.store.deliveries.pendingCounts('ada@localhost'), []);

  assert.equal((await registerDevice(laptop, { instance: laptopInstance, expires: 0 })).status, 200);
  from = s.logs.length;
  assert.equal((await sender.message('sip:ada@localhost', 'laptop away')).status, 200);
  const stored = storedLines('ada@localhost', from);
  assert.equal(stored.length, 1, stored.join('\n'));
  assert.match(stored[0]!, /"devices":1\b/, 'stored for the laptop only');
  const backlog = laptop.waitForRequest((m) => m.body.toString() === 'laptop away');
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  await backlog;
  assert.deepEqual(messages(phone), ['to both', 'laptop away']);
  assert.deepEqual(messages(laptop), ['to both', 'laptop away']);
});

test('a device that answers 503 and registers again while its row is being stored gets it from that registration', async () => {
  const { phone, tablet, sender, tabletInstance, aor } = await phoneAndAwayTablet('bo');
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  tablet.answer = 503;
  const hold = holdNextAdd(s.server.store.deliveries);
  const answer = sender.message(aor, 'refused once');
  await hold.adding;
  tablet.answer = 200;
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  const again = tablet.waitForRequest((m) => m.body.toString() === 'refused once');
  hold.release();
  assert.equal((await answer).status, 200, 'the phone took it');
  await again;
  assert.deepEqual(messages(tablet), ['refused once', 'refused once'], 'the 503 answered, then the stored row');
  assert.deepEqual(messages(phone), ['refused once']);
});

test('a device that registers while a message for it is being stored gets it, and a newer message after it', async () => {
  const { phone, tablet, sender, tabletInstance, aor } = await phoneAndAwayTablet('cy');
  const hold = holdNextAdd(s.server.store.deliveries);
  const first = sender.message(aor, 'first');
  await hold.adding;
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  // The tablet is registered now, yet "first" is still on its way to the store: "second" must not
  // reach it before.
  const secondToPhone = phone.waitForRequest((m) => m.body.toString() === 'second');
  const second = sender.message(aor, 'second');
  await secondToPhone;
  const both = tablet.waitForRequest((m) => m.body.toString() === 'second');
  hold.release();
  assert.equal((await first).status, 200);
  assert.equal((await second).status, 200);
  await both;
  assert.deepEqual(messages(tablet), ['first', 'second']);
  assert.deepEqual(messages(phone), ['first', 'second']);
});

test('a device away gets its messages in the order they came, though the later one was answered first', async () => {
  const { phone, tablet, sender, tabletInstance, aor } = await phoneAndAwayTablet('dee');
  // The phone takes "first" only when Parley sends it again (UDP retransmission), "second" at once.
  phone.answer = null;
  const firstToPhone = phone.waitForRequest((m) => m.body.toString() === 'first');
  const first = sender.message(aor, 'first');
  await firstToPhone;
  phone.answer = 200;
  assert.equal((await sender.message(aor, 'second')).status, 200);
  assert.equal((await first).status, 200);
  const both = tablet.waitForRequest((m) => m.body.toString() === 'second');
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  await both;
  assert.deepEqual(messages(tablet), ['first', 'second']);
  assert.deepEqual(messages(phone), ['first', 'second']);
});

test('a message for a device whose queue is being delivered waits behind it', async () => {
  const { tablet, sender, tabletInstance, aor } = await phoneAndAwayTablet('eve');
  assert.equal((await sender.message(aor, 'one')).status, 200);
  assert.equal((await sender.message(aor, 'two')).status, 200);
  // The tablet holds its answer to the first message of its queue while a third comes.
  tablet.answer = null;
  const draining = tablet.waitForRequest((m) => m.body.toString() === 'one');
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  const held = await draining;
  assert.equal((await sender.message(aor, 'three')).status, 200, 'the phone took it');
  tablet.answer = 200;
  const last = tablet.waitForRequest((m) => m.body.toString() === 'three');
  tablet.sendRaw(createResponse(held, 200).toBuffer());
  await last;
  assert.deepEqual(messages(tablet), ['one', 'two', 'three']);
});

test('a device that does not answer in time gets a row before the sender\'s answer, gone once it takes the message', async () => {
  const { phone, sender, phoneInstance, aor } = await phoneAndAwayTablet('fox');
  phone.answer = null;
  const toPhone = phone.waitForRequest((m) => m.body.toString() === 'slow');
  const answer = await sender.message(aor, 'slow');
  assert.equal(answer.status, 202, 'nobody took it within relay.accept_timeout');
  const held: SipMessage = await toPhone;
  const pending = await s.server.store.deliveries.pendingCounts('fox@localhost');
  assert.equal(pending.find(({ device }) => device === phoneInstance)?.pending, 1, 'stored for the phone, still on its way');
  phone.sendRaw(createResponse(held, 200).toBuffer());
  const rows = async () => (await s.server.store.deliveries.pendingCounts('fox@localhost')).find(({ device }) => device === phoneInstance)?.pending ?? 0;
  await eventually(async () => (await rows()) === 0, 'the phone\'s row gone once it answered');
  phone.answer = 200;
  const next = phone.waitForRequest((m) => m.body.toString() === 'next');
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await sender.message(aor, 'next')).status, 200);
  await next;
  assert.deepEqual(messages(phone), ['slow', 'next'], 'taken once: its registration does not bring it again');
});

test('a device that registers again while its late answer is awaited, then refuses (503), gets the message from that registration', async () => {
  const { phone, sender, phoneInstance, aor } = await phoneAndAwayTablet('gus');
  phone.answer = null;
  const toPhone = phone.waitForRequest((m) => m.body.toString() === 'late');
  assert.equal((await sender.message(aor, 'late')).status, 202, 'stored for the phone still answering');
  const held = await toPhone;
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  phone.answer = 200;
  const again = phone.waitForRequest((m) => m.body.toString() === 'late');
  phone.sendRaw(createResponse(held, 503).toBuffer());
  await again;
  assert.deepEqual(messages(phone), ['late', 'late']);
});

test('a registered device that does not answer does not hold up the sender once another device took the message', async () => {
  // accept_timeout far beyond the sender's patience (its transaction gives up after 10 s).
  const patient = await startServer({ relay: { accept_timeout: 60 } as never });
  try {
    const phone = await agent('ivy', patient.udp);
    const asleep = await agent('ivy', patient.udp);
    const sender = await agent('ivy-friend', patient.udp);
    const asleepInstance = newInstance();
    assert.equal((await registerDevice(phone, { instance: newInstance() })).status, 200);
    assert.equal((await registerDevice(asleep, { instance: asleepInstance })).status, 200);
    asleep.answer = null;
    const held = asleep.waitForRequest((m) => m.body.toString() === 'quick');
    assert.equal((await sender.message('sip:ivy@localhost', 'quick')).status, 200, 'the phone took it');
    const request = await held;
    const rows = async () => (await patient.server.store.deliveries.pendingCounts('ivy@localhost')).find(({ device }) => device === asleepInstance)?.pending ?? 0;
    assert.equal(await rows(), 1, 'kept for the device that has not answered, before the sender was answered');
    asleep.sendRaw(createResponse(request, 200).toBuffer());
    await eventually(async () => (await rows()) === 0, 'its row gone once it took the message');
    assert.deepEqual(messages(phone), ['quick']);
  } finally {
    await patient.stop();
  }
});

test('a device that registers again while the row of a message it has not answered yet is being committed is not sent it again', async () => {
  const phone = await agent('kai', s.udp);
  const laptop = await agent('kai', s.udp);
  const sender = await agent('kai-friend', s.udp);
  const laptopInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: newInstance() })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  const deliveries = s.server.store.deliveries;
  const { add, pendingFor } = deliveries;
  // The laptop's row is committed, and its store's answer held until the laptop's drain read it.
  let committed!: () => void;
  const written = new Promise<void>((resolve) => (committed = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  deliveries.add = async (...args) => {
    deliveries.add = add;
    const id = await add.apply(deliveries, args);
    committed();
    await released;
    return id;
  };
  let read!: (bodies: string[]) => void;
  const drainRead = new Promise<string[]>((resolve) => (read = resolve));
  deliveries.pendingFor = async (aor, device, ...rest) => {
    const page = await pendingFor.call(deliveries, aor, device, ...rest);
    if (device === laptopInstance) {
      deliveries.pendingFor = pendingFor;
      read(page.map(({ message }) => message.body.toString()));
    }
    return page;
  };
  try {
    laptop.answer = null;
    const held = laptop.waitForRequest((m) => m.body.toString() === 'once');
    const answered = sender.message('sip:kai@localhost', 'once');
    const request = await held;
    await written;
    assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
    assert.deepEqual(await drainRead, ['once'], 'the drain read the row while the message was on its way to the laptop');
    release();
    assert.equal((await answered).status, 200, 'the phone took it');
    laptop.sendRaw(createResponse(request, 200).toBuffer());
    await eventually(async () => (await deliveries.pendingCounts('kai@localhost')).length === 0 || undefined, 'the laptop\'s row gone once it answered');
  } finally {
    deliveries.add = add;
    deliveries.pendingFor = pendingFor;
    release();
  }
  laptop.answer = 200;
  const next = laptop.waitForRequest((m) => m.body.toString() === 'next');
  assert.equal((await sender.message('sip:kai@localhost', 'next')).status, 200);
  await next;
  assert.deepEqual(messages(laptop), ['once', 'next'], 'sent once: the drain left it to the send under way');
});
