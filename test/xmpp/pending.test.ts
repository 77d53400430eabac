// XMPP subscription requests waiting for SIP users who do not exist yet, on their own: kept in the
// store across a restart, bounded per user and in all, expired, cancelled, taken once.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/log/index.js';
import { openStore } from '../../src/store/index.js';
import { PendingSubscriptions } from '../../src/xmpp/pending.js';
import { tempDir } from '../support/process.js';

const silent = createLogger('silent');
const limits = { maxPerUser: 2, maxTotal: 3, ttlMs: 60_000 };
const request = (aor: string, watcher: string, at = 1000) => ({ aor, watcher, as: `${aor.replace('@', '*')}@sip.xmpp.test`, at });

describe('pending subscription requests', () => {
  test('are kept across a restart, and taken once when the user exists', async () => {
    const database = `sqlite:${join(tempDir(), 'parley.db')}`;
    let store = await openStore(database);
    const pending = new PendingSubscriptions(store.outbox, limits, silent);
    assert.deepEqual(await pending.load(1000), []);
    assert.equal(await pending.add(request('ghost@localhost', 'tybalt@xmpp.test')), 'added');
    assert.equal(await pending.add(request('ghost@localhost', 'tybalt@xmpp.test')), 'known');
    assert.equal(await pending.add(request('ghost@localhost', 'mercutio@xmpp.test')), 'added');
    await store.close();

    store = await openStore(database);
    try {
      const reloaded = new PendingSubscriptions(store.outbox, limits, silent);
      assert.deepEqual(await reloaded.load(2000), []);
      assert.equal(reloaded.size, 2);
      assert.ok(reloaded.has('ghost@localhost', 'tybalt@xmpp.test'));
      const taken = await reloaded.take('ghost@localhost');
      assert.deepEqual(taken.map((r) => r.watcher).sort(), ['mercutio@xmpp.test', 'tybalt@xmpp.test']);
      assert.deepEqual(taken[0]!.as, 'ghost*localhost@sip.xmpp.test');
      assert.deepEqual(await reloaded.take('ghost@localhost'), []);
      assert.equal(reloaded.size, 0);
      assert.deepEqual((await store.outbox.pending('xmpp-subscription')).records, []);
    } finally {
      await store.close();
    }
  });

  test('are bounded per user and in all', async () => {
    const store = await openStore('sqlite::memory:');
    try {
      const pending = new PendingSubscriptions(store.outbox, limits, silent);
      await pending.load(0);
      assert.equal(await pending.add(request('ghost@localhost', 'a@xmpp.test')), 'added');
      assert.equal(await pending.add(request('ghost@localhost', 'b@xmpp.test')), 'added');
      assert.equal(await pending.add(request('ghost@localhost', 'c@xmpp.test')), 'full', 'per user');
      assert.equal(await pending.add(request('phantom@localhost', 'a@xmpp.test')), 'added');
      assert.equal(await pending.add(request('spectre@localhost', 'a@xmpp.test')), 'full', 'in all');
      await pending.cancel('phantom@localhost', 'a@xmpp.test');
      assert.equal(await pending.add(request('spectre@localhost', 'a@xmpp.test')), 'added', 'a cancelled request makes room');
    } finally {
      await store.close();
    }
  });

  test('expire: at run time, and those that expired while Parley was down at the next start', async () => {
    const database = `sqlite:${join(tempDir(), 'parley.db')}`;
    let store = await openStore(database);
    const pending = new PendingSubscriptions(store.outbox, limits, silent);
    await pending.load(0);
    await pending.add(request('ghost@localhost', 'old@xmpp.test', 1000));
    await pending.add(request('ghost@localhost', 'new@xmpp.test', 30_000));
    assert.deepEqual(await pending.expire(50_000), []);
    assert.deepEqual((await pending.expire(61_001)).map((r) => r.watcher), ['old@xmpp.test']);
    assert.equal(pending.size, 1);
    await store.close();

    store = await openStore(database);
    try {
      const reloaded = new PendingSubscriptions(store.outbox, limits, silent);
      const expired = await reloaded.load(100_000);
      assert.deepEqual(expired.map((r) => r.watcher), ['new@xmpp.test']);
      assert.equal(reloaded.size, 0);
      assert.deepEqual((await store.outbox.pending('xmpp-subscription')).records, []);
    } finally {
      await store.close();
    }
  });
});
