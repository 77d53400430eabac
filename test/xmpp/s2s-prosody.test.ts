// The XMPP gateway in server mode: Parley is the XMPP server of parley.test and federates over
// s2s (STARTTLS + Server Dialback) with a real Prosody serving prosody.test. Both names are put in
// /etc/hosts for the test (Prosody on 127.0.0.2, Parley on 127.0.0.3, both at port 5269; all of
// 127/8 is loopback on Linux), and /etc/hosts is restored afterwards, failures included.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import xml from '@xmpp/xml';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from '../support/eventually.js';
import { tempDir } from '../support/process.js';
import { Watch, notified, pidf, publish, stateIn } from '../support/presence.js';
import { Prosody } from '../support/prosody.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA, registeredTcpUser, waitForSipMessages } from '../support/ua.js';
import { XmppUser } from '../support/xmpp-user.js';

const HOSTS = '/etc/hosts';
const PROSODY_DOMAIN = 'prosody.test';
const PROSODY_IP = '127.0.0.2';
const PARLEY_DOMAIN = 'parley.test';
const PARLEY_IP = '127.0.0.3';

let originalHosts: string | undefined;
let prosody: Prosody;
let parley: TestServer;
let alice: TestUA;
let juliet: XmppUser;
let prosodyCert = '';

function addHosts(): void {
  originalHosts = readFileSync(HOSTS, 'utf8');
  const base = originalHosts.endsWith('\n') || originalHosts === '' ? originalHosts : `${originalHosts}\n`;
  // Written in place: in containers /etc/hosts is often a bind mount that cannot be replaced.
  writeFileSync(HOSTS, `${base}${PROSODY_IP} ${PROSODY_DOMAIN} # parley s2s test\n${PARLEY_IP} ${PARLEY_DOMAIN} # parley s2s test\n`);
}

function restoreHosts(): void {
  if (originalHosts === undefined) return;
  writeFileSync(HOSTS, originalHosts);
  originalHosts = undefined;
}
process.on('exit', restoreHosts);

/** A self-signed certificate for `name` in `dir`, as NAME.crt and NAME.key (where Prosody looks). */
function certificate(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`], { stdio: 'ignore' });
  return { cert, key };
}

const bodyOf = (stanza: xml.Element) => stanza.getChildText('body') ?? '';
const sipTextOf = (message: SipMessage) => message.body.toString('utf8');

const sipMessages = (ua: TestUA, count: number, test: (request: SipMessage) => boolean, timeoutMs = 20_000) => waitForSipMessages(ua, count, test, timeoutMs);

/** What a raw TCP peer gets back from Parley's s2s port for `input`, until Parley closes. */
async function rawExchange(input: string[], timeoutMs = 5_000): Promise<string> {
  const socket = connect(5269, PARLEY_IP);
  await once(socket, 'connect');
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  const closed = once(socket, 'close');
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  for (const part of input) {
    if (!socket.writable) break;
    socket.write(part);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await closed;
  clearTimeout(timer);
  return received;
}

const STREAM_HEADER = (to = PARLEY_DOMAIN, ns = 'jabber:server') =>
  `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${PROSODY_DOMAIN}' to='${to}' version='1.0'>`;

before(async () => {
  // Prosody's c2s offers STARTTLS with its self-signed certificate, which the test client takes.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  addHosts();
  const certs = tempDir('parley-s2s-certs-');
  const parleyTls = certificate(certs, PARLEY_DOMAIN);
  prosody = await Prosody.start({
    domain: PROSODY_DOMAIN,
    template: new URL('../fixtures/prosody/prosody-s2s.cfg.lua', import.meta.url),
    values: { S2S_INTERFACE: PROSODY_IP, S2S_PORT: 5269 },
    setup: (dir) => void (prosodyCert = certificate(dir, PROSODY_DOMAIN).cert),
  });
  await prosody.register('juliet', 'password');
  juliet = await XmppUser.connect(prosody, 'juliet');
  parley = await startServer({
    presence: { enabled: true },
    xmpp: {
      enabled: true,
      backend: 'server',
      xmpp_domain: PARLEY_DOMAIN,
      s2s_listen: PARLEY_IP,
      s2s_port: 5269,
      tls_cert: parleyTls.cert,
      tls_key: parleyTls.key,
      dialback_secret: 'a dialback secret for the tests',
      // Prosody's self-signed certificate is the one authority trusted for outgoing streams.
      s2s_ca: prosodyCert,
      presence_grace: 1,
    },
  });
  alice = await registeredTcpUser(parley.tcp, 'alice');
  await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 's2s listener online');
});

after(async () => {
  try {
    alice?.close();
    await juliet?.stop();
    await parley?.stop();
    if (prosody && process.env.PROSODY_TEST_LOG) console.log(prosody.log());
    await prosody?.stop();
  } finally {
    restoreHosts();
  }
});

describe('federation with Prosody over s2s (STARTTLS + dialback)', { timeout: 60_000 }, () => {
  test('a SIP MESSAGE reaches the Prosody user from the mapped address', async () => {
    const response = await alice.message(`sip:juliet*${PROSODY_DOMAIN}@${PARLEY_DOMAIN}`, 'Hello Juliet, over s2s');
    assert.equal(response.status, 202);
    const stanza = await juliet.waitForMessage((m) => bodyOf(m) === 'Hello Juliet, over s2s', 30_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${prosody.log().slice(-4000)}\n${parley.logs.slice(-40).join('')}`);
    });
    assert.equal(stanza.attrs.from, `alice*localhost@${PARLEY_DOMAIN}`);
    assert.equal(stanza.attrs.to, `juliet@${PROSODY_DOMAIN}`);
  });

  test('a message of the Prosody user reaches the SIP user', async () => {
    await juliet.send(`alice*localhost@${PARLEY_DOMAIN}`, 'Hello Alice, over s2s');
    const [message] = await sipMessages(alice, 1, (m) => m.body.toString() === 'Hello Alice, over s2s', 30_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${prosody.log().slice(-4000)}\n${parley.logs.slice(-40).join('')}`);
    });
    assert.equal(message!.from.uri, `sip:juliet*${PROSODY_DOMAIN}@${PARLEY_DOMAIN}`);
    assert.equal(message!.to.uri, 'sip:alice@localhost');
  });

  test('presence over s2s: a SIP SUBSCRIBE to the Prosody user gets NOTIFY open once she approves, with her status', async () => {
    const mark = juliet.presences.length;
    const { response, watch } = await Watch.subscribe(alice, `sip:juliet*${PROSODY_DOMAIN}@${PARLEY_DOMAIN}`, { expires: 600 });
    assert.equal(response.status, 200);
    await juliet.waitForPresence((p) => p.attrs.from === `alice*localhost@${PARLEY_DOMAIN}` && p.attrs.type === 'subscribe', mark, 30_000);
    await juliet.sendPresence({ to: `alice*localhost@${PARLEY_DOMAIN}`, type: 'subscribed' });
    await juliet.sendPresence({}, xml('show', {}, 'away'), xml('status', {}, 'Across the federation'));
    const notify = await eventually(async () => {
      const next = await watch!.nextNotify(20_000);
      return stateIn(next).notes.includes('Across the federation') ? next : undefined;
    }, 'NOTIFY with juliet\'s status', 30_000);
    assert.equal(stateIn(notify).basic, 'open');
    assert.ok(stateIn(notify).activities.includes('away'));
  });

  test('presence over s2s: the Prosody user subscribed to the SIP user sees her PUBLISHed note', async () => {
    await juliet.fetchRoster();
    const mark = juliet.presences.length;
    await juliet.sendPresence({ to: `alice*localhost@${PARLEY_DOMAIN}`, type: 'subscribe' });
    await juliet.waitForPresence((p) => p.attrs.from === `alice*localhost@${PARLEY_DOMAIN}` && p.attrs.type === 'subscribed', mark, 30_000);
    assert.equal((await publish(alice, { body: pidf(alice.aor, 'open', { note: 'Federated note' }), expires: 600 })).status, 200);
    const seen = await juliet.waitForPresence((p) => p.attrs.from?.startsWith(`alice*localhost@${PARLEY_DOMAIN}`) === true && p.getChildText('status') === 'Federated note', mark, 30_000);
    assert.equal(seen.attrs.type, undefined);
  });

  test('both directions ran over TLS, authenticated by dialback', () => {
    const peers = parley.server.xmpp!.peers;
    assert.ok(peers.some((peer) => peer.domain === PROSODY_DOMAIN && peer.direction === 'out' && peer.secure), JSON.stringify(peers));
    assert.ok(peers.some((peer) => peer.domain === PROSODY_DOMAIN && peer.direction === 'in' && peer.secure), JSON.stringify(peers));
  });
});

describe('certificate verification of outgoing streams', { timeout: 60_000 }, () => {
  test('a peer whose certificate is not trusted gets nothing; the SIP sender is told why', async () => {
    // A second Parley that trusts only Node's bundled authorities, not Prosody's self-signed certificate.
    const strict = await startServer({
      xmpp: { enabled: true, backend: 'server', xmpp_domain: 'strict.test', s2s_listen: PARLEY_IP, s2s_port: 0, dialback_secret: 'another dialback secret for tests' },
    });
    const bob = await TestUA.create({ proto: 'tcp', user: 'bob', server: strict.tcp });
    try {
      assert.equal((await bob.register()).status, 200);
      const mark = juliet.messages.length;
      const response = await bob.message(`sip:juliet*${PROSODY_DOMAIN}@strict.test`, 'must not cross an unverified stream');
      const failure = response.status >= 300 ? `${response.status} ${response.reason}` : sipTextOf((await sipMessages(bob, 1, (m) => /not delivered|not valid/i.test(m.body.toString())))[0]!);
      assert.match(failure, /certificate of prosody\.test is not valid for it/);
      assert.equal(juliet.messages.slice(mark).filter((m) => bodyOf(m).startsWith('must not cross')).length, 0);
      assert.match(strict.logs.join(''), /s2s peer certificate refused/);
    } finally {
      bob.close();
      await strict.stop();
    }
  });
});

describe('bad input on the s2s port', { timeout: 20_000 }, () => {
  test('malformed XML closes the stream with <not-well-formed/>, and Parley stays up', async () => {
    const reply = await rawExchange([STREAM_HEADER(), '<message><body>broken</message>']);
    assert.match(reply, /<stream:features>/);
    assert.match(reply, /<stream:error><not-well-formed xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/);
    assert.match(reply, /<\/stream:stream>$/);
    assert.equal(parley.server.xmpp!.stats.state, 'online');
    const response = await alice.message(`sip:juliet*${PROSODY_DOMAIN}@${PARLEY_DOMAIN}`, 'still here');
    assert.equal(response.status, 202);
    await juliet.waitForMessage((m) => bodyOf(m) === 'still here', 20_000);
  });

  test('a stream to a domain Parley does not serve gets <host-unknown/>', async () => {
    const reply = await rawExchange([STREAM_HEADER('elsewhere.test')]);
    assert.match(reply, /<stream:error><host-unknown xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/);
  });

  test('a stream of the wrong namespace gets <invalid-namespace/>', async () => {
    const reply = await rawExchange([STREAM_HEADER(PARLEY_DOMAIN, 'jabber:client')]);
    assert.match(reply, /<stream:error><invalid-namespace xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/);
  });

  test('stanzas before STARTTLS and dialback are refused', async () => {
    const reply = await rawExchange([STREAM_HEADER(), `<message from='mallory@${PROSODY_DOMAIN}' to='alice*localhost@${PARLEY_DOMAIN}'><body>spoofed</body></message>`]);
    assert.match(reply, /<stream:error><policy-violation /);
    assert.ok(!alice.received.some((request) => request.body.toString() === 'spoofed'));
  });
});

describe('the Prosody server gone', { timeout: 60_000 }, () => {
  test('killed: once the grace period is over the SIP watcher is told the Prosody user is unavailable; started again, her presence comes back', async () => {
    const { response, watch } = await Watch.subscribe(alice, `sip:juliet*${PROSODY_DOMAIN}@${PARLEY_DOMAIN}`, { expires: 600 });
    assert.equal(response.status, 200);
    await notified(watch!, { basic: 'open' }, 30_000);

    process.kill(prosody.pid!, 'SIGKILL');
    await prosody.stop();
    assert.equal((await notified(watch!, { basic: 'closed' }, 20_000)).basic, 'closed');

    await prosody.start();
    // Juliet's client comes back by itself; her server tells Parley, which asks for her presence again.
    await notified(watch!, { basic: 'open' }, 40_000);
  });
});
