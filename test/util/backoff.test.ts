// The one reconnection backoff (XMPP component link, s2s dialling, per-user XMPP and IRC sessions).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from '../../src/util/backoff.js';

const waits = (backoff: Backoff, count: number) => Array.from({ length: count }, () => backoff.next());

test('doubles from the shortest wait up to the cap, at the low end of its jitter', () => {
  assert.deepEqual(waits(new Backoff(1000, 60_000, () => 0), 8), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
});

test('at the high end of its jitter waits up to twice as long, never beyond the cap', () => {
  const highest = () => 1 - Number.EPSILON;
  const found = waits(new Backoff(1000, 60_000, highest), 8).map(Math.round);
  assert.deepEqual(found, [2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
});

test('spreads the waits of sessions that failed together', () => {
  const spread = new Set(Array.from({ length: 20 }, () => new Backoff(1000, 60_000).next()));
  assert.ok(spread.size > 1);
  for (const wait of spread) assert.ok(wait >= 1000 && wait < 2000, `${wait}`);
});

test('a success resets it to the shortest wait', () => {
  const backoff = new Backoff(100, 500, () => 0);
  assert.deepEqual(waits(backoff, 4), [100, 200, 250, 250]);
  backoff.reset();
  assert.equal(backoff.next(), 100);
});

test('a cap below twice the shortest wait keeps every wait between the two', () => {
  const backoff = new Backoff(1000, 1500, () => 0.5);
  assert.deepEqual(waits(backoff, 3), [1250, 1250, 1250]);
  assert.equal(new Backoff(1000, 1000, () => 0.9).next(), 1000);
});
