// The timer queue of every transaction: one FIFO per duration, cancelled timers let go in batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
