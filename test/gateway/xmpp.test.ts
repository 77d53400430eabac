// Per-user gateway to XMPP against a real Prosody: a SIP user with digest credentials links her own
// XMPP account by a #link command, registers (the session comes online), and chats with an XMPP
// user through the jabber seed's addresses; a wrong password is told once and disables the account;
// passwords are stored sealed, never listed, never logged; unauthenticated commands are refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type xml from '@xmpp/xml';
import { eventually } from '../support/eventually.js';
import { GATEWAY, bodyOf, command, fromGateway, gatewayConfig, notices, sessionOnline, sipUser, startGatewayServer, xmppLinkCommand } from '../support/gateway.js';
import { Prosody } from '../support/prosody.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { XmppUser } from '../support/xmpp-user.js';

const SIP_PASSWORD = 'alice-sip-secret';
const XMPP_PASSWORD = 'Xmpp-Secret-4711';
const WRONG_PASSWORD = 'Wrong-Secret-0815';
const ALIAS = 'xmpp.localhost';

let prosody: Prosody;
let parley: TestServer;
let alice: TestUA;
let juliet: XmppUser;

const linkCommand = (user: string, password: string) => xmppLinkCommand(prosody, user, password);

before(async () => {
  prosody = await Prosody.start();
  await Promise.all([prosody.register('alice', XMPP_PASSWORD), prosody.register('juliet', 'password'), prosody.register('carol', 'carol-right')]);
  juliet = await XmppUser.connect(prosody, 'juliet');
  parley = await startGatewayServer();
  alice = await sipUser(parley, 'alice', SIP_PASSWORD);
});

after(async () => {
  alice?.close();
  await juliet?.stop();
  await parley?.stop();
  await prosody?.stop();
});

describe('per-user XMPP gateway', () => {
  let accountId = 0;

  test('#link by an authenticated user stores the account with its password sealed', async () => {
    // Alice is not registered yet: the reply waits in the offline store.
    const response = await alice.message(GATEWAY, linkCommand('alice', XMPP_PASSWORD));
    assert.equal(response.status, 200);
    const accounts = await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost');
    assert.equal(accounts.length, 1);
    const linked = accounts[0]!;
    accountId = linked.id;
    assert.equal(linked.extUser, `alice@${prosody.domain}`);
    assert.equal(linked.extProt, 'xmpp');
    assert.equal(linked.server, '127.0.0.1');
    assert.equal(linked.port, prosody.c2sPort);
    assert.equal(linked.tls, 'none');
    assert.equal(linked.enabled, true);
    const sealed = linked.extPass ?? '';
    assert.ok(sealed.startsWith('v1.'));
    assert.ok(!sealed.includes(XMPP_PASSWORD));
    assert.ok(!Buffer.from(sealed.slice(3), 'base64url').toString('latin1').includes(XMPP_PASSWORD));
    assert.equal(parley.server.gateway!.sessionState(accountId), 'stopped');
  });

  test('the session comes online when the SIP user registers, and the #link reply arrives', async () => {
    assert.equal((await alice.register()).status, 200);
    const [reply] = await notices(alice, 1, (text) => text.startsWith('Linked'));
    assert.match(reply!, new RegExp(`Linked xmpp account alice@${prosody.domain} as number ${accountId}`));
    assert.doesNotMatch(reply!, new RegExp(XMPP_PASSWORD));
    await sessionOnline(parley, accountId);
  });

  test('a SIP MESSAGE to user*server@alias reaches the XMPP contact from the user\'s own account', async () => {
    const text = 'Hello <Juliet> & “friends” ☀';
    const response = await alice.message(`sip:juliet*${prosody.domain}@${ALIAS}`, text);
    assert.equal(response.status, 202);
    const stanza: xml.Element = await juliet.waitForMessage((m) => m.getChildText('body') === text);
    assert.match(stanza.attrs.from!, new RegExp(`^alice@${prosody.domain.replace('.', '\\.')}/`));
    assert.equal(stanza.attrs.type, 'chat');
  });

  test('an XMPP message to the account reaches the SIP user from the mapped address', async () => {
    await juliet.send(`alice@${prosody.domain}`, 'Hi Alice <3 & ünïcödé');
    const message = await eventually(
      () => alice.received.find((m) => m.method === 'MESSAGE' && bodyOf(m) === 'Hi Alice <3 & ünïcödé'),
      'message from juliet',
    );
    assert.equal(message.from.uri, `sip:juliet*${prosody.domain}@${ALIAS}`);
    assert.equal(message.uri.startsWith('sip:alice@'), true);
  });

  test('#accounts and #status list the accounts without passwords', async () => {
    const list = await command(alice, '#accounts');
    assert.match(list, new RegExp(`${accountId}\\. xmpp alice@${prosody.domain} via 127\\.0\\.0\\.1:${prosody.c2sPort} \\(TLS none\\): online`));
    assert.doesNotMatch(list, new RegExp(XMPP_PASSWORD));
    assert.doesNotMatch(list, /v1\./);
    const status = await command(alice, '#status');
    assert.match(status, /You are registered/);
    assert.match(status, new RegExp(`alice@${prosody.domain}: online`));
  });

  test('a wrong password is told once, disables the account, and is not retried', async () => {
    const reply = await command(alice, linkCommand('carol', WRONG_PASSWORD));
    assert.match(reply, /Linked xmpp account carol@/);
    const refused = await notices(alice, 1, (text) => text.includes('was refused'), 15_000);
    assert.match(refused[0]!, new RegExp(`xmpp account carol@${prosody.domain} was refused: not-authorized`));
    const carol = (await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost')).find((a) => a.extUser.startsWith('carol@'))!;
    assert.equal(carol.enabled, false);
    assert.match(carol.lastError ?? '', /not-authorized/);
    // A registration refresh brings enabled accounts online, not the refused one: no retry loop.
    assert.equal((await alice.register()).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(alice.received.filter(fromGateway).filter((m) => bodyOf(m).includes('was refused')).length, 1);
    assert.equal(parley.server.gateway!.sessionState(carol.id), 'stopped');
    assert.equal(parley.server.gateway!.stats.accountFailures, 1);
    // A message through the disabled account is refused with the reason.
    const response = await alice.message(`sip:juliet*${prosody.domain}@${ALIAS}`, 'via carol?');
    assert.equal(response.status, 202, 'alice\'s working account is used');
  });

  test('passwords never reach the log', () => {
    const log = parley.logs.join('');
    assert.ok(log.includes('gateway'), 'the gateway logged something');
    for (const secret of [XMPP_PASSWORD, WRONG_PASSWORD]) assert.ok(!log.includes(secret), `log holds ${secret}`);
  });

  test('#unlink removes the account and ends its session', async () => {
    const reply = await command(alice, `#unlink carol@${prosody.domain}`);
    assert.match(reply, /Unlinked xmpp account carol@/);
    assert.equal((await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost')).length, 1);
    assert.match(await command(alice, '#bogus'), /unknown command/);
    assert.match(await command(alice, '#link xmpp'), /missing argument; usage: #link/);
  });

  test('#offline ends the session, #online brings it back, unregistering ends it', async () => {
    assert.match(await command(alice, '#offline'), new RegExp(`alice@${prosody.domain}: offline`));
    assert.equal(parley.server.gateway!.sessionState(accountId), 'stopped');
    assert.match(await command(alice, '#online'), new RegExp(`alice@${prosody.domain}: (connecting|online)`));
    await sessionOnline(parley, accountId, 'session online again');
    assert.equal((await alice.register(0)).status, 200);
    await eventually(() => parley.server.gateway!.sessionState(accountId) === 'stopped' || undefined, 'session offline after unregistering');
  });
});

describe('unauthenticated senders', () => {
  test('#link is refused under auth.policy open', async () => {
    const open = await startServer({ gateway: gatewayConfig });
    const bob = await TestUA.create({ proto: 'tcp', user: 'bob', server: open.tcp });
    try {
      assert.equal((await bob.register()).status, 200);
      const response = await bob.message(GATEWAY, `#link xmpp bob@${prosody.domain} whatever`);
      assert.equal(response.status, 403);
      assert.match(response.reason, /authenticated/);
      const [reply] = await notices(bob, 1, () => true);
      assert.match(reply!, /Refused: .*digest authentication/);
      assert.deepEqual(await open.server.store.gatewayAccounts.listFor('sip:bob@localhost'), []);
      const message = await bob.message(`sip:juliet*${prosody.domain}@${ALIAS}`, 'spoofed?');
      assert.equal(message.status, 403);
    } finally {
      bob.close();
      await open.stop();
    }
  });
});
