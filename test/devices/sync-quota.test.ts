// Copies of what a user sent (own-message sync) waiting for the user's away device are counted apart
// from the messages waiting for the user (offline.max_per_user each): a user who sends a lot while
// a tablet sleeps does not get the messages of others refused, and copies stay bounded too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents, type TestUA } from '../support/ua.js';
import { newInstance, registerDevice } from './devices.js';

let s: TestServer;
const agent = udpAgents();
before(async () => {
  s = await startServer({ relay: { accept_timeout: 1 } as never, offline: { max_per_user: 2 } as never });
});
after(() => s.stop());

const bodies = (ua: TestUA) => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
const copyRefusedLines = (from: number) => s.logs.slice(from).filter((line) => line.includes('copy of a sent message not kept: offline mailbox full'));

test('copies of what a user sent do not fill the mailbox others write to; each kind has offline.max_per_user', async () => {
  const phone = await agent('vic', s.udp);
  const tablet = await agent('vic', s.udp);
  const wes = await agent('wes', s.udp);
  const phoneInstance = newInstance();
  const tabletInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  assert.equal((await wes.register()).status, 200);
  assert.equal((await registerDevice(tablet, { instance: tabletInstance, expires: 0 })).status, 200);

  // Two copies wait for the tablet: as many as the limit.
  for (const text of ['mine 1', 'mine 2']) assert.equal((await phone.message('sip:wes@localhost', text)).status, 200);
  const toPhone = phone.waitForRequest((m) => m.body.toString() === 'yours 1');
  assert.equal((await wes.message('sip:vic@localhost', 'yours 1')).status, 200);
  await toPhone;
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  assert.equal((await wes.message('sip:vic@localhost', 'yours 2')).status, 202, 'kept: the copies are not counted with it');
  const full = await wes.message('sip:vic@localhost', 'yours 3');
  assert.deepEqual([full.status, full.reason], [486, 'Busy Here (offline mailbox full)'], 'two received messages wait: the limit');

  const drained = phone.waitForRequest((m) => m.body.toString() === 'yours 2');
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  await drained;
  const from = s.logs.length;
  assert.equal((await phone.message('sip:wes@localhost', 'mine 3')).status, 200, 'the message itself goes');
  assert.equal(copyRefusedLines(from).length, 1, 'a third copy is not kept');

  const last = tablet.waitForRequest((m) => m.body.toString() === 'yours 2');
  assert.equal((await registerDevice(tablet, { instance: tabletInstance })).status, 200);
  await last;
  assert.deepEqual(bodies(tablet), ['mine 1', 'mine 2', 'yours 1', 'yours 2']);
});
