// A real client's subscription: JsSIP, the SIP library of web clients, watches a user over
// SIP-over-WebSocket (RFC 7118), where NOTIFYs can only go back over the client's own connection.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { JsSipClient } from '../support/jssip.js';
import { parsePidf } from '../../src/presence/index.js';

let s: TestServer;
let client: JsSipClient | undefined;
let victor: TestUA | undefined;

before(async () => {
  s = await startServer();
});
after(async () => {
  client?.kill();
  victor?.close();
  await s.stop();
});

async function eventually<T>(check: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let value = check(); ; value = check()) {
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

test('JsSIP subscribes over WebSocket, is told of a registration, and unsubscribes', async () => {
  client = await JsSipClient.start({ url: `ws://${s.ws!.host}:${s.ws!.port}`, uri: 'sip:wendy@localhost', password: 'unused-open-policy' });
  victor = await TestUA.create({ user: 'victor', server: s.udp });
  const notifies: Array<{ final: boolean; basic: string }> = [];
  let ended: string | undefined;
  const subscriber = client.ua.subscribe('sip:victor@localhost', 'presence', 'application/pidf+xml', {
    expires: 600,
    contentType: 'application/pidf+xml',
  });
  subscriber.on('notify', (final, _request, body) => notifies.push({ final, basic: parsePidf(body ?? '').basic }));
  subscriber.on('terminated', (code, reason) => (ended = reason ?? `code ${code}`));
  subscriber.subscribe();

  assert.deepEqual(await eventually(() => notifies[0], 'the first NOTIFY'), { final: false, basic: 'closed' });
  assert.equal((await victor.register()).status, 200);
  assert.deepEqual(await eventually(() => notifies[1], 'the NOTIFY of the registration'), { final: false, basic: 'open' });

  subscriber.terminate();
  assert.equal(await eventually(() => ended, 'the end of the subscription'), 'timeout');
  assert.deepEqual(notifies.at(-1), { final: true, basic: 'open' });
  assert.deepEqual(s.server.presence!.watchersOf('victor@localhost'), []);
});
