// An XMPP session of the per-user gateway that cannot connect, without a server to talk to: it
// retries, and stopping it ends it, whatever transport it was trying.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { XmppNetwork } from '../../src/gateway/xmpp-network.js';
import { createLogger } from '../../src/log/index.js';
import { freeTcpPort } from '../support/process.js';
import { eventually } from '../support/eventually.js';

function network(logs: string[]): XmppNetwork {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  return new XmppNetwork(
    { alias: 'xmpp.localhost', delimiter: '*', transports: [], servers: new Map(), maxConnecting: 4, xml: { maxStanzaBytes: 256 * 1024, maxDepth: 64 } },
    createLogger('debug', sink),
  );
}

for (const tls of ['direct', 'starttls', 'none'] as const) {
  test(`regression: a session with tls=${tls} whose server refuses the connection retries, and stops cleanly`, async () => {
    // Was (tls=direct, found by the semantic fuzzer through #link): dropping the failed connection called
    // destroy() on @xmpp/tls's socket wrapper, which has none; the TypeError ended the process.
    const logs: string[] = [];
    const closedPort = await freeTcpPort();
    const session = network(logs).createSession(
      { id: 1, extUser: 'alice@example.net', password: 'secret', server: '127.0.0.1', port: closedPort, tls },
      { priority: 0, reconnectMinMs: 60_000, reconnectMaxMs: 60_000 },
    );
    session.start();
    const retrying = await eventually(() => logs.find((line) => line.includes('XMPP session could not connect; retrying')), 'the retry log line');
    assert.match(retrying, /ECONNREFUSED|connect/i);
    assert.equal(session.state, 'connecting');
    await session.stop();
    assert.equal(session.state, 'stopped');
  });
}
