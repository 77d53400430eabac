// GET /health says whether every plugin is well (200) or which one is not and why (503); while
// the store is unavailable, a call that needs it is answered 503 with Retry-After.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { freeTcpPort } from '../support/process.js';
import { startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { adminToken, adminUrl, postRpc, rpc } from './client.js';

test('GET /health: 503 naming the XMPP gateway while its link is down', async () => {
  const s = await startServer({ xmpp: { enabled: true, xmpp_domain: 'sip.xmpp.example', xmpp_password: 'secret', xmpp_port: await freeTcpPort() } });
  try {
    const response = await fetch(`${adminUrl(s)}/health`);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), { status: 'degraded', plugins: { xmpp: { status: 'degraded', reason: 'the XMPP link is down' } } });
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
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    assert.equal((await postRpc(s, { jsonrpc: '2.0', id: 2, method: 'imc.add_member', params: ['chat-locked', 'bob'] })).status, 200);
    assert.ok((await rpc(s, 'imc.list_members', ['chat-locked'])).result.some((m: { uri: string }) => m.uri === 'sip:bob@localhost'));
  } finally {
    alice.close();
    await s.stop();
  }
});
