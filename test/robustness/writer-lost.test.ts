// The SQLite writer thread stopping (a fault in it): a MESSAGE it was to store for a device away is
// refused as during any store outage, 503 with Retry-After, never acknowledged unwritten; the
// thread started again after it stores the next ones, delivered when the device registers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { newInstance, registerDevice } from '../devices/devices.js';
import { eventually } from '../support/eventually.js';

/** The writer threads of the server in this process, known by the batches of statements they are sent. */
const writers = new Set<Worker>();
const postMessage = Worker.prototype.postMessage;
Worker.prototype.postMessage = function (this: Worker, message: unknown, ...rest: never[]) {
  if (typeof message === 'object' && message !== null && 'newSql' in message) writers.add(this);
  return postMessage.call(this, message, ...rest);
};

let s: TestServer;
const agent = udpAgents();
before(async () => {
  s = await startServer();
});
after(async () => {
  Worker.prototype.postMessage = postMessage;
  await s.stop();
});

test('a writer thread that stops: the MESSAGE to store gets 503 with Retry-After; once a new thread runs, messages are stored and delivered', async () => {
  const phone = await agent('dan', s.udp);
  const sender = await agent('dan-friend', s.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(phone, { instance })).status, 200);
  assert.equal((await registerDevice(phone, { instance, expires: 0 })).status, 200, 'the phone is away, remembered');
  assert.equal(writers.size, 1, 'the bindings went through the writer thread');

  await [...writers][0]!.terminate();
  const refused = await sender.message('sip:dan@localhost', 'while the writer is gone');
  assert.equal(refused.status, 503, `${refused.status} ${refused.reason}`);
  assert.match(refused.reason, /store unavailable/);
  const retryAfter = Number(refused.get('retry-after'));
  assert.ok(retryAfter > 0 && retryAfter <= 10, `Retry-After ${refused.get('retry-after')}`);

  await eventually(async () => (await sender.message('sip:dan@localhost', 'after')).status === 202, 'a MESSAGE stored by the new thread');
  const delivered = phone.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await registerDevice(phone, { instance })).status, 200);
  assert.equal((await delivered).body.toString(), 'after');
  assert.ok(!phone.received.some((m) => m.body.toString() === 'while the writer is gone'), 'the refused MESSAGE was not stored');
});
