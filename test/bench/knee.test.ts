// bench/knee.ts: the rate search of bench:devices and bench:rooms ends at the resolution asked, and
// what two brackets say of the ratio of their limits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kneeSearch, ratioOf, type KneeOptions } from '../../bench/knee.js';

/**
 * The rates a search tries against a server whose limit is `limit` (a rate passes when at most it),
 * the steps numbered in `stalled` failing whatever their rate.
 */
function tried(limit: number, options: KneeOptions, stalled: number[] = []): { rates: number[]; best?: number; failed?: number } {
  const search = kneeSearch<number>((rate) => rate, options);
  const rates: number[] = [];
  for (let rate = search.next(); rate !== undefined; rate = search.next()) {
    search.record(rate, rate <= limit && !stalled.includes(rates.length));
    rates.push(rate);
  }
  return { rates, ...search.found };
}

const options: KneeOptions = { start: 1000, factor: 2, max: 64000, resolution: 0.04, refine: 6, retries: 0 };

test('doubles from the start, then bisects until the failing rate is within the resolution of the passing one', () => {
  const { rates, best, failed } = tried(4170, options);
  assert.deepEqual(rates, [1000, 2000, 4000, 8000, 6000, 5000, 4500, 4300, 4150]);
  assert.deepEqual([best, failed], [4150, 4300]);
});

test('started at a bracket found before, a limit inside it takes two steps; one outside moves by growing factors', () => {
  assert.deepEqual(tried(4100, { ...options, start: 4000, factor: 1.04 }).rates, [4000, 4160]);
  assert.deepEqual(tried(3000, { ...options, start: 4000, factor: 1.05 }).rates.slice(0, 4), [4000, 3810, 3460, 2800]);
});

test('stops after --refine bisections, and at the highest rate allowed', () => {
  assert.deepEqual(tried(4170, { ...options, refine: 1 }).rates, [1000, 2000, 4000, 8000, 6000]);
  assert.deepEqual(tried(1e9, { ...options, max: 5000 }).rates, [1000, 2000, 4000, 5000]);
});

test('with retries, a rate fails only when it fails again: a step failed by a stall does not end the climb', () => {
  const { rates, best, failed } = tried(4170, { ...options, retries: 1 }, [1]);
  assert.deepEqual(rates, [1000, 2000, 2000, 4000, 8000, 8000, 6000, 6000, 5000, 5000, 4500, 4500, 4300, 4300, 4150]);
  assert.deepEqual([best, failed], [4150, 4300]);
  assert.deepEqual(tried(4170, options, [1]).rates, [1000, 2000, 1500, 1800, 1900, 1950]);
});

test('the ratio of two limits: met when one passed where the other failed, else not told apart', () => {
  assert.equal(ratioOf({ passed: 4000, failed: 4150 }, { passed: 3900, failed: 4000 }).verdict, 'met');
  assert.equal(ratioOf({ passed: 3900, failed: 4000 }, { passed: 4000, failed: 4150 }).verdict, 'NOT met');
  const same = ratioOf({ passed: 4000, failed: 4160 }, { passed: 4000, failed: 4160 });
  assert.deepEqual([same.low, same.high, same.verdict], [4000 / 4160, 4160 / 4000, 'not told apart at this resolution']);
});
