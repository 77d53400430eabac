// The per-user gateway through the admin endpoint, against a real Prosody: accounts added, listed,
// tested and removed by JSON-RPC take effect on the running sessions; gateway.status and the
// metrics count them; the password given never comes back, nor reaches the log.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RpcErrorCode } from '../../src/admin/index.js';
import { SecretBox, sealContext } from '../../src/gateway/index.js';
import { sessionOnline } from '../support/gateway.js';
import { Prosody } from '../support/prosody.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA, registeredTcpUser } from '../support/ua.js';
import { postRpc, rpc, scrape } from './client.js';

const KEY = 'a-test-key-of-some-length';
const XMPP_PASSWORD = 'Xmpp-Secret-4711';
const WRONG_PASSWORD = 'Wrong-Secret-0815';

let prosody: Prosody;
let s: TestServer;
let alice: TestUA;
/** Every JSON-RPC answer of the tests, to look for the passwords in. */
const answers: string[] = [];

async function call(method: string, params?: unknown) {
  const answer = await rpc(s, method, params);
  answers.push(JSON.stringify(answer));
  return answer;
}

before(async () => {
  prosody = await Prosody.start();
  await prosody.register('alice', XMPP_PASSWORD);
  s = await startServer({ gateway: { enabled: true, secret_key: KEY, reconnect_min: 0.1, reconnect_max: 0.5, db_table: 'gateway_accounts' } });
  alice = await registeredTcpUser(s.tcp, 'alice');
});

after(async () => {
  alice?.close();
  await s?.stop();
  await prosody?.stop();
});

describe('gateway RPC methods', () => {
  let aliceId = 0;
  let wrongId = 0;

  test('gateway.accounts.add links an account; its session starts at once for a registered user', async () => {
    const { result, error } = await call('gateway.accounts.add', {
      sip_user: 'alice@localhost', network: 'prpl-jabber', ext_user: `alice@${prosody.domain}`, password: XMPP_PASSWORD,
      server: '127.0.0.1', port: prosody.c2sPort, tls: 'none',
    });
    assert.equal(error, undefined);
    aliceId = result.id;
    assert.deepEqual({ ...result, createdAt: undefined, updatedAt: undefined }, {
      id: aliceId, sipUser: 'sip:alice@localhost', network: 'xmpp', extUser: `alice@${prosody.domain}`, server: '127.0.0.1', port: prosody.c2sPort,
      tls: 'none', enabled: true, lastError: null, session: 'connecting', createdAt: undefined, updatedAt: undefined,
    });
    await sessionOnline(s, aliceId);
    const [stored] = await (await s.server.store.gatewayAccountsIn('gateway_accounts')).listFor('sip:alice@localhost');
    assert.equal(new SecretBox(KEY).open(stored!.extPass!, sealContext(stored!)), XMPP_PASSWORD);
    assert.deepEqual(await s.server.store.gatewayAccounts.list(), [], 'gateway.db_table holds the accounts, not purplemap');
  });

  test('gateway.accounts.list: all, or one SIP user\'s, with the session state and never the password', async () => {
    const added = await call('gateway.accounts.add', ['sip:bob@localhost', 'xmpp', `alice@${prosody.domain}`, WRONG_PASSWORD, '127.0.0.1', String(prosody.c2sPort), 'none']);
    wrongId = added.result.id;
    const all = (await call('gateway.accounts.list')).result;
    assert.deepEqual(all.map((a: { id: number; session: string }) => [a.id, a.session]), [[aliceId, 'online'], [wrongId, 'stopped']]);
    assert.ok(all.every((a: object) => !('extPass' in a) && !('password' in a)));
    assert.deepEqual((await call('gateway.accounts.list', { sip_user: 'sip:bob@localhost' })).result.map((a: { id: number }) => a.id), [wrongId]);
  });

  test('gateway.accounts.test: the right password logs in, a wrong one fails with the network\'s reason', async () => {
    assert.deepEqual((await call('gateway.accounts.test', { id: aliceId })).result, { id: aliceId, ok: true, detail: 'its session is online' });
    const refused = (await call('gateway.accounts.test', [String(wrongId)])).result;
    assert.deepEqual([refused.id, refused.ok], [wrongId, false]);
    assert.match(refused.reason, /^not-authorized/);
  });

  test('gateway.status and the metrics count sessions by network and state', async () => {
    const { result } = await call('gateway.status');
    assert.equal(result.sessions.online, 1);
    assert.equal(result.networks.xmpp.online, 1);
    for (const counter of ['sipToNetwork', 'networkToSip', 'commands', 'refused', 'undelivered', 'accountFailures']) assert.equal(typeof result[counter], 'number', counter);
    const { text } = await scrape(s);
    assert.match(text, /^parley_gateway_sessions\{network="xmpp",state="online"\} 1$/m);
    assert.match(text, /^parley_gateway_sessions\{network="xmpp",state="failed"\} 0$/m);
    for (const name of ['messages_to_network', 'messages_to_sip', 'commands', 'refused', 'undelivered', 'account_failures']) {
      assert.match(text, new RegExp(`^# TYPE parley_gateway_${name}_total counter$`, 'm'), name);
    }
  });

  test('refusals: malformed params are -32602, what is not possible here -32000', async () => {
    const add = (params: Record<string, unknown>) => call('gateway.accounts.add', { sip_user: 'alice@localhost', network: 'xmpp', ext_user: 'a@example.net', password: 'pw', ...params });
    const cases: Array<[Promise<{ error?: { code: number; message: string } }>, number, RegExp]> = [
      [add({ network: 'msn' }), RpcErrorCode.INVALID_PARAMS, /unknown network "msn"/],
      [add({ ext_user: 'nobody' }), RpcErrorCode.INVALID_PARAMS, /"nobody" is not a xmpp account/],
      [add({ port: 'abc' }), RpcErrorCode.INVALID_PARAMS, /"port" must be a whole number/],
      [add({ port: 70000 }), RpcErrorCode.INVALID_PARAMS, /port must be a number from 1 to 65535/],
      [add({ tls: 'sometimes' }), RpcErrorCode.INVALID_PARAMS, /tls must be starttls, direct or none/],
      [add({ password: undefined }), RpcErrorCode.INVALID_PARAMS, /"password" is required/],
      [add({ sip_user: 'alice@example.org' }), RpcErrorCode.REFUSED, /example\.org is not one of the domains served here/],
      [call('gateway.accounts.remove', { id: 999 }), RpcErrorCode.REFUSED, /no linked account 999/],
      [call('gateway.accounts.test', { id: 'one' }), RpcErrorCode.INVALID_PARAMS, /"id" must be a whole number/],
    ];
    for (const [answer, code, message] of cases) {
      const { error } = await answer;
      assert.equal(error?.code, code, String(message));
      assert.match(error!.message, message);
    }
    assert.equal((await call('gateway.accounts.list')).result.length, 2);
  });

  test('gateway.accounts.remove ends the account\'s session and deletes it', async () => {
    const { result } = await call('gateway.accounts.remove', { id: aliceId });
    assert.equal(result.id, aliceId);
    assert.equal(result.session, 'stopped');
    assert.equal(s.server.gateway!.sessionState(aliceId), 'stopped');
    assert.equal((await call('gateway.status')).result.sessions.online, 0);
    assert.deepEqual((await call('gateway.accounts.list')).result.map((a: { id: number }) => a.id), [wrongId]);
  });

  test('the passwords appear in no answer and in no log line', () => {
    assert.ok(answers.length > 10);
    assert.ok(s.logs.some((line) => line.includes('gateway session starting')), 'the gateway logged');
    for (const secret of [XMPP_PASSWORD, WRONG_PASSWORD]) {
      assert.ok(!answers.some((answer) => answer.includes(secret)), `an answer holds ${secret}`);
      assert.ok(!s.logs.some((line) => line.includes(secret)), `the log holds ${secret}`);
    }
  });
});

test('with the gateway disabled, its methods say so', async () => {
  const disabled = await startServer({ imc: { enabled: false } });
  try {
    for (const method of ['gateway.status', 'gateway.accounts.list']) {
      const { body } = await postRpc(disabled, { jsonrpc: '2.0', id: 1, method });
      assert.deepEqual(body.error, { code: RpcErrorCode.REFUSED, message: 'the per-user gateway is disabled (gateway.enabled is false)' }, method);
    }
    assert.doesNotMatch((await scrape(disabled)).text, /parley_gateway_/);
  } finally {
    await disabled.stop();
  }
});
