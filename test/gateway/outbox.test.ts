// The per-user gateway's outbox as an operator and a user see it: parley_gateway_pending counts the
// MESSAGEs answered 202 that wait for their session, and a #command the store cannot serve now
// tells the user to try again in a moment rather than of an internal error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import SqliteDatabase from 'better-sqlite3';
import { sample, scrape } from '../admin/client.js';
import { command, gatewayConfig, notices, registeredSipUser, startGatewayServer } from '../support/gateway.js';
import type { TestServer } from '../support/server.js';
import type { TestUA } from '../support/ua.js';

const CONTACT = 'sip:bob*example.net@xmpp.localhost';

describe('the per-user gateway outbox', () => {
  let parley: TestServer;
  let alice: TestUA;
  /** An XMPP server that takes connections and never answers: sessions stay connecting, messages wait. */
  let silent: Server;
  const held: Socket[] = [];

  before(async () => {
    silent = createServer((socket) => held.push(socket));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const address = silent.address();
    const jport = typeof address === 'object' && address ? address.port : 0;
    parley = await startGatewayServer({ gateway: { ...gatewayConfig, allow_user_servers: false, jaddress: '127.0.0.1', jport } });
    alice = await registeredSipUser(parley, 'alice', 'alice-sip');
  });
  after(async () => {
    alice?.close();
    for (const socket of held) socket.destroy();
    await parley?.stop();
    silent?.close();
  });

  test('parley_gateway_pending counts the MESSAGEs answered 202 that wait for their session', async () => {
    assert.match(await command(alice, '#link xmpp alice@example.net pw tls=none'), /^Linked xmpp account alice@example\.net/);
    assert.equal(sample((await scrape(parley)).text, 'parley_gateway_pending'), 0);
    assert.equal((await alice.message(CONTACT, 'one')).status, 202);
    assert.equal((await alice.message(CONTACT, 'two')).status, 202);
    assert.equal(sample((await scrape(parley)).text, 'parley_gateway_pending'), 2);
  });

  test('a #command the store cannot serve now is answered "temporarily unavailable, try again", and works once it can', async () => {
    const lock = new SqliteDatabase(parley.config.database.slice('sqlite:'.length));
    lock.exec('BEGIN EXCLUSIVE');
    try {
      assert.equal((await alice.message('sip:gateway@localhost', '#link xmpp carol@example.net pw tls=none')).status, 200);
      const [reply] = await notices(alice, 1, (text) => text.startsWith('#link failed'));
      assert.equal(reply, '#link failed: temporarily unavailable (the store), try again in 5 s');
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    assert.match(await command(alice, '#link xmpp carol@example.net pw tls=none'), /^Linked xmpp account carol@example\.net/);
  });
});
