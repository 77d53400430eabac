// The timer that ends a publication or a subscription (expireWhenDue): both go through it, so what
// is tested here holds for both. Timers run on a mocked clock; Date.now() is the real one unless a
// test moves it, as Node's timers keep another clock than Date.now() and may fire before it reaches
// the time they were set for.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type Expiring, expireWhenDue } from '../../src/presence/expires.js';
import { KeyedSerializer } from '../../src/presence/serial.js';

/** Lets the serializer's promises settle. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Moves the timers' clock by `ms` with Date.now() at `now` (unmoved when undefined), and lets what fired settle. */
async function advance(t: TestContext, ms: number, now?: number): Promise<void> {
  if (now !== undefined) t.mock.method(Date, 'now', () => now);
  t.mock.timers.tick(ms);
  await settle();
}

test('an item expires once, when its time has come', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const expired: string[] = [];
  const item: Expiring = { expiresAt: Date.now() + 1_000 };
  expireWhenDue(item, new KeyedSerializer(), 'bob', () => true, () => expired.push('bob'));
  await advance(t, 1_000, Date.now() + 2_000);
  assert.deepEqual(expired, ['bob']);
  await advance(t, 100_000);
  assert.deepEqual(expired, ['bob'], 'once');
});

test('a timer that fires before Date.now() reaches the expiry is set again, and the item still expires', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const expired: string[] = [];
  const item: Expiring = { expiresAt: Date.now() + 60_000 };
  expireWhenDue(item, new KeyedSerializer(), 'bob', () => true, () => expired.push('bob'));
  // The timer's clock says a minute has passed; Date.now() does not.
  await advance(t, 60_000);
  assert.deepEqual(expired, [], 'expired before its time');
  await advance(t, 60_000, Date.now() + 61_000);
  assert.deepEqual(expired, ['bob'], 'never expired');
});

test('a refresh sets a timer of its own: the first one, firing, ends nothing', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const expired: number[] = [];
  const serial = new KeyedSerializer();
  const start = Date.now();
  const item: Expiring = { expiresAt: start + 1_000 };
  expireWhenDue(item, serial, 'bob', () => true, () => expired.push(item.expiresAt));
  item.expiresAt = start + 5_000;
  expireWhenDue(item, serial, 'bob', () => true, () => expired.push(item.expiresAt));
  await advance(t, 1_000, start + 1_000);
  assert.deepEqual(expired, []);
  await advance(t, 4_000, start + 5_000);
  assert.deepEqual(expired, [start + 5_000]);
});

test('an item that is gone when its timer fires is not expired', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let held = true;
  const expired: string[] = [];
  const item: Expiring = { expiresAt: Date.now() + 1_000 };
  expireWhenDue(item, new KeyedSerializer(), 'bob', () => held, () => expired.push('bob'));
  held = false;
  await advance(t, 1_000, Date.now() + 2_000);
  assert.deepEqual(expired, []);
});
