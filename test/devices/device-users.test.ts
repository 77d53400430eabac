// Only users with a remembered device cost a store read for a message sent to them; a user whose last
// device is forgotten (devices.remember) costs none again, until one registers again, with an
// instance or without.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceDelivery } from '../../src/relay/devices.js';
import { createLogger } from '../../src/log/index.js';
import { parseMessage, type SipStack } from '../../src/sip/index.js';
import type { Flow, Registrar } from '../../src/registrar/registrar.js';
import type { DeliveryStore, StoredMessage } from '../../src/store/index.js';

const AOR = 'lea@localhost';

test('a user whose last remembered device is forgotten costs no store read per message; registering one again, with an instance or without, does', async () => {
  const reads: string[] = [];
  let forgotten: string[] = [];
  const store = {
    aorsWithDevices: async () => [AOR],
    mayHaveWaiting: () => false,
    pendingCounts: async () => [],
    pendingFor: async () => [],
    devicesOf: async (aor: string) => {
      reads.push(aor);
      return [];
    },
    removeStale: async () => forgotten,
  } as unknown as DeliveryStore;
  let flows: Flow[][] = [];
  const registrar = { lookup: () => flows.flat().map((flow) => flow.binding), flowsByDevice: () => flows, on: () => registrar } as unknown as Registrar;
  const devices = new DeviceDelivery(store, registrar, {} as SipStack, async () => { throw new Error('nothing is sent'); }, { remember: 60, acceptTimeout: 1, redeliveryBackoff: 30, maxPerUser: 10 }, createLogger('silent'));
  const message = parseMessage(Buffer.from(`MESSAGE sip:${AOR} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nFrom: <sip:max@localhost>;tag=1\r\nTo: <sip:${AOR}>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n`));
  const record = { aor: AOR, fromHeader: '<sip:max@localhost>', toHeader: `<sip:${AOR}>`, contentType: 'text/plain', body: Buffer.alloc(0), receivedAt: 0, expiresAt: 1 } satisfies Omit<StoredMessage, 'id'>;
  const send = () => devices.deliver(AOR, message, record, () => false);

  await devices.resume();
  await send();
  assert.deepEqual(reads, [AOR], 'a user with a remembered device is looked up');

  await devices.forgetStale();
  await send();
  assert.deepEqual(reads, [AOR, AOR], 'still remembered: looked up');

  forgotten = [AOR];
  await devices.forgetStale();
  await send();
  assert.deepEqual(reads, [AOR, AOR], 'forgotten: no store read');

  flows = [[{ binding: { instance: '"<urn:uuid:le-1>"', contact: 'sip:lea@127.0.0.1:5071' } } as unknown as Flow]];
  devices.deliverPending(AOR);
  await send();
  assert.deepEqual(reads, [AOR, AOR, AOR], 'registered again with an instance: looked up again');

  await devices.forgetStale();
  await send();
  assert.deepEqual(reads, [AOR, AOR, AOR], 'forgotten again: no store read');

  flows = [[{ binding: { contact: 'sip:lea@127.0.0.1:5072' } } as unknown as Flow]];
  devices.deliverPending(AOR);
  await send();
  assert.deepEqual(reads, [AOR, AOR, AOR, AOR], 'registered again without an instance: looked up again');
});
