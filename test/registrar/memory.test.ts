// What the registrar keeps of a registration, for as long as it lasts, is the binding alone: not the
// text of the REGISTER it came in (a few hundred bytes to kilobytes more per registered device).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { getHeapSnapshot } from 'node:v8';
import { text } from 'node:stream/consumers';
import { createLogger } from '../../src/log/index.js';
import { openStore } from '../../src/store/index.js';
import { Registrar } from '../../src/registrar/index.js';
import { parseMessage, type IncomingRequest } from '../../src/sip/index.js';

/** Registers alice's phone with a REGISTER that carries `marker` (only there: it is held as bytes) in a header of its own. */
async function registerWith(registrar: Registrar, marker: Buffer): Promise<number> {
  const lines = [
    'REGISTER sip:localhost SIP/2.0',
    'Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKmemory',
    'From: <sip:alice@localhost>;tag=a', 'To: <sip:alice@localhost>', 'Call-ID: a-call-id-long-enough@127.0.0.1', 'CSeq: 1 REGISTER',
    'Contact: <sip:alice@127.0.0.1:5070;transport=tcp>;+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>";reg-id=1',
    'Path: <sip:edge.example.net;lr;ob>', 'Supported: outbound, path',
    'User-Agent: a phone of a long enough name/1.0', `X-Marker: ${marker.toString('hex')}`,
    'Content-Length: 0', '', '',
  ];
  const message = parseMessage(Buffer.from(lines.join('\r\n')));
  let status = 0;
  const request: IncomingRequest = {
    message,
    source: { proto: 'tcp', host: '127.0.0.1', port: 5070, connectionId: 'c1' },
    replied: false,
    reply: (code) => void (status = code),
    respond: (response) => void (status = response.status),
  };
  await registrar.handle(request, 'alice@localhost');
  return status;
}

test('a registered binding does not keep the REGISTER it came in alive', async () => {
  const store = await openStore('sqlite::memory:');
  const registrar = new Registrar(store.locations, { minExpires: 60, maxExpires: 3600, defaultExpires: 1800, maxContacts: 3 }, () => false, createLogger('silent'));
  await registrar.start();
  const marker = randomBytes(16);
  assert.equal(await registerWith(registrar, marker), 200);
  assert.equal(registrar.lookup('alice@localhost')[0]?.contact, 'sip:alice@127.0.0.1:5070;transport=tcp');
  // A heap snapshot holds every string still reachable (it collects garbage first).
  const heap = await text(getHeapSnapshot());
  assert.equal(heap.includes(marker.toString('hex')), false, 'the REGISTER text is still in memory');
  await registrar.stop();
  await store.close();
});
