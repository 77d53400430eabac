// The admin endpoint of a running server: rooms made over SIP seen and changed through JSON-RPC,
// protocol errors, the token, and the metrics.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RpcErrorCode } from '../../src/admin/index.js';
import type { SipMessage } from '../../src/sip/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA, UserPool } from '../support/ua.js';
import { repliers } from '../imc/room-helpers.js';
import { adminToken, adminUrl, postRpc, rpc, sample, scrape } from './client.js';

const MANAGER = 'sip:chat-manager@localhost';
const fromUser = (m: SipMessage) => /sip:([^@>]+)@/.exec(m.get('from') ?? '')?.[1];

describe('admin endpoint', () => {
  let s: TestServer;
  const users = new UserPool(() => s.udp);

  const user = (name: string) => users.get(name);

  /** Sends a command and resolves with the reply the room or the manager sends back. */
  async function command(agent: TestUA, to: string, text: string): Promise<string> {
    const from = repliers(to, text);
    const reply = agent.waitForRequest((m) => from.includes(fromUser(m)!) && !m.body.toString().startsWith('***'));
    assert.equal((await agent.message(to, text)).status, 200);
    return (await reply).body.toString();
  }

  const notice = (agent: TestUA, text: string) => agent.waitForRequest((m) => m.body.toString().includes(text));

  before(async () => {
    s = await startServer({ imc: { max_rate: 10000, rate_burst: 10000 } });
    const [alice, bob] = await Promise.all(['alice', 'bob', 'carol'].map(user));
    assert.match(await command(alice!, MANAGER, '#create chat-x'), /created room/);
    assert.match(await command(bob!, 'sip:chat-x@localhost', '#join'), /you joined/);
    assert.match(await command(alice!, MANAGER, '#create chat-hidden private'), /created private room/);
    assert.match(await command(alice!, 'sip:chat-hidden@localhost', '#invite carol'), /invited/);
    // Waited for before posting: the post may reach alice before bob has his 200.
    const heard = notice(alice!, 'hello from bob');
    assert.equal((await bob!.message('sip:chat-x@localhost', 'hello from bob')).status, 200);
    await heard;
  });
  after(async () => {
    users.closeAll();
    await s.stop();
  });

  describe('rooms', () => {
    test('imc.list_rooms shows the rooms made over SIP, with owner and member count', async () => {
      const { result } = await rpc(s, 'imc.list_rooms');
      assert.deepEqual(
        result.sort((a: { uri: string }, b: { uri: string }) => a.uri.localeCompare(b.uri)),
        [
          { uri: 'sip:chat-hidden@localhost', private: true, members: 1, owner: 'sip:alice@localhost' },
          { uri: 'sip:chat-x@localhost', private: false, members: 2, owner: 'sip:alice@localhost' },
        ],
      );
    });

    test('imc.list_members gives roles, invitations included; by name or position, with or without sip:', async () => {
      assert.deepEqual((await rpc(s, 'imc.list_members', { room: 'sip:chat-x@localhost' })).result, [
        { uri: 'sip:alice@localhost', role: 'owner', nick: 'alice' },
        { uri: 'sip:bob@localhost', role: 'member', nick: 'bob' },
      ]);
      assert.deepEqual((await rpc(s, 'imc.list_members', ['chat-hidden'])).result, [
        { uri: 'sip:alice@localhost', role: 'owner', nick: 'alice' },
        { uri: 'sip:carol@localhost', role: 'invited', nick: 'carol' },
      ]);
    });

    test('imc.add_member and imc.remove_member take effect and the members are told', async () => {
      const alice = await user('alice');
      const dave = await user('dave');
      const joined = notice(alice, 'dave (sip:dave@localhost) has joined');
      const history = notice(dave, 'hello from bob');
      assert.deepEqual(await rpc(s, 'imc.add_member', { room: 'chat-x', user: 'dave' }), { jsonrpc: '2.0', id: 1, result: 'you joined sip:chat-x@localhost' });
      await Promise.all([joined, history]);
      assert.deepEqual((await rpc(s, 'imc.list_members', ['chat-x'])).result.map((m: { uri: string }) => m.uri), [
        'sip:alice@localhost', 'sip:bob@localhost', 'sip:dave@localhost',
      ]);
      assert.equal((await dave.message('sip:chat-x@localhost', 'dave here')).status, 200, 'an added member may post');

      const removed = notice(alice, 'dave was removed by the operator');
      assert.equal((await rpc(s, 'imc.remove_member', ['sip:chat-x@localhost', 'sip:dave@localhost'])).result, 'removed sip:dave@localhost');
      await removed;
      assert.equal((await dave.message('sip:chat-x@localhost', 'still here?')).status, 403);
    });

    test('refusals come back as -32000 with the reason', async () => {
      assert.deepEqual((await rpc(s, 'imc.list_members', { room: 'chat-nope' })).error, { code: RpcErrorCode.REFUSED, message: 'no room chat-nope' });
      assert.deepEqual((await rpc(s, 'imc.add_member', { room: 'chat-x', user: 'bob' })).error, {
        code: RpcErrorCode.REFUSED,
        message: 'sip:bob@localhost is a member already',
      });
      assert.deepEqual((await rpc(s, 'imc.destroy_room', ['chat-nope'])).error, { code: RpcErrorCode.REFUSED, message: 'no room chat-nope' });
    });

    test('a room whose name its address escapes is listed, and found by its address however it is written', async () => {
      const alice = await user('alice');
      assert.match(await command(alice, MANAGER, '#create chat-two%20words'), /created room sip:chat-two%20words@localhost/);
      try {
        const { result } = await rpc(s, 'imc.list_rooms');
        assert.deepEqual(
          result.find((room: { uri: string }) => room.uri === 'sip:chat-two%20words@localhost'),
          { uri: 'sip:chat-two%20words@localhost', private: false, members: 1, owner: 'sip:alice@localhost' },
        );
        for (const room of ['sip:chat-two%20words@localhost', 'chat-two%20words', 'chat-two%20words@LOCALHOST', 'sip:chat-two%20words@localhost;transport=udp']) {
          assert.deepEqual((await rpc(s, 'imc.list_members', { room })).result, [{ uri: 'sip:alice@localhost', role: 'owner', nick: 'alice' }], room);
        }
        assert.deepEqual((await rpc(s, 'imc.list_members', { room: 'chat-x@example.org' })).error, { code: RpcErrorCode.REFUSED, message: 'no room chat-x@example.org' });
      } finally {
        assert.equal((await rpc(s, 'imc.destroy_room', ['chat-two%20words'])).result, 'sip:chat-two%20words@localhost destroyed');
      }
    });

    test('imc.active_rooms counts rooms; imc.destroy_room removes one and its members are told', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      assert.equal((await rpc(s, 'imc.active_rooms')).result, 2);
      assert.match(await command(bob, MANAGER, '#create chat-gone'), /created/);
      assert.equal((await rpc(s, 'imc.active_rooms')).result, 3);
      assert.match(await command(alice, 'sip:chat-gone@localhost', '#join'), /you joined/);

      const closed = notice(alice, 'the room was closed by the operator');
      assert.equal((await rpc(s, 'imc.destroy_room', { room: 'chat-gone@localhost' })).result, 'sip:chat-gone@localhost destroyed');
      await closed;
      assert.equal((await rpc(s, 'imc.active_rooms')).result, 2);
      assert.equal((await bob.message('sip:chat-gone@localhost', 'anyone?')).status, 404);
    });
  });

  describe('server', () => {
    test('core.status: uptime, listeners, registered AORs, SIP and relay counts', async () => {
      const { result } = await rpc(s, 'core.status');
      assert.ok(result.uptime >= 0);
      assert.deepEqual(result.listeners, s.server.transports.bound.map((b) => `${b.proto}:${b.host}:${b.port}`));
      assert.deepEqual(result.domains, ['localhost']);
      assert.equal(result.aors, 4);
      assert.ok(result.sip.requestsIn > 0);
      for (const key of ['serverTransactions', 'clientTransactions']) assert.equal(typeof result.sip[key], 'number', key);
      assert.ok(result.relay.relayed > 0);
      assert.equal(result.imc.rooms, 2);
    });

    test('registrar.lookup: the bindings, without the Call-ID', async () => {
      const alice = await user('alice');
      const { result } = await rpc(s, 'registrar.lookup', { aor: 'sip:alice@LOCALHOST' });
      assert.equal(result.aor, 'sip:alice@localhost');
      assert.equal(result.bindings.length, 1);
      assert.equal(result.bindings[0].contact, alice.contact);
      assert.ok(result.bindings[0].expires > 3500);
      assert.doesNotMatch(JSON.stringify(result), new RegExp(alice.callId));
      assert.deepEqual((await rpc(s, 'registrar.lookup', ['nobody@localhost'])).result, { aor: 'sip:nobody@localhost', bindings: [] });
    });

    test('registrar.lookup: a URI is read as the registrar reads a REGISTER, escapes and parameters included', async () => {
      const dora = await user('dora%40home');
      for (const aor of ['sip:dora%40home@localhost', 'sip:dora%40home@localhost;transport=udp', 'dora@home@localhost']) {
        const { result } = await rpc(s, 'registrar.lookup', { aor });
        assert.equal(result.aor, 'sip:dora%40home@localhost', aor);
        assert.deepEqual(result.bindings.map((binding: { contact: string }) => binding.contact), [dora.contact], aor);
      }
      // Gone again, so that the AORs counted by the metrics below are those of the other tests.
      assert.equal((await dora.register(0)).status, 200);
    });

    test('users.list: the users, without their hashes', async () => {
      await s.server.store.users.put({ username: 'erin', domain: 'localhost', ha1Md5: 'a'.repeat(32), ha1Sha256: 'b'.repeat(64) });
      const { result } = await rpc(s, 'users.list');
      assert.deepEqual(result.map((u: { user: string }) => u.user), ['sip:erin@localhost']);
      assert.doesNotMatch(JSON.stringify(result), /aaaa|bbbb/);
      assert.deepEqual((await rpc(s, 'users.list', { domain: 'example.com' })).result, []);
    });
  });

  describe('protocol', () => {
    test('unknown method: -32601', async () => {
      assert.deepEqual((await rpc(s, 'imc.no_such')).error, { code: RpcErrorCode.METHOD_NOT_FOUND, message: 'method not found: imc.no_such' });
      assert.equal((await rpc(s, 'toString')).error?.code, RpcErrorCode.METHOD_NOT_FOUND, 'no inherited properties');
    });

    test('bad params: -32602 naming the param', async () => {
      const cases: Array<[string, unknown, RegExp]> = [
        ['imc.list_members', {}, /"room" is required/],
        ['imc.list_members', { room: 7 }, /"room" must be a non-empty string/],
        ['imc.list_members', { room: 'chat-x', colour: 'red' }, /unknown param "colour"/],
        ['imc.add_member', ['chat-x', 'bob', 'extra'], /at most 2 by position/],
        ['imc.add_member', ['chat-x'], /"user" is required/],
        ['imc.list_rooms', 'chat-x', /object \(by name\) or an array/],
        ['registrar.lookup', ['alice'], /"aor" must be user@domain/],
        ['registrar.lookup', ['sip:alice@'], /"aor" must be user@domain/],
        ['registrar.lookup', ['sip:localhost'], /"aor" must be user@domain/],
      ];
      for (const [method, params, message] of cases) {
        const { error } = await rpc(s, method, params);
        assert.equal(error?.code, RpcErrorCode.INVALID_PARAMS, `${method} ${JSON.stringify(params)}`);
        assert.match(error!.message, message);
      }
    });

    test('batch: one answer per call in order, none for notifications; an empty batch is invalid', async () => {
      const { status, body } = await postRpc(s, [
        { jsonrpc: '2.0', id: 'a', method: 'imc.active_rooms' },
        { jsonrpc: '2.0', method: 'imc.active_rooms' },
        { jsonrpc: '2.0', id: 'b', method: 'nope' },
        { jsonrpc: '1.0', id: 'c', method: 'imc.active_rooms' },
        { jsonrpc: '2.0', id: 'd', method: 'imc.list_members', params: ['chat-hidden'] },
      ]);
      assert.equal(status, 200);
      assert.deepEqual(body.map((r: { id: unknown }) => r.id), ['a', 'b', 'c', 'd']);
      assert.equal(body[0].result, 2);
      assert.equal(body[1].error.code, RpcErrorCode.METHOD_NOT_FOUND);
      assert.equal(body[2].error.code, RpcErrorCode.INVALID_REQUEST);
      assert.equal(body[3].result.length, 2);
      assert.equal((await postRpc(s, [])).body.error.code, RpcErrorCode.INVALID_REQUEST);
    });

    test('notifications alone get 204; a body that is not JSON gets -32700', async () => {
      assert.deepEqual(await postRpc(s, { jsonrpc: '2.0', method: 'imc.active_rooms' }), { status: 204, body: undefined });
      assert.deepEqual(await postRpc(s, [{ jsonrpc: '2.0', method: 'core.status' }]), { status: 204, body: undefined });
      assert.equal((await postRpc(s, '{"jsonrpc": "2.0", ')).body.error.code, RpcErrorCode.PARSE_ERROR);
    });

    test('a missing or wrong token gets 401 and changes nothing', async () => {
      const destroy = { jsonrpc: '2.0', id: 1, method: 'imc.destroy_room', params: ['chat-x'] };
      assert.equal((await postRpc(s, destroy, null)).status, 401);
      assert.equal((await postRpc(s, destroy, `${adminToken(s)}x`)).status, 401);
      assert.equal((await postRpc(s, destroy, '')).status, 401);
      assert.equal((await rpc(s, 'imc.active_rooms')).result, 2);
    });

    test('other paths and methods are refused', async () => {
      assert.equal((await fetch(`${adminUrl(s)}/rpc`)).status, 405);
      assert.equal((await fetch(`${adminUrl(s)}/`)).status, 404);
    });
  });

  describe('token', () => {
    test('the generated token is in admin.token beside the database, mode 0600, and never logged', async () => {
      const file = join(s.dir, 'admin.token');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const token = adminToken(s);
      assert.ok(token.length >= 32);
      assert.ok(s.logs.some((line) => line.includes('admin endpoint listening')));
      assert.ok(!s.logs.some((line) => line.includes(token)), 'the token appears in the logs');
    });
  });

  describe('metrics', () => {
    test('/metrics has every Parley metric, with the values of the traffic so far, and the process metrics', async () => {
      const { status, text } = await scrape(s);
      assert.equal(status, 200);
      for (const name of [
        'parley_imc_messages_in_total', 'parley_imc_messages_out_total', 'parley_imc_deliveries_failed_total',
        'parley_sip_responses_out_total', 'parley_sip_malformed_total', 'parley_sip_answered_statelessly_total', 'parley_relay_relayed_total', 'parley_relay_stored_total',
        'parley_relay_delivered_total', 'parley_imc_members',
      ]) {
        assert.notEqual(sample(text, name), undefined, name);
      }
      assert.match(text, /# TYPE parley_sip_requests_in_total counter/);
      assert.equal(sample(text, 'parley_imc_active_rooms'), 2);
      assert.equal(sample(text, 'parley_registrar_aors'), 4);
      assert.ok(sample(text, 'parley_sip_requests_in_total')! >= s.server.stack.stats.requestsIn - 1);
      assert.ok(sample(text, 'parley_imc_messages_in_total')! >= 2);
      assert.ok(sample(text, 'parley_imc_messages_out_total')! >= 2);
      assert.ok(sample(text, 'parley_relay_relayed_total')! > 0);
      assert.match(text, /^process_cpu_user_seconds_total /m);
    });

    test('counters follow the traffic between scrapes', async () => {
      const before = sample((await scrape(s)).text, 'parley_imc_messages_in_total')!;
      const bob = await user('bob');
      await bob.message('sip:chat-x@localhost', 'one more');
      assert.equal(sample((await scrape(s)).text, 'parley_imc_messages_in_total'), before + 1);
    });
  });
});

describe('admin endpoint with a configured token, rooms disabled', () => {
  const token = 'configured-token-0123456789';
  let s: TestServer;
  before(async () => {
    s = await startServer({ admin: { token, metrics_token: true }, imc: { enabled: false } });
  });
  after(() => s.stop());

  test('the configured token is the one, and no token file is written', async () => {
    assert.equal((await postRpc(s, { jsonrpc: '2.0', id: 1, method: 'core.status' }, token)).body.result.imc, null);
    assert.equal(existsSync(join(s.dir, 'admin.token')), false);
    assert.ok(!s.logs.some((line) => line.includes(token)));
  });

  test('metrics_token: /metrics needs the token too; without rooms there are no room metrics', async () => {
    assert.equal((await scrape(s)).status, 401);
    const { status, text } = await scrape(s, token);
    assert.equal(status, 200);
    assert.notEqual(sample(text, 'parley_registrar_aors'), undefined);
    assert.doesNotMatch(text, /parley_imc_/);
  });

  test('room methods say rooms are disabled', async () => {
    const { body } = await postRpc(s, { jsonrpc: '2.0', id: 1, method: 'imc.list_rooms' }, token);
    assert.deepEqual(body.error, { code: RpcErrorCode.REFUSED, message: 'chat rooms are disabled (imc.enabled is false)' });
  });
});
