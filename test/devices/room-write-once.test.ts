// What a room sends a member with several devices (the history replayed when it joins, posts) goes
// through the relay's per-device delivery like any message: written to the store once, with one
// delivery for each device that did not take it, never once per device nor in the old store too.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents, type TestUA } from '../support/ua.js';
import { command } from '../imc/room-helpers.js';
import { eventually } from '../support/eventually.js';
import { registerDevice } from './devices.js';

let s: TestServer;
const agent = udpAgents();
before(async () => {
  s = await startServer({ relay: { accept_timeout: 1 } as never, imc: { history: 3 } as never });
});
after(() => s.stop());

/** Every write of a message for `aor` to either store, with the devices it is kept for (none: the old store). */
function countWrites(aor: string): { writes: Array<{ body: string; devices?: string[] }>; restore(): void } {
  const { deliveries, offline } = s.server.store;
  const writes: Array<{ body: string; devices?: string[] }> = [];
  const { add: addPerDevice } = deliveries;
  const { add: addOffline } = offline;
  deliveries.add = (message, devices, ...rest) => {
    if (message.aor === aor) writes.push({ body: message.body.toString(), devices });
    return addPerDevice.call(deliveries, message, devices, ...rest);
  };
  offline.add = (message, ...rest) => {
    if (message.aor === aor) writes.push({ body: message.body.toString() });
    return addOffline.call(offline, message, ...rest);
  };
  return {
    writes,
    restore() {
      deliveries.add = addPerDevice;
      offline.add = addOffline;
    },
  };
}

const received = (ua: TestUA, text: string) => ua.received.filter((m) => m.method === 'MESSAGE' && m.body.toString().includes(text)).length;

test('the history a member is replayed on joining, and a post, are each written once for a member with three devices, one away', async () => {
  const bob = await agent('bob', s.udp);
  assert.equal((await bob.register()).status, 200);
  assert.match(await command(bob, 'sip:chat-manager@localhost', '#create chat-once'), /created room/);
  for (const text of ['history one', 'history two']) assert.equal((await bob.message('sip:chat-once@localhost', text)).status, 200);

  const phone = await agent('uma', s.udp);
  const laptop = await agent('uma', s.udp);
  const tablet = await agent('uma', s.udp);
  // The phone with +sip.instance, the others without: each of these is its contact's address.
  assert.equal((await registerDevice(phone)).status, 200);
  assert.equal((await laptop.register()).status, 200);
  assert.equal((await tablet.register()).status, 200);
  assert.equal((await tablet.register(0)).status, 200);

  const counted = countWrites('uma@localhost');
  try {
    const replayed = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString().includes('history two')));
    assert.match(await command(laptop, 'sip:chat-once@localhost', '#join'), /you joined/);
    await Promise.all(replayed);
    const posted = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString().includes('a post')));
    assert.equal((await bob.message('sip:chat-once@localhost', 'a post')).status, 200);
    await Promise.all(posted);
    await eventually(() => counted.writes.some((write) => write.body.includes('a post')) || undefined, 'the post stored for the tablet');

    for (const text of ['history one', 'history two', 'a post']) {
      const writes = counted.writes.filter((write) => write.body.includes(text));
      assert.deepEqual(writes.map((write) => write.devices), [[tablet.contact]], `"${text}" written once, for the tablet only`);
    }
    assert.ok(counted.writes.every((write) => write.devices?.length === 1), JSON.stringify(counted.writes));
    assert.equal(new Set(counted.writes.map((write) => write.body)).size, counted.writes.length, 'no message written twice');
  } finally {
    counted.restore();
  }

  const backlog = tablet.waitForRequest((m) => m.body.toString().includes('a post'));
  assert.equal((await tablet.register()).status, 200);
  await backlog;
  for (const text of ['history one', 'history two', 'a post']) {
    assert.equal(received(tablet, text), 1, `the tablet got "${text}" once`);
    assert.equal(received(phone, text), 1, `the phone got "${text}" once`);
  }
});
