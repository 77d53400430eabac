// The per-user gateway's sessions through an HTTP proxy (gateway.http_proxy_host/port, the purple
// seed's httpProxy_host/port), against a real tinyproxy, Prosody and ngIRCd: the XMPP and IRC
// sessions reach their servers only through CONNECT tunnels (the proxy's log shows them), messages
// cross as they do directly, and a proxy that refuses the tunnel leaves the session retrying with the
// proxy's answer in the log, never failed for good.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from '../support/eventually.js';
import { GATEWAY, bodyOf, gatewayConfig, ircLinkCommand, sessionOnline, xmppLinkCommand } from '../support/gateway.js';
import { IrcUser } from '../support/irc-user.js';
import { Ngircd } from '../support/ngircd.js';
import { Prosody } from '../support/prosody.js';
import { type TestServer, startServer } from '../support/server.js';
import { Tinyproxy } from '../support/tinyproxy.js';
import { TestUA, registeredTcpUser, waitForSipMessage } from '../support/ua.js';
import { XmppUser } from '../support/xmpp-user.js';

const IRC_PASSWORD = 'irc-server-pass';

let proxy: Tinyproxy;
let prosody: Prosody;
let ngircd: Ngircd;
let parley: TestServer;
let alice: TestUA;

const sipMessage = (test: (m: SipMessage) => boolean, what: string) => waitForSipMessage(alice, test, what);

async function linkedOnline(server: TestServer, ua: TestUA, command: string, extUser: string): Promise<number> {
  assert.equal((await ua.message(GATEWAY, command)).status, 200);
  const account = await eventually(async () => (await server.server.store.gatewayAccounts.listFor('sip:alice@localhost')).find((a) => a.extUser === extUser), `${extUser} linked`);
  return account.id;
}

before(async () => {
  [proxy, prosody, ngircd] = await Promise.all([Tinyproxy.start(), Prosody.start(), Ngircd.start({ password: IRC_PASSWORD })]);
  await Promise.all([prosody.register('alice', 'alice-xmpp'), prosody.register('juliet', 'password')]);
  parley = await startServer({ gateway: { ...gatewayConfig, allow_unauthenticated: true, http_proxy_host: proxy.host, http_proxy_port: proxy.port } });
  alice = await registeredTcpUser(parley.tcp, 'alice');
});

after(async () => {
  alice?.close();
  await parley?.stop();
  await Promise.all([proxy?.stop(), prosody?.stop(), ngircd?.stop()]);
});

describe('sessions through an HTTP proxy', () => {
  test('an XMPP session logs in through a CONNECT tunnel and carries messages both ways', async () => {
    const juliet = await XmppUser.connect(prosody, 'juliet');
    try {
      const id = await linkedOnline(parley, alice, xmppLinkCommand(prosody, 'alice', 'alice-xmpp'), `alice@${prosody.domain}`);
      await sessionOnline(parley, id, 'XMPP session online');
      assert.match(proxy.log(), new RegExp(`CONNECT 127\\.0\\.0\\.1:${prosody.c2sPort}`));
      assert.equal((await alice.message(`sip:juliet*${prosody.domain}@xmpp.localhost`, 'through the proxy ☂')).status, 202);
      await juliet.waitForMessage((m) => m.getChildText('body') === 'through the proxy ☂');
      await juliet.send(`alice@${prosody.domain}`, 'and back');
      await sipMessage((m) => bodyOf(m) === 'and back', 'XMPP answer');
    } finally {
      await juliet.stop();
    }
  });

  test('an IRC session registers through a CONNECT tunnel and carries messages both ways', async () => {
    const bob = await IrcUser.connect(ngircd, 'bob', IRC_PASSWORD);
    try {
      const id = await linkedOnline(parley, alice, ircLinkCommand('alice', IRC_PASSWORD, ngircd.port), 'alice@127.0.0.1');
      await sessionOnline(parley, id, 'IRC session online');
      assert.match(proxy.log(), new RegExp(`CONNECT 127\\.0\\.0\\.1:${ngircd.port}`));
      assert.equal((await alice.message('sip:bob*127.0.0.1@irc.localhost', 'IRC through the proxy')).status, 202);
      await bob.waitFor((m) => m.command === 'PRIVMSG' && m.params.at(-1) === 'IRC through the proxy', 'PM through the proxy');
      bob.say('alice', 'IRC answer');
      await sipMessage((m) => bodyOf(m) === 'IRC answer', 'IRC answer');
    } finally {
      bob.close();
    }
  });

  test('a proxy that refuses the tunnel: the session keeps retrying, the log says what the proxy answered', async () => {
    // Tunnels only to port 443: Prosody's port is refused with 403.
    const strict = await Tinyproxy.start([443]);
    const other = await startServer({ gateway: { ...gatewayConfig, allow_unauthenticated: true, http_proxy_host: strict.host, http_proxy_port: strict.port } });
    const carol = await TestUA.create({ proto: 'tcp', user: 'alice', server: other.tcp });
    try {
      assert.equal((await carol.register()).status, 200);
      assert.equal((await carol.message(GATEWAY, xmppLinkCommand(prosody, 'alice', 'alice-xmpp'))).status, 200);
      await eventually(() => /refused the tunnel to 127\.0\.0\.1:\d+: HTTP\/1\.[01] 403/.test(other.logs.join('')) || undefined, 'refusal logged', 15_000);
      const [account] = await other.server.store.gatewayAccounts.listFor('sip:alice@localhost');
      assert.equal(other.server.gateway!.sessionState(account!.id), 'connecting');
    } finally {
      carol.close();
      await other.stop();
      await strict.stop();
    }
  });
});
