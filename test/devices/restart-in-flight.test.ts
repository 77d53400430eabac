// A device that restarts (its app killed, a phone rebooting) registers again with its +sip.instance
// from a new UDP port while a message is still on its way to the old one, unanswered there: that
// message reaches the new port before anything newer, once; the device's queue stays in order.
// Each test catches the old leg at another stage: sent live and not answered yet, stored for the
// device after relay.accept_timeout while its send still waits, sent from the device's queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents, type TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { messages, newInstance, registerDevice } from './devices.js';

let s: TestServer;
const agent = udpAgents();
before(async () => {
  // The old port never answers: its leg ends (408) after relay.fork_timeout, well after relay.accept_timeout.
  s = await startServer({ relay: { accept_timeout: 1, fork_timeout: 6 } as never });
});
after(async () => {
  await s.stop();
});

/** `user`'s phone, registered with its instance from one port, and a sender. */
async function phoneOf(user: string) {
  const phone = await agent(user, s.udp);
  const sender = await agent(`${user}-friend`, s.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(phone, { instance })).status, 200);
  return { phone, sender, instance, aor: `sip:${user}@localhost` };
}

/** The phone's app died: nothing answers at its port. It restarts on a new port, with the same instance. */
function restart(user: string, old: TestUA): Promise<TestUA> {
  old.answer = null;
  return agent(user, s.udp);
}

async function receivedInOrder(ua: TestUA, bodies: string[]): Promise<void> {
  await eventually(() => messages(ua).length >= bodies.length || undefined, `${bodies.length} messages at the new port`, 15_000);
  assert.deepEqual(messages(ua), bodies);
}

test('a message sent live to the old port, not answered yet when the device registers from a new one, reaches the new port before newer ones', async () => {
  const { phone, sender, instance, aor } = await phoneOf('rhea');
  const back = await restart('rhea', phone);
  const atOldPort = phone.waitForRequest((m) => m.body.toString() === 'first');
  const first = sender.message(aor, 'first');
  await atOldPort;
  assert.equal((await registerDevice(back, { instance })).status, 200);
  assert.equal(s.server.registrar.lookup('rhea@localhost').length, 1, 'one binding per instance: the new port replaced the old');
  const later = [sender.message(aor, 'second'), sender.message(aor, 'third')];
  await receivedInOrder(back, ['first', 'second', 'third']);
  for (const answer of [first, ...later]) assert.ok([200, 202].includes((await answer).status));
  await eventually(async () => (await s.server.store.deliveries.pendingCounts('rhea@localhost')).length === 0 || undefined, 'nothing left waiting');
  assert.deepEqual(messages(back), ['first', 'second', 'third'], 'nothing twice');
});

test('a message stored for the device after relay.accept_timeout while its send to the old port still waits reaches the new port before newer ones', async () => {
  const { phone, sender, instance, aor } = await phoneOf('sven');
  const back = await restart('sven', phone);
  assert.equal((await sender.message(aor, 'first')).status, 202, 'not answered within relay.accept_timeout: stored');
  assert.equal(messages(phone).length, 1, 'sent to the old port, not answered there');
  assert.equal((await registerDevice(back, { instance })).status, 200);
  const second = await sender.message(aor, 'second');
  assert.ok([200, 202].includes(second.status));
  await receivedInOrder(back, ['first', 'second']);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts('sven@localhost')).length === 0 || undefined, 'nothing left waiting');
  assert.deepEqual(messages(back), ['first', 'second'], 'nothing twice');
});

test('a message the device\'s queue sent to the old port, not answered yet when the device registers from a new one, reaches the new port before newer ones', async () => {
  const { phone, sender, instance, aor } = await phoneOf('tova');
  assert.equal((await registerDevice(phone, { instance, expires: 0 })).status, 200);
  assert.equal((await sender.message(aor, 'waited')).status, 202, 'away: stored');
  const back = await restart('tova', phone);
  const atOldPort = phone.waitForRequest((m) => m.body.toString() === 'waited');
  assert.equal((await registerDevice(phone, { instance })).status, 200);
  await atOldPort;
  assert.equal((await registerDevice(back, { instance })).status, 200);
  assert.ok([200, 202].includes((await sender.message(aor, 'newer')).status));
  await receivedInOrder(back, ['waited', 'newer']);
  await eventually(async () => (await s.server.store.deliveries.pendingCounts('tova@localhost')).length === 0 || undefined, 'nothing left waiting');
  assert.deepEqual(messages(back), ['waited', 'newer'], 'nothing twice');
});
