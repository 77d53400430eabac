// Each device's queue is first in, first out across a restart: a message that arrives before Parley
// has read, at start, what its devices had waiting (a slow store), still goes after the messages a
// device has had waiting since before the restart.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { defaultPlugins } from '../../src/server/index.js';
import type { ParleyPlugin } from '../../src/plugin/index.js';
import { newInstance, registerDevice } from './devices.js';

const agent = udpAgents();
const dir = mkdtempSync(join(tmpdir(), 'parley-order-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A plugin that holds the store's answer to what was remembered at start until `release()`. */
function slowStartStore(): { plugin: ParleyPlugin; release(): void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const plugin: ParleyPlugin = {
    name: 'slow-start-store',
    start(context) {
      const deliveries = context.store.deliveries;
      const read = deliveries.aorsWithDevices.bind(deliveries);
      deliveries.aorsWithDevices = async (since) => {
        await released;
        return read(since);
      };
    },
  };
  return { plugin, release };
}

test('after a restart, a new message for a device waits behind what it had waiting before, even while Parley still reads that at start', async () => {
  const database = `sqlite:${join(dir, 'parley.db')}`;
  const first = await startServer({ database });
  const phone = await agent('ivy', first.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(phone, { instance })).status, 200);
  phone.answer = 503;
  const sender = await agent('jay', first.udp);
  assert.equal((await sender.message('sip:ivy@localhost', 'before the restart')).status, 202);
  await first.stop();

  phone.answer = 200;
  const seenBefore = phone.received.length;
  const slow = slowStartStore();
  // On the same port: the phone answers where it registered.
  const second = await startServer({ database, listen: [{ proto: 'udp', host: '127.0.0.1', port: first.udp.port }] }, [slow.plugin, ...defaultPlugins()]);
  try {
    let count = 0;
    const both = phone.waitForRequest((m) => m.method === 'MESSAGE' && ++count === 2, 10_000);
    // Queued behind the older one, which the phone has not taken yet.
    assert.equal((await sender.message('sip:ivy@localhost', 'after the restart')).status, 202);
    slow.release();
    await both;
    const delivered = phone.received.slice(seenBefore).filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
    assert.deepEqual(delivered, ['before the restart', 'after the restart']);
  } finally {
    slow.release();
    await second.stop();
  }
});
