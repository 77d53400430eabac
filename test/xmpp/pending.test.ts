// XMPP subscription requests waiting for SIP users who do not exist yet, on their own: kept in the
// store across a restart, bounded per user and in all, expired, cancelled, taken once.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import xml from '@xmpp/xml';
import { createLogger } from '../../src/log/index.js';
import { CLOSED, type PresenceService } from '../../src/presence/index.js';
import { openStore } from '../../src/store/index.js';
import { addressMapping } from '../../src/xmpp/addresses.js';
import { PendingSubscriptions } from '../../src/xmpp/pending.js';
import { PresenceBridge } from '../../src/xmpp/presence.js';
import { eventually } from '../support/eventually.js';
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

describe('the presence bridge with pending requests', () => {
  const addresses = { convention: 'separator' as const, separator: '*', gatewayDomain: 'sip.xmpp.test', xmppDomain: 'sip.xmpp.test' };
  const bridgeOptions = { addresses: addressMapping(addresses), gatewayDomain: 'sip.xmpp.test', xmppDomain: 'sip.xmpp.test', localDomains: new Set(['localhost']), graceMs: 60_000 };
  /** An agent that knows nobody's presence and has no SIP watchers. */
  const service = () => Object.assign(new EventEmitter(), { stateOf: () => CLOSED, watchersOf: () => [], publishFrom: () => {} }) as unknown as PresenceService;
  const subscribe = (from: string, toUser: string) => xml('presence', { from, to: `${toUser}*localhost@sip.xmpp.test`, type: 'subscribe' });
  const summary = (stanzas: xml.Element[]) => stanzas.map((p) => `${p.attrs.type ?? 'available'} ${p.attrs.from} -> ${p.attrs.to}`);

  test('refuses a request past the bounds at once, and one that waited too long at the sweep; approves at start a user provisioned meanwhile', async () => {
    const database = `sqlite:${join(tempDir(), 'parley.db')}`;
    let store = await openStore(database);
    const known = new Set<string>();
    const sent: xml.Element[] = [];
    const hooks = { service: service(), isKnownUser: (aor: string) => Promise.resolve(known.has(aor)), store: store.presence, maxWatchers: 10 };
    let bridge = new PresenceBridge(hooks, bridgeOptions, new PendingSubscriptions(store.outbox, { maxPerUser: 1, maxTotal: 10, ttlMs: 60_000 }, silent), (stanza) => sent.push(stanza), silent);
    await bridge.start();
    bridge.onPresence(subscribe('tybalt@xmpp.test/r', 'ghost'));
    bridge.onPresence(subscribe('mercutio@xmpp.test/r', 'ghost'));
    bridge.onPresence(subscribe('tybalt@xmpp.test/r', 'phantom'));
    await eventually(() => bridge.stats.pendingSubscriptions === 2 || undefined, 'two requests pending');
    assert.deepEqual(summary(sent), ['unsubscribed ghost*localhost@sip.xmpp.test -> mercutio@xmpp.test'], 'over the bound per user');

    sent.length = 0;
    bridge.sweep(Date.now() + 61_000);
    // The requests leave memory at once; they are refused once their rows are removed.
    await eventually(() => sent.length === 2 || undefined, 'expired requests refused');
    assert.equal(bridge.stats.pendingSubscriptions, 0);
    assert.deepEqual(summary(sent).sort(), ['unsubscribed ghost*localhost@sip.xmpp.test -> tybalt@xmpp.test', 'unsubscribed phantom*localhost@sip.xmpp.test -> tybalt@xmpp.test']);

    bridge.onPresence(subscribe('tybalt@xmpp.test/r', 'spectre'));
    await eventually(() => bridge.stats.pendingSubscriptions === 1 || undefined, 'a new request pending');
    await bridge.stop();
    await store.close();

    // Provisioned while Parley was down: approved at the next start.
    known.add('spectre@localhost');
    store = await openStore(database);
    hooks.store = store.presence;
    try {
      sent.length = 0;
      bridge = new PresenceBridge(hooks, bridgeOptions, new PendingSubscriptions(store.outbox, { maxPerUser: 1, maxTotal: 10, ttlMs: 60_000 }, silent), (stanza) => sent.push(stanza), silent);
      await bridge.start();
      await eventually(() => (sent.length >= 2 ? sent : undefined), 'approval sent');
      assert.deepEqual(summary(sent), ['subscribed spectre*localhost@sip.xmpp.test -> tybalt@xmpp.test', 'unavailable spectre*localhost@sip.xmpp.test -> tybalt@xmpp.test']);
      assert.equal(bridge.stats.pendingSubscriptions, 0);
      assert.equal(bridge.stats.xmppWatchers, 1);
      await bridge.stop();
    } finally {
      await store.close();
    }
  });
});
