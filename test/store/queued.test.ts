import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DatabaseConnection, Dialect, Driver } from 'kysely';
import { queuedDialect } from '../../src/store/queued.js';

/** A driver of one connection that lets anyone have it at once: the queue alone makes callers wait. */
function fakeDialect(failures: number[] = []): { dialect: Dialect; acquired: number[] } {
  const acquired: number[] = [];
  let attempts = 0;
  const connection = {} as DatabaseConnection;
  const driver: Driver = {
    init: async () => {},
    acquireConnection: async () => {
      const attempt = attempts++;
      if (failures.includes(attempt)) throw new Error(`attempt ${attempt} failed`);
      acquired.push(attempt);
      return connection;
    },
    beginTransaction: async () => {},
    commitTransaction: async () => {},
    rollbackTransaction: async () => {},
    releaseConnection: async () => {},
    destroy: async () => {},
  };
  return { dialect: { createDriver: () => driver } as unknown as Dialect, acquired };
}

describe('the SQLite connection handed out in turn', () => {
  it('lets one caller have it at a time, in the order they asked', async () => {
    const { dialect, acquired } = fakeDialect();
    const driver = queuedDialect(dialect).createDriver();
    const first = await driver.acquireConnection();
    const order: string[] = [];
    const second = driver.acquireConnection().then((c) => (order.push('second'), c));
    const third = driver.acquireConnection().then((c) => (order.push('third'), c));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(acquired, [0], 'nobody else got it while it was held');
    await driver.releaseConnection(first);
    await driver.releaseConnection(await second);
    await driver.releaseConnection(await third);
    assert.deepEqual(order, ['second', 'third']);
  });

  it('passes the turn on when getting the connection failed', async () => {
    const { dialect } = fakeDialect([1]);
    const driver = queuedDialect(dialect).createDriver();
    const first = await driver.acquireConnection();
    const failing = driver.acquireConnection();
    const next = driver.acquireConnection();
    await driver.releaseConnection(first);
    await assert.rejects(failing, /attempt 1 failed/);
    await driver.releaseConnection(await next);
  });
});
