// XMPP watchers of SIP users on their own: written to the store before they are told "subscribed",
// taken back by the next bridge on the same store and told the SIP user's state when the link comes
// up, forgotten in the store on "unsubscribe", and bounded by presence.max_gateway_watchers.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import xml from '@xmpp/xml';
import { createLogger } from '../../src/log/index.js';
import { OPEN, type PresenceService } from '../../src/presence/index.js';
import { openStore } from '../../src/store/index.js';
import { addressMapping } from '../../src/xmpp/addresses.js';
import { PendingSubscriptions } from '../../src/xmpp/pending.js';
import { PresenceBridge } from '../../src/xmpp/presence.js';
import { eventually } from '../support/eventually.js';
import { tempDir } from '../support/process.js';

const silent = createLogger('silent');
const addresses = { convention: 'separator' as const, separator: '*', gatewayDomain: 'sip.xmpp.test', xmppDomain: 'sip.xmpp.test' };
const bridgeOptions = { addresses: addressMapping(addresses), gatewayDomain: 'sip.xmpp.test', xmppDomain: 'sip.xmpp.test', localDomains: new Set(['localhost']), graceMs: 60_000 };
/** An agent in which every SIP user is open, with no SIP watchers. */
const service = () => Object.assign(new EventEmitter(), { stateOf: () => OPEN, watchersOf: () => [], publishFrom: () => {} }) as unknown as PresenceService;
const request = (type: string, from: string, toUser: string) => xml('presence', { from, to: `${toUser}*localhost@sip.xmpp.test`, type });
const summary = (stanzas: xml.Element[]) => stanzas.map((p) => `${p.attrs.type ?? 'available'} ${p.attrs.from} -> ${p.attrs.to}`);

test('XMPP watchers are kept in the store up to the bound, taken back and told the state when the link is up, forgotten on unsubscribe', async () => {
  const database = `sqlite:${join(tempDir(), 'parley.db')}`;
  let store = await openStore(database);
  const sent: xml.Element[] = [];
  const bridgeOn = (presence: typeof store.presence) => {
    const hooks = { service: service(), isKnownUser: () => Promise.resolve(true), store: presence, maxWatchers: 1 };
    return new PresenceBridge(hooks, bridgeOptions, new PendingSubscriptions(store.outbox, { maxPerUser: 1, maxTotal: 10, ttlMs: 60_000 }, silent), (stanza) => sent.push(stanza), silent);
  };
  let bridge = bridgeOn(store.presence);
  await bridge.start();
  bridge.onPresence(request('subscribe', 'juliet@xmpp.test/phone', 'bob'));
  bridge.onPresence(request('subscribe', 'nurse@xmpp.test/phone', 'bob'));
  await eventually(() => sent.length >= 3 || undefined, 'both requests answered');
  assert.deepEqual(summary(sent), [
    'subscribed bob*localhost@sip.xmpp.test -> juliet@xmpp.test',
    'available bob*localhost@sip.xmpp.test -> juliet@xmpp.test',
    'unsubscribed bob*localhost@sip.xmpp.test -> nurse@xmpp.test',
  ], 'the second watcher is past presence.max_gateway_watchers');
  assert.deepEqual(await store.presence.loadGatewayWatchers('xmpp'), [
    { network: 'xmpp', presentity: 'bob@localhost', watcher: 'juliet@xmpp.test', alias: 'bob*localhost@sip.xmpp.test' },
  ]);
  await bridge.stop();
  await store.close();

  store = await openStore(database);
  try {
    sent.length = 0;
    bridge = bridgeOn(store.presence);
    await bridge.start();
    assert.equal(bridge.stats.xmppWatchers, 1);
    bridge.online();
    assert.deepEqual(summary(sent), ['available bob*localhost@sip.xmpp.test -> juliet@xmpp.test'], 'told the state without a new subscription');

    sent.length = 0;
    bridge.onPresence(request('unsubscribe', 'juliet@xmpp.test/phone', 'bob'));
    await eventually(() => sent.length >= 1 || undefined, 'the unsubscribe answered');
    assert.equal(bridge.stats.xmppWatchers, 0);
    assert.deepEqual(await store.presence.loadGatewayWatchers('xmpp'), []);
    await bridge.stop();
  } finally {
    await store.close();
  }
});
