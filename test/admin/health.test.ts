// GET /health says whether the store and every plugin are well (200) or which one is not and why
// (503): the store unavailable, the XMPP link down, a presence bound reached, an outbox past 80 %
// of its bound, per-user gateway sessions that cannot connect. While the store is unavailable, a
// call that needs it is answered 503 with Retry-After.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { eventually } from '../support/eventually.js';
import { command, notices, sipUser, startGatewayServer } from '../support/gateway.js';
import { Watch } from '../support/presence.js';
import { freeTcpPort } from '../support/process.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { adminToken, adminUrl, postRpc, rpc } from './client.js';

/** GET /health: its status and what it says of the store (and of `plugin`, when named). */
async function health(s: TestServer, plugin?: string): Promise<{ status: number; store: any; plugin?: any }> {
  const response = await fetch(`${adminUrl(s)}/health`);
  const { plugins } = (await response.json()) as { plugins: Record<string, unknown> };
  return { status: response.status, store: plugins.store, ...(plugin && { plugin: plugins[plugin] }) };
}

test('GET /health: 503 naming the XMPP gateway while its link is down', async () => {
  const s = await startServer({ xmpp: { enabled: true, xmpp_domain: 'sip.xmpp.example', xmpp_password: 'secret', xmpp_port: await freeTcpPort() } });
  try {
    const response = await fetch(`${adminUrl(s)}/health`);
    assert.equal(response.status, 503);
    const ok = { status: 'ok' };
    assert.deepEqual(await response.json(), {
      status: 'degraded',
      plugins: { store: ok, relay: ok, presence: ok, xmpp: { status: 'degraded', reason: 'the XMPP link is down' } },
    });
    assert.equal((await fetch(`${adminUrl(s)}/health`, { method: 'POST' })).status, 405);
  } finally {
    await s.stop();
  }
});

test('a call that needs the store while it is locked: 503 with Retry-After, then served again', async () => {
  const s = await startServer();
  const alice = await TestUA.create({ user: 'alice', server: s.udp });
  try {
    assert.equal((await alice.register()).status, 200);
    const created = alice.waitForRequest((m) => /created room/.test(m.body.toString()));
    assert.equal((await alice.message('sip:chat-manager@localhost', '#create chat-locked')).status, 200);
    await created;
    const lock = new SqliteDatabase(join(s.dir, 'parley.db'));
    lock.exec('BEGIN EXCLUSIVE');
    try {
      const response = await fetch(`${adminUrl(s)}/rpc`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken(s)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'imc.add_member', params: ['chat-locked', 'bob'] }),
      });
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '5');
      assert.match(await response.text(), /store is unavailable/);
      const { status, store } = await health(s);
      assert.equal(status, 503);
      assert.equal(store.status, 'degraded');
      assert.match(store.reason, /^the store is unavailable since \d{4}-\d\d-\d\dT[\d:.]+Z: /);
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    assert.equal((await postRpc(s, { jsonrpc: '2.0', id: 2, method: 'imc.add_member', params: ['chat-locked', 'bob'] })).status, 200);
    assert.ok((await rpc(s, 'imc.list_members', ['chat-locked'])).result.some((m: { uri: string }) => m.uri === 'sip:bob@localhost'));
    assert.deepEqual(await health(s), { status: 200, store: { status: 'ok' } }, 'a write got through: available again');
  } finally {
    alice.close();
    await s.stop();
  }
});

test('GET /health: presence degraded once a bound is reached, naming the config key', async () => {
  const s = await startServer({ presence: { max_subscriptions: 1 } });
  const alice = await TestUA.create({ user: 'alice', server: s.udp });
  try {
    assert.equal((await health(s, 'presence')).plugin.status, 'ok');
    assert.equal((await Watch.subscribe(alice, 'sip:bob@localhost', { expires: 600 })).response.status, 200);
    const { status, plugin } = await health(s, 'presence');
    assert.equal(status, 503);
    assert.deepEqual(plugin, { status: 'degraded', reason: 'presence.max_subscriptions reached (1 of 1): further new ones are refused' });
  } finally {
    alice.close();
    await s.stop();
  }
});

test('GET /health: the relay degraded while a room outbox is past 80 % of its bound', async () => {
  const s = await startServer({ imc: { max_pending: 5 } });
  const alice = await TestUA.create({ user: 'alice', server: s.udp });
  const bob = await TestUA.create({ user: 'bob', server: s.udp });
  try {
    assert.equal((await alice.register()).status, 200);
    assert.equal((await bob.register()).status, 200);
    const created = alice.waitForRequest((m) => /created room/.test(m.body.toString()));
    assert.equal((await alice.message('sip:chat-busy@localhost', '#create')).status, 200);
    await created;
    assert.equal((await postRpc(s, { jsonrpc: '2.0', id: 1, method: 'imc.add_member', params: ['chat-busy', 'bob'] })).status, 200);
    // Bob's phone stops answering: the posts wait for him, the first one retransmitted.
    bob.answer = null;
    for (const text of ['one', 'two', 'three']) assert.equal((await alice.message('sip:chat-busy@localhost', text)).status, 200);
    assert.equal((await health(s, 'relay')).plugin.status, 'ok', 'three of five');
    assert.equal((await alice.message('sip:chat-busy@localhost', 'four')).status, 200);
    const { status, plugin } = await health(s, 'relay');
    assert.equal(status, 503);
    assert.deepEqual(plugin, { status: 'degraded', reason: 'the room outbox holds 4 messages, past 80 % of its bound (5)' });
  } finally {
    alice.close();
    bob.close();
    await s.stop();
  }
});

test('GET /health: the per-user gateway degraded while a session cannot connect', async () => {
  const s = await startGatewayServer();
  const alice = await sipUser(s, 'alice', 'alice-sip');
  try {
    assert.equal((await alice.register()).status, 200);
    assert.equal((await health(s, 'gateway')).plugin.status, 'ok');
    const port = await freeTcpPort();
    assert.match(await command(alice, `#link xmpp a@example.net pw 127.0.0.1:${port} tls=none`), /^Linked xmpp account/);
    await notices(alice, 1, (text) => text.includes('a@example.net cannot connect'));
    const { status, plugin } = await eventually(async () => {
      const answer = await health(s, 'gateway');
      return answer.plugin.status === 'degraded' && answer;
    }, 'the gateway degraded');
    assert.equal(status, 503);
    assert.equal(plugin.reason, `1 of 1 sessions cannot connect (xmpp: 127.0.0.1:${port} refused the connection (no server listens there))`);
  } finally {
    alice.close();
    await s.stop();
  }
});
