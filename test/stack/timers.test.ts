// The timer queue of every transaction: one FIFO per duration, cancelled timers let go in batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeClock, TimerQueue } from '../../src/sip/index.js';

test('cancelled timers are let go long before they would have been due; the others still fire, in order', () => {
  const clock = new FakeClock();
  const timers = new TimerQueue(clock);
  const fired: number[] = [];
  // As Timer F of transactions answered at once: nearly all cancelled soon after they are armed.
  const handles = Array.from({ length: 5000 }, (_, i) => timers.schedule(32_000, () => fired.push(i)));
  for (const [i, handle] of handles.entries()) if (i % 10 !== 0) handle.cancel();
  assert.ok(timers.pending < 1500, `${timers.pending} timers kept of 500 live ones`);
  handles[0]!.cancel();
  handles[0]!.cancel();
  clock.advance(32_010, timers);
  assert.deepEqual(fired, handles.map((_, i) => i).filter((i) => i % 10 === 0 && i > 0));
  assert.equal(timers.pending, 0);
});

test('the queue looks for due timers only while it holds any: idle, it does not wake the event loop', (t) => {
  const clock = new FakeClock();
  const timers = new TimerQueue(clock);
  t.after(() => timers.stop());
  timers.start();
  assert.equal(timers.running, false, 'nothing held, yet the interval runs');
  const fired: string[] = [];
  const retransmit = timers.schedule(500, () => fired.push('E'));
  timers.schedule(32_000, () => fired.push('F'));
  assert.equal(timers.running, true);
  clock.advance(500, timers);
  assert.deepEqual(fired, ['E']);
  assert.equal(timers.running, true, 'Timer F is still held');
  retransmit.cancel();
  clock.advance(31_500, timers);
  assert.deepEqual(fired, ['E', 'F']);
  assert.equal(timers.running, false);
  // A timer armed later starts it again, and still fires.
  timers.schedule(500, () => fired.push('again'));
  assert.equal(timers.running, true);
  clock.advance(500, timers);
  assert.deepEqual(fired, ['E', 'F', 'again']);
  timers.stop();
  assert.equal(timers.running, false);
});

test('timers held before start() are looked for once it is called', (t) => {
  const clock = new FakeClock();
  const timers = new TimerQueue(clock);
  t.after(() => timers.stop());
  timers.schedule(500, () => {});
  assert.equal(timers.running, false, 'not started yet');
  timers.start();
  assert.equal(timers.running, true);
});

test('a queue holding only a far timer sleeps until it falls due, and still wakes for a nearer one armed later', async (t) => {
  // A real clock that counts how often the queue looks at it: once per timer armed, once per wake-up.
  let looks = 0;
  const timers = new TimerQueue({ now: () => (looks++, Date.now()) });
  t.after(() => timers.stop());
  timers.start();
  const fired: string[] = [];
  // As a redelivery to a device that missed a message, minutes away.
  timers.schedule(600_000, () => fired.push('redelivery'));
  const armed = looks;
  await sleep(200);
  assert.equal(looks - armed, 0, `the queue woke up ${looks - armed} times with nothing due`);
  timers.schedule(50, () => fired.push('retransmission'));
  await sleep(300);
  assert.deepEqual(fired, ['retransmission']);
  assert.equal(timers.running, true, 'the redelivery is still waited for');
});
