// Messages a Parley from before the bridge left in the outbox: their failure notices still name the
// recipient as the sender wrote it (the XMPP gateway kept it as a JID, the per-user gateways as `contact`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { GatewayService, type GatewayDependencies, gatewayOptions } from '../../src/gateway/index.js';
import { XmppGateway, xmppGatewayOptions } from '../../src/xmpp/index.js';
import type { OutboxRecord, OutboxStore, ReceiptIdStore } from '../../src/store/index.js';
import { eventually } from '../support/eventually.js';
import { freeTcpPort } from '../support/process.js';
import { recordingRelay } from '../support/relay.js';
import { testConfig } from '../support/server.js';

/** Starts the gateway, waits for the first MESSAGE it sends into SIP, and stops it. */
async function firstSentAfterStart(gateway: { start(): Promise<void>; stop(): Promise<void> }, sent: unknown[]): Promise<void> {
  await gateway.start();
  try {
    await eventually(() => sent.length === 1 || undefined, 'the failure notice');
  } finally {
    await gateway.stop();
  }
}

/** An outbox store holding one row written an hour ago, as `payload`. */
function outboxWith(kind: string, recipient: string, payload: unknown): OutboxStore {
  const record: OutboxRecord = { id: 1, kind, recipients: [recipient], payload: Buffer.from(JSON.stringify(payload)), createdAt: Date.now() - 3_600_000 };
  return {
    add: () => Promise.resolve(2),
    record: () => Promise.resolve(),
    pending: (wanted) => Promise.resolve({ records: wanted === kind ? [record] : [], cursors: new Map() }),
  };
}

/** A receipt id store that keeps nothing: no receipt is awaited in these tests. */
const NO_RECEIPT_IDS: ReceiptIdStore = {
  put: () => Promise.resolve(),
  get: () => Promise.resolve(undefined),
  update: () => Promise.resolve(),
  remove: () => Promise.resolve(),
  expire: () => Promise.resolve(0),
};

test('a message taken for XMPP before the bridge, failed after an upgrade, is told with its recipient in words', async () => {
  const { relay, sent } = recordingRelay();
  const before = {
    im: { body: 'hello from the old days' },
    attrs: { from: 'alice\\40localhost@sip.xmpp.example', to: 'romeo@xmpp.example', id: 'old-1', type: 'chat' },
    origin: { sender: 'sip:alice@localhost', target: 'sip:romeo*xmpp.example@sip.xmpp.example', recipient: { local: 'romeo', domain: 'xmpp.example', resource: '' }, excerpt: 'hello from the old days' },
  };
  const outbox = outboxWith('xmpp', 'xmpp', before);
  const config = testConfig({ xmpp: { enabled: true, xmpp_domain: 'sip.xmpp.example', xmpp_password: 'secret', xmpp_port: await freeTcpPort(), delay_time: 1 } });
  await firstSentAfterStart(new XmppGateway(xmppGatewayOptions(config), relay, outbox, NO_RECEIPT_IDS, pino({ enabled: false })), sent);
  assert.equal(sent[0]!.to, 'sip:alice@localhost');
  assert.equal(sent[0]!.from, '<sip:romeo*xmpp.example@sip.xmpp.example>');
  assert.match(String(sent[0]!.body), /^Your message to romeo@xmpp\.example was not delivered: the XMPP server was unreachable for 1 s \(408\)\.\n> hello from the old days$/);
});

test('a message taken for a linked account before the bridge, failed after an upgrade, is told with its contact in words', async () => {
  const { relay, sent } = recordingRelay();
  const before = {
    accountId: 7,
    id: 'old-2',
    contact: 'romeo@xmpp.example',
    room: false,
    im: { body: 'hello again' },
    origin: { sender: 'sip:alice@localhost', target: 'sip:romeo*xmpp.example@xmpp.localhost', contact: 'romeo@xmpp.example', excerpt: 'hello again' },
    since: Date.now() - 3_600_000,
  };
  const deps = {
    accounts: { get: () => Promise.resolve(undefined), list: () => Promise.resolve([]) },
    rooms: {},
    outbox: outboxWith('gateway', '7', before),
    relay,
    registrar: { on: () => undefined, off: () => undefined, lookup: () => [] },
  } as unknown as GatewayDependencies;
  const config = testConfig({ gateway: { enabled: true, secret_key: 'a-secret-key-of-sixteen-bytes-or-more' } });
  await firstSentAfterStart(new GatewayService(gatewayOptions(config), deps, pino({ enabled: false }), []), sent);
  assert.equal(sent[0]!.to, 'sip:alice@localhost');
  assert.equal(sent[0]!.from, '<sip:romeo*xmpp.example@xmpp.localhost>');
  assert.equal(sent[0]!.body, 'Your message to romeo@xmpp.example was not delivered: the account is no longer linked (403).\n> hello again');
});
