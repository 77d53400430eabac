// The outbox delivers a message once its row is committed, while the disk sync the sender's answer
// waits for is still under way: the way onwards does not wait for the disk.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { OrderedDeliveries, Outbox, jsonCodec, type LegOutcome } from '../../src/relay/index.js';
import type { OutboxStore } from '../../src/store/index.js';
import { eventually } from '../support/eventually.js';

test('outbox: a message is delivered once committed, before the disk sync its submit (the answer) waits for', async () => {
  let ids = 0;
  let syncDone!: () => void;
  const sync = new Promise<void>((resolve) => (syncDone = resolve));
  const store: OutboxStore = {
    async add(_record, committed) {
      const id = ++ids;
      committed?.(id);
      await sync;
      return id;
    },
    record: () => Promise.resolve(),
    pending: () => Promise.resolve({ records: [], cursors: new Map() }),
  };
  const delivered: string[] = [];
  const delivery = {
    deliver: (text: string): Promise<LegOutcome> => {
      delivered.push(text);
      return Promise.resolve('done');
    },
  };
  const outbox = new Outbox(store, 'test', jsonCodec<string>(), delivery, new OrderedDeliveries(() => assert.fail('no leg fails')), { maxMessages: 10, maxPerRecipient: 10 }, pino({ enabled: false }));
  await outbox.start();
  let answered = false;
  const submitted = outbox.submit('hello', ['romeo@xmpp.example']).then(() => (answered = true));
  await eventually(() => delivered.length === 1 || undefined, 'delivered while the sync is under way');
  assert.equal(answered, false, 'the sender is not answered before the sync');
  syncDone();
  await submitted;
  assert.deepEqual(delivered, ['hello']);
  await outbox.stop();
});
