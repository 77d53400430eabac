// The answered server transactions kept through Timer J: one record each, found by key, let go in the order answered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AnsweredTransactions } from '../../src/sip/answered.js';
import { FakeClock, TimerQueue, type Peer } from '../../src/sip/index.js';

const TIMER_J = 32_000;
const T1 = 500;
const peer: Peer = { proto: 'udp', host: '127.0.0.2', port: 5070 };
const response = (n: number) => Buffer.from(`SIP/2.0 200 OK\r\nCSeq: ${n} MESSAGE\r\nContent-Length: 0\r\n\r\n`);

test('an answered transaction gives a retransmission its very response and target until its Timer J fires', () => {
  const clock = new FakeClock();
  const answered = new AnsweredTransactions(new TimerQueue(clock), TIMER_J, T1, 100);
  const bytes = response(1);
  answered.add('k1', bytes, peer);
  assert.equal(answered.get('k1')?.lastResponse, bytes);
  assert.equal(answered.get('k1')?.responseTarget, peer);
  assert.equal(answered.get('k2'), undefined);

  clock.advance(TIMER_J - 1);
  answered.expire();
  assert.equal(answered.get('k1')?.lastResponse, bytes, 'kept until Timer J');
  clock.advance(1);
  answered.expire();
  assert.equal(answered.get('k1'), undefined);
  assert.equal(answered.size, 0);
});

test('expiry lets go of the due ones from the oldest and stops at the first due later; the set is used again once empty', () => {
  const clock = new FakeClock();
  const answered = new AnsweredTransactions(new TimerQueue(clock), TIMER_J, T1, 100);
  answered.add('a', response(1), peer);
  clock.advance(100);
  answered.add('b', response(2), peer);
  answered.add('c', response(3), peer);

  clock.advance(TIMER_J - 100);
  answered.expire();
  assert.deepEqual(['a', 'b', 'c'].map((key) => answered.get(key) !== undefined), [false, true, true]);
  clock.advance(100);
  answered.expire();
  assert.equal(answered.size, 0);

  answered.add('d', response(4), peer);
  assert.equal(answered.size, 1);
  clock.advance(TIMER_J);
  answered.expire();
  assert.equal(answered.get('d'), undefined);
});

test('past its capacity, the oldest answered transaction is let go first, and expiry goes on from the next', () => {
  const clock = new FakeClock();
  const answered = new AnsweredTransactions(new TimerQueue(clock), TIMER_J, T1, 2);
  for (const key of ['a', 'b', 'c']) {
    answered.add(key, response(1), peer);
    clock.advance(10);
  }
  assert.equal(answered.size, 2);
  assert.deepEqual(['a', 'b', 'c'].map((key) => answered.get(key) !== undefined), [false, true, true]);
  clock.advance(TIMER_J - 20);
  answered.expire();
  assert.deepEqual(['b', 'c'].map((key) => answered.get(key) !== undefined), [false, true]);
});

test('the set sweeps itself: each goes at most T1 past its Timer J, and no timer is left once none is kept', () => {
  const clock = new FakeClock();
  const timers = new TimerQueue(clock);
  const answered = new AnsweredTransactions(timers, TIMER_J, T1, 100);
  answered.add('a', response(1), peer);
  clock.advance(T1 / 2, timers);
  answered.add('b', response(2), peer);

  clock.advance(TIMER_J - T1 / 2, timers);
  assert.deepEqual(['a', 'b'].map((key) => answered.get(key) !== undefined), [false, true], 'the first sweep comes at the first Timer J');
  clock.advance(T1, timers);
  assert.equal(answered.size, 0);
  assert.equal(timers.pending, 0);
});
