// Per-user gateway to IRC end to end, against a real ngIRCd: a SIP user with digest credentials
// links her nick on the IRC server (its server password as the account's password) by #link,
// registers (the session comes online), and chats with an IRC user at nick*server@irc.<domain>;
// a channel is joined with #join at %23channel*server@irc.<domain>; a message to an unknown nick
// comes back as an error; a wrong password is told once; passwords never reach the log.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/index.js';
import { eventually } from '../support/eventually.js';
import { GATEWAY, type IrcGateway, bodyOf, command, fromGateway, ircLinkCommand, notices, sessionOnline, startIrcGateway } from '../support/gateway.js';
import type { IrcUser } from '../support/irc-user.js';
import type { Ngircd } from '../support/ngircd.js';
import type { TestServer } from '../support/server.js';
import { type TestUA, waitForSipMessage } from '../support/ua.js';

const SIP_PASSWORD = 'alice-sip-secret';
const IRC_PASSWORD = 'Irc-Server-Pass-4711';
const WRONG_PASSWORD = 'Wrong-Irc-Pass-0815';
const ALIAS = 'irc.localhost';
const SERVER = '127.0.0.1';

let irc: IrcGateway;
let ngircd: Ngircd;
let parley: TestServer;
let alice: TestUA;
let bob: IrcUser;

const linkCommand = (nick: string, password: string) => ircLinkCommand(nick, password, ngircd.port);

before(async () => {
  irc = await startIrcGateway(IRC_PASSWORD, SIP_PASSWORD);
  ({ ngircd, parley, alice, bob } = irc);
});

after(() => irc?.stop());

describe('per-user IRC gateway', () => {
  let accountId = 0;

  test('#link irc stores the account; registering brings the nick onto the IRC server', async () => {
    assert.equal((await alice.message(GATEWAY, linkCommand('alice', IRC_PASSWORD))).status, 200);
    const [account] = await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost');
    accountId = account!.id;
    assert.equal(account!.extUser, `alice@${SERVER}`);
    assert.equal(account!.extProt, 'irc');
    assert.equal((await alice.register()).status, 200);
    const [reply] = await notices(alice, 1, (text) => text.startsWith('Linked'));
    assert.match(reply!, new RegExp(`Linked irc account alice@${SERVER} as number ${accountId}`));
    await sessionOnline(parley, accountId);
    bob.raw('ISON alice');
    await bob.waitFor((m) => m.command === '303' && /\balice\b/.test(m.params.at(-1)!), 'alice is on IRC');
  });

  test('a SIP MESSAGE to nick*server@irc.<domain> reaches the IRC user as a PRIVMSG from the nick', async () => {
    const response = await alice.message(`sip:bob*${SERVER}@${ALIAS}`, 'Hello Bob <&> ☀');
    assert.equal(response.status, 202);
    await eventually(() => bob.privmsgs('alice').includes('Hello Bob <&> ☀') || undefined, 'bob gets it');
  });

  test('a PRIVMSG to the nick reaches the SIP user from nick*server@irc.<domain>', async () => {
    bob.say('alice', 'Hi \x02Alice\x02 ünïcödé');
    const message = await waitForSipMessage(alice, (m) => bodyOf(m) === 'Hi Alice ünïcödé', 'message from bob');
    assert.equal(message.from.uri, `sip:bob*${SERVER}@${ALIAS}`);
  });

  test('a message to a nick no one uses comes back as an error from that address', async () => {
    assert.equal((await alice.message(`sip:nobody*${SERVER}@${ALIAS}`, 'hello?')).status, 202);
    const error = await waitForSipMessage(alice, (m) => m.from.uri === `sip:nobody*${SERVER}@${ALIAS}`, 'error notification');
    assert.match(bodyOf(error), /not delivered: .*nobody.*\(404\)/);
  });

  test('#join at %23channel*server enters the channel; talk both ways; #leave', async () => {
    const room = `sip:%23parley*${SERVER}@${ALIAS}`;
    await bob.join('#parley');
    assert.equal((await alice.message(room, '#join')).status, 202);
    await bob.waitFor((m) => m.command === 'JOIN' && m.nick === 'alice' && m.params[0] === '#parley', 'alice joins #parley');
    await waitForSipMessage(alice, (m) => m.from.uri === room && bodyOf(m).startsWith('You are in #parley'), 'joined notice');
    bob.say('#parley', 'Welcome to the channel');
    const heard = await waitForSipMessage(alice, (m) => m.from.uri === room && bodyOf(m).includes('Welcome to the channel'), 'channel message');
    assert.equal(bodyOf(heard), '<bob> Welcome to the channel');
    assert.equal((await alice.message(room, 'Glad to be here ☀')).status, 202);
    await eventually(() => bob.privmsgs('alice', '#parley').includes('Glad to be here ☀') || undefined, 'bob hears alice');
    assert.equal((await alice.message(room, '#leave')).status, 200);
    await bob.waitFor((m) => m.command === 'PART' && m.nick === 'alice' && m.params[0] === '#parley', 'alice parts');
  });

  test('a wrong password is told once and disables the account', async () => {
    const reply = await command(alice, linkCommand('carol', WRONG_PASSWORD));
    assert.match(reply, /Linked irc account carol@/);
    const [refused] = await notices(alice, 1, (text) => text.includes('was refused'), 15_000);
    assert.match(refused!, /irc account carol@127\.0\.0\.1 was refused: .*password/i);
    assert.match(refused!, /; send #link irc carol@127\.0\.0\.1 <password> with the right password, or #online to try again\.$/);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(alice.received.filter(fromGateway).filter((m) => bodyOf(m).includes('was refused')).length, 1);
    const carol = (await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost')).find((a) => a.extUser.startsWith('carol@'))!;
    assert.equal(carol.enabled, false);
  });

  test('passwords never reach the log', () => {
    const log = parley.logs.join('');
    assert.ok(log.includes('IRC session online'));
    for (const secret of [IRC_PASSWORD, WRONG_PASSWORD]) assert.ok(!log.includes(secret), `log holds ${secret}`);
  });
});

describe('irc_domain', () => {
  const gateway = { enabled: true, secret_key: 'a-test-key-of-some-length' };

  test('defaults to irc.<first of domains>, and is refused when it is a local domain or the XMPP alias', () => {
    assert.equal(configSchema.safeParse({ gateway }).success, true);
    for (const irc_domain of ['localhost', 'xmpp.localhost=*']) {
      const result = configSchema.safeParse({ gateway: { ...gateway, irc_domain } });
      assert.equal(result.success, false, irc_domain);
      assert.deepEqual(result.error!.issues.map((i) => i.path.join('.')), ['gateway.irc_domain']);
    }
    assert.equal(configSchema.safeParse({ gateway: { ...gateway, irc_domain: 'chat.example.com=+', irc_line_limit: 480 } }).success, true);
    assert.equal(configSchema.safeParse({ gateway: { ...gateway, irc_line_limit: 99 } }).success, false);
  });
});
