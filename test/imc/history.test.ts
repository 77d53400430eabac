// Room history is written in batches by a timer: set when an entry waits, never while nothing does,
// so that an idle server is not woken five times a second.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { RoomHistory } from '../../src/imc/history.js';
import type { Room } from '../../src/imc/rooms.js';
import { type RoomHistoryEntry, type RoomStore, StoreError } from '../../src/store/index.js';

/** A room store that keeps the batches it is given, or refuses them as unavailable while `down`. */
function fakeStore() {
  const batches: string[][] = [];
  const store = {
    down: false,
    batches,
    appendHistory(entries: RoomHistoryEntry[]): Promise<void> {
      if (store.down) return Promise.reject(new StoreError('UNAVAILABLE', 'store unavailable'));
      batches.push(entries.map((entry) => entry.body.toString()));
      return Promise.resolve();
    },
    recentHistory: () => Promise.resolve([]),
  };
  return store;
}

const room = { name: 'lobby', domain: 'example.test', history: [] } as unknown as Room;
const entry = (text: string): RoomHistoryEntry => ({
  roomName: 'lobby', roomDomain: 'example.test', sender: 'alice@example.test', nick: 'alice', contentType: 'text/plain', body: Buffer.from(text), at: Date.now(),
});

/** Timers on a mocked clock, and how many the code under test sets. */
function countTimers(t: TestContext): { set: number } {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const count = { set: 0 };
  for (const name of ['setTimeout', 'setInterval'] as const) {
    const mocked = globalThis[name] as (...args: unknown[]) => unknown;
    t.mock.method(globalThis, name, (...args: unknown[]) => {
      count.set++;
      return mocked(...args);
    });
  }
  return count;
}

/** A started history over a fake store, its timers on a mocked clock and counted. */
function startedHistory(t: TestContext) {
  const timers = countTimers(t);
  const store = fakeStore();
  const history = new RoomHistory(store as unknown as RoomStore, 20, pino({ level: 'silent' }));
  history.start();
  return { timers, store, history };
}

/** Lets the store's promises settle. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('a started history with nothing to write sets no timer', async (t) => {
  const { timers, history } = startedHistory(t);
  t.mock.timers.tick(10_000);
  assert.equal(timers.set, 0);
  await history.stop();
});

test('posts are written together 200 ms after the first, and no timer is left once written', async (t) => {
  const { timers, store, history } = startedHistory(t);
  history.record(room, entry('one'));
  history.record(room, entry('two'));
  t.mock.timers.tick(199);
  await settle();
  assert.deepEqual(store.batches, []);
  t.mock.timers.tick(1);
  await settle();
  assert.deepEqual(store.batches, [['one', 'two']]);
  assert.equal(timers.set, 1, 'one timer for the batch');
  t.mock.timers.tick(10_000);
  assert.equal(timers.set, 1, 'none once it was written');
  await history.stop();
});

test('a batch the unavailable store refused is written once it is back, with no new post', async (t) => {
  const { store, history } = startedHistory(t);
  store.down = true;
  history.record(room, entry('kept'));
  t.mock.timers.tick(200);
  await settle();
  assert.deepEqual(store.batches, []);
  store.down = false;
  t.mock.timers.tick(200);
  await settle();
  assert.deepEqual(store.batches, [['kept']]);
  await history.stop();
});

test('stop() writes what waits', async (t) => {
  const { store, history } = startedHistory(t);
  history.record(room, entry('last words'));
  await history.stop();
  assert.deepEqual(store.batches, [['last words']]);
});
