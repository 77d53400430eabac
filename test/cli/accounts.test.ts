// `parley accounts` as an operator uses it: linking accounts for SIP users with the password on
// standard input, listing, removing, and trying accounts against a real Prosody. Passwords are
// stored sealed and never shown, whatever the command or its log level.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AddressInfo, createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SecretBox, sealContext } from '../../src/gateway/index.js';
import { openStore, type GatewayAccount } from '../../src/store/index.js';
import { parley, type Outcome } from '../support/cli.js';
import { Prosody } from '../support/prosody.js';

const KEY = 'a-test-key-of-some-length';
const XMPP_PASSWORD = 'Xmpp-Secret-4711';
const WRONG_PASSWORD = 'Wrong-Secret-0815';

// The key comes from the configuration here; one in the environment would hide a missing one.
delete process.env.PARLEY_GATEWAY_KEY;

const dir = mkdtempSync(join(tmpdir(), 'parley-accounts-'));
const database = `sqlite:${join(dir, 'parley.db')}`;
let prosody: Prosody;

function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const config = writeConfig('parley.yaml', `domains: [localhost]\ndatabase: ${database}\ngateway:\n  secret_key: ${KEY}\n`);

const accounts = (args: string[], input = '') => parley(['accounts', ...args, '--config', config], input);

async function storedAccounts(table = 'purplemap'): Promise<GatewayAccount[]> {
  const store = await openStore(database);
  try {
    return await (await store.gatewayAccountsIn(table)).list();
  } finally {
    await store.close();
  }
}

function assertNoSecrets(outcome: Outcome, ...secrets: string[]): void {
  for (const secret of secrets) {
    assert.ok(!outcome.stdout.includes(secret) && !outcome.stderr.includes(secret), `the output shows ${secret}`);
  }
}

before(async () => {
  prosody = await Prosody.start();
  await prosody.register('alice', XMPP_PASSWORD);
});

after(async () => {
  await prosody?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('parley accounts', () => {
  const server = () => `127.0.0.1:${prosody.c2sPort}`;
  let aliceId = 0;
  let wrongId = 0;

  test('every command has --help; the group lists them', async () => {
    const group = await parley(['accounts', '--help']);
    assert.equal(group.code, 0);
    for (const command of ['add', 'list', 'remove', 'test']) assert.match(group.stdout, new RegExp(`^  ${command} `, 'm'));
    assert.match((await parley(['--help'])).stdout, /^ {2}accounts /m);
    for (const command of ['add', 'list', 'remove', 'test']) {
      const { code, stdout } = await parley(['accounts', command, '--help']);
      assert.equal(code, 0, command);
      assert.match(stdout, new RegExp(`^Usage: parley accounts ${command} `), command);
    }
  });

  test('add reads the password from standard input and stores it sealed for that account', async () => {
    const outcome = await accounts(['add', 'alice@LOCALHOST', 'prpl-jabber', `alice@${prosody.domain}`, '--server', server(), '--tls', 'none'], `${XMPP_PASSWORD}\n`);
    assert.equal(outcome.code, 0, outcome.stderr);
    const id = Number(/^added account (\d+): /.exec(outcome.stdout)?.[1]);
    assert.equal(outcome.stdout, `added account ${id}: xmpp alice@${prosody.domain} of sip:alice@localhost (TLS none, server ${server()})\n`);
    assertNoSecrets(outcome, XMPP_PASSWORD);
    aliceId = id;

    const [stored] = await storedAccounts();
    assert.deepEqual(
      { sipUser: stored!.sipUser, extProt: stored!.extProt, extUser: stored!.extUser, server: stored!.server, port: stored!.port, tls: stored!.tls, enabled: stored!.enabled },
      { sipUser: 'sip:alice@localhost', extProt: 'xmpp', extUser: `alice@${prosody.domain}`, server: '127.0.0.1', port: prosody.c2sPort, tls: 'none', enabled: true },
    );
    assert.ok(!stored!.extPass!.includes(XMPP_PASSWORD));
    assert.equal(new SecretBox(KEY).open(stored!.extPass!, sealContext(stored!)), XMPP_PASSWORD);
  });

  test('add again for the same account updates it and keeps its number', async () => {
    const wrong = await accounts(['add', 'sip:bob@localhost', 'xmpp', `alice@${prosody.domain}`, '--server', server(), '--tls', 'none'], WRONG_PASSWORD);
    assert.equal(wrong.code, 0, wrong.stderr);
    wrongId = Number(/^added account (\d+)/.exec(wrong.stdout)?.[1]);
    const again = await accounts(['add', 'sip:bob@localhost', 'jabber', `alice@${prosody.domain}`, '--server', server(), '--tls', 'none'], WRONG_PASSWORD);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^updated account ${wrongId}: xmpp alice@`));
    assert.equal((await storedAccounts()).length, 2);
  });

  test('add refuses what #link refuses, before asking for the password; never a password in argv', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['add', 'alice@localhost', 'msn', 'alice@example.net'], 2, /unknown network "msn" \(served here: xmpp\b/],
      [['add', 'alice@localhost', 'xmpp', 'not-a-jid'], 2, /"not-a-jid" is not a xmpp account \(expected user@server\)/],
      [['add', 'alice@localhost', 'xmpp', 'a@example.net', '--tls', 'maybe'], 2, /tls must be starttls, direct or none/],
      [['add', 'alice@localhost', 'xmpp', 'a@example.net', '--server', 'bad host:1'], 2, /"bad host:1" is not host\[:port\]/],
      [['add', 'alice@localhost', 'xmpp', 'a@example.net', '--server', 'example.net:70000'], 2, /port must be a number from 1 to 65535/],
      [['add', 'alice', 'xmpp', 'a@example.net'], 2, /expected a SIP user/],
      [['add', 'alice@localhost', 'xmpp'], 2, /expected SIP_USER NETWORK EXT_USER/],
      [['add', 'alice@localhost', 'xmpp', 'a@example.net', '--password', 'x'], 2, /Unknown option '--password'/],
      [['add', 'alice@example.org', 'xmpp', 'a@example.net'], 1, /example\.org is not one of the domains served here \(localhost\)/],
    ];
    for (const [args, code, message] of cases) {
      const outcome = await accounts(args, 'some-password');
      assert.equal(outcome.code, code, `${args.join(' ')}: ${outcome.stderr}`);
      assert.match(outcome.stderr, message, args.join(' '));
      assert.equal(outcome.stdout, '');
    }
    const empty = await accounts(['add', 'alice@localhost', 'xmpp', 'a@example.net'], '\n');
    assert.deepEqual([empty.code, empty.stderr], [1, 'parley: the password is empty\n']);
    assert.equal((await storedAccounts()).length, 2);
  });

  test('add without a gateway key names the key, exit 2', async () => {
    const keyless = writeConfig('keyless.yaml', `domains: [localhost]\ndatabase: ${database}\n`);
    const outcome = await parley(['accounts', 'add', 'alice@localhost', 'xmpp', 'a@example.net', '--config', keyless], 'pw');
    assert.equal(outcome.code, 2);
    assert.match(outcome.stderr, /gateway\.secret_key/);
  });

  test('list prints the accounts, all or of one SIP user, never passwords', async () => {
    const store = await openStore(database);
    await store.gatewayAccounts.setStatus(wrongId, { enabled: false, lastError: 'not-authorized' });
    await store.close();
    const all = await accounts(['list']);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID +SIP USER +NETWORK +ACCOUNT +SERVER +TLS +STATE$/);
    assert.match(lines[1]!, new RegExp(`^${aliceId} +sip:alice@localhost +xmpp +alice@${prosody.domain} +${server()} +none +enabled$`));
    assert.match(lines[2]!, new RegExp(`^${wrongId} +sip:bob@localhost +xmpp +alice@${prosody.domain} +${server()} +none +disabled: not-authorized$`));
    assert.equal(lines.length, 3);
    assertNoSecrets(all, XMPP_PASSWORD, WRONG_PASSWORD, 'v1.');

    const bob = await accounts(['list', 'sip:bob@localhost']);
    assert.equal(bob.stdout.trimEnd().split('\n').length, 2);
    assert.equal((await accounts(['list', 'carol@localhost'])).stdout, 'no linked accounts\n');
  });

  test('test logs in with the stored password: ok exits 0, a refusal exits 1 with the reason', async () => {
    const ok = await accounts(['test', String(aliceId), '--log-level', 'trace']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^account ${aliceId}: xmpp alice@${prosody.domain} of sip:alice@localhost: ok, logged in\n$`));
    assertNoSecrets(ok, XMPP_PASSWORD);

    const refused = await accounts(['test', String(wrongId), '--log-level', 'trace']);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, new RegExp(`^account ${wrongId}: xmpp alice@${prosody.domain} of sip:bob@localhost: failed: not-authorized`));
    assertNoSecrets(refused, WRONG_PASSWORD);
    // Testing changes nothing: the refused account stays as it was.
    assert.equal((await storedAccounts()).find((a) => a.id === wrongId)!.lastError, 'not-authorized');
  });

  test('test of an unreachable server fails with the cause, or times out; of no such account, or without an ID, fails', async () => {
    const added = await accounts(['add', 'carol@localhost', 'xmpp', `carol@${prosody.domain}`, '--server', '127.0.0.1:1', '--tls', 'none'], 'pw');
    const id = /^added account (\d+)/.exec(added.stdout)![1]!;
    const refused = await accounts(['test', id, '--timeout', '10']);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /failed: 127\.0\.0\.1:1 refused the connection \(no server listens there\)\n$/);
    const silent = createServer(() => {}).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const silentPort = (silent.address() as AddressInfo).port;
    const waiting = await accounts(['add', 'carol@localhost', 'xmpp', `dave@${prosody.domain}`, '--server', `127.0.0.1:${silentPort}`, '--tls', 'none'], 'pw');
    const timedOut = await accounts(['test', /^added account (\d+)/.exec(waiting.stdout)![1]!, '--timeout', '1']);
    silent.close();
    assert.equal(timedOut.code, 1);
    assert.match(timedOut.stdout, /failed: not logged in within 1 s/);
    const missing = await accounts(['test', '999']);
    assert.deepEqual([missing.code, missing.stderr], [1, 'parley: no linked account 999\n']);
    assert.equal((await accounts(['test'])).code, 2);
    assert.equal((await accounts(['test', id, '--timeout', 'soon'])).code, 2);
  });

  test('remove deletes an account; a second time, or a bad ID, fails', async () => {
    const removed = await accounts(['remove', String(wrongId)]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, `removed account ${wrongId}: xmpp alice@${prosody.domain} of sip:bob@localhost; its password is deleted\n`);
    assert.ok(!(await storedAccounts()).some((a) => a.id === wrongId));
    const again = await accounts(['remove', String(wrongId)]);
    assert.deepEqual([again.code, again.stderr], [1, `parley: no linked account ${wrongId}\n`]);
    const bad = await accounts(['remove', 'alice']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /expected one account ID/);
  });

  test('gateway.db_table: the accounts live in that table, created when missing', async () => {
    const other = `sqlite:${join(dir, 'other.db')}`;
    const custom = writeConfig('custom.yaml', `domains: [localhost]\ndatabase: ${other}\ngateway:\n  secret_key: ${KEY}\n  db_table: kamailio_purple\n`);
    const added = await parley(['accounts', 'add', 'alice@localhost', 'xmpp', `alice@${prosody.domain}`, '--server', server(), '--tls', 'none', '--config', custom], XMPP_PASSWORD);
    assert.equal(added.code, 0, added.stderr);
    const listed = await parley(['accounts', 'list', '--config', custom]);
    assert.match(listed.stdout, new RegExp(`sip:alice@localhost +xmpp +alice@${prosody.domain}`));
    assert.equal((await parley(['accounts', 'test', '1', '--config', custom])).code, 0);
    const store = await openStore(other);
    try {
      assert.equal((await store.gatewayAccounts.list()).length, 0, 'purplemap stays empty');
      assert.equal((await (await store.gatewayAccountsIn('kamailio_purple')).list()).length, 1);
    } finally {
      await store.close();
    }
    const invalid = writeConfig('invalid.yaml', `gateway:\n  db_table: "purple; drop"\n`);
    const refused = await parley(['accounts', 'list', '--config', invalid]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /gateway\.db_table.*expected an SQL table name/);
  });
});
