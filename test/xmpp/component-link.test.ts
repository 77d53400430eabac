// The component link's confirmations: stanzas written one after another, not only in the same turn
// of the event loop, are covered by one XEP-0199 ping, written once they had PING_DELAY_MS to gather,
// so a few messages a second do not cost the XMPP server an iq each.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import xml from '@xmpp/xml';
import { createLogger } from '../../src/log/index.js';
import { ComponentLink } from '../../src/xmpp/link.js';
import { eventually } from '../support/eventually.js';
import { xmppComponentServer } from '../support/xmpp-peer.js';

const DOMAIN = 'sip.xmpp.example';
/** Waits for `condition` through turns of the event loop (setTimeout, which eventually() waits with, is mocked meanwhile). */
async function turnsUntil(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 1_000_000; turn++) {
    if (condition()) return;
    await new Promise(setImmediate);
  }
  assert.fail(`${what}: not within a million turns of the event loop`);
}

const pingIds = (text: string) => [...text.matchAll(/<iq type="get" id="([^"]+)"[^>]*><ping xmlns="urn:xmpp:ping"\/><\/iq>/g)].map((match) => match[1]!);

test('stanzas written one after another are covered by one ping, written after them; its answer confirms them all', async () => {
  const server = xmppComponentServer(DOMAIN, (connection, chunk) => {
    for (const id of pingIds(chunk)) connection.socket.write(`<iq type='result' id='${id}' from='xmpp.example' to='${DOMAIN}'/>`);
  });
  const port = await server.listen();
  const link = new ComponentLink(
    { host: '127.0.0.1', port, domain: DOMAIN, password: 'secret', reconnectMinMs: 100, reconnectMaxMs: 200, keepaliveMs: 60_000, maxUnconfirmed: 100, xml: { maxStanzaBytes: 65_536, maxDepth: 32 } },
    createLogger('silent'),
  );
  link.start();
  try {
    await eventually(() => link.online || undefined, 'link online');
    const connection = server.latest!;
    // The ping's delay is the only timer that matters from here on: it passes when the test says.
    mock.timers.enable({ apis: ['setTimeout'] });
    const message = (n: number) => xml('message', { from: `alice*localhost@${DOMAIN}`, to: 'romeo@xmpp.example', type: 'chat' }, xml('body', {}, `message ${n}`));
    assert.equal(link.send(message(1)), true);
    await turnsUntil(() => connection.input.includes('message 1'), 'the first message');
    assert.equal(link.send(message(2)), true);
    await turnsUntil(() => connection.input.includes('message 2'), 'the second message');
    assert.deepEqual(pingIds(connection.input), [], 'no ping yet');
    assert.equal(link.unconfirmed, 2);

    mock.timers.tick(20);
    await turnsUntil(() => pingIds(connection.input).length > 0, 'the ping');
    assert.equal(pingIds(connection.input).length, 1, 'one ping for both');
    assert.ok(connection.input.indexOf('message 2') < connection.input.indexOf('urn:xmpp:ping'), 'the ping after them');
    await turnsUntil(() => link.unconfirmed === 0, 'both confirmed by its answer');
  } finally {
    mock.timers.reset();
    await link.stop();
    server.close();
  }
});
