// Server mode: an incoming s2s stream authenticated by its certificate (SASL EXTERNAL, XEP-0178)
// instead of dialback, when Parley verifies certificates. A test authority signs Parley's
// certificate and the peers'; a raw peer does STARTTLS with its own certificate, then SASL.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../support/eventually.js';
import { freeTcpPort, tempDir } from '../support/process.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA, registeredTcpUser } from '../support/ua.js';
import { s2sHeader, streamErrorIn } from '../support/xmpp-peer.js';

const PARLEY_DOMAIN = 'parley.test';
const PEER_DOMAIN = 'peer.test';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';

const dir = tempDir('parley-s2s-external-');
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });

/** A certificate for `name` signed by the test authority: NAME.crt and NAME.key in dir. */
function issue(name: string): { cert: string; key: string } {
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** A peer server of `domain` presenting the certificate `credentials`: STARTTLS, then the stream over TLS. */
async function tlsPeer(port: number, domain: string, credentials: { cert: string; key: string }) {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  let plain = '';
  socket.setEncoding('utf8').on('data', (text: string) => (plain += text));
  socket.write(s2sHeader(domain, PARLEY_DOMAIN));
  await eventually(() => plain.includes('</stream:features>') || undefined, 'features');
  socket.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  await eventually(() => plain.includes('<proceed') || undefined, 'proceed');
  socket.removeAllListeners('data');
  const tls = tlsConnect({ socket, servername: PARLEY_DOMAIN, ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(credentials.cert), key: readFileSync(credentials.key) });
  tls.on('error', () => {});
  await once(tls, 'secureConnect');
  const peer = {
    reply: '',
    /** Writes `text` and resolves once the reply holds `expected` `count` times. */
    async send(text: string, expected: string, count = 1) {
      tls.write(text);
      await eventually(() => peer.reply.split(expected).length > count || undefined, `${expected} x${count} (got ${peer.reply.slice(-300)})`);
    },
    write: (text: string) => void tls.write(text),
    close: () => tls.destroy(),
  };
  tls.setEncoding('utf8').on('data', (text: string) => (peer.reply += text));
  await peer.send(s2sHeader(domain, PARLEY_DOMAIN), '</stream:features>');
  return peer;
}

describe('SASL EXTERNAL on incoming streams', () => {
  let port: number;
  let parley: TestServer;
  let alice: TestUA;
  let peerCert: { cert: string; key: string };
  let otherCert: { cert: string; key: string };

  before(async () => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Parley test authority');
    for (const name of [PARLEY_DOMAIN, PEER_DOMAIN, 'other.test']) {
      execFileSync('sh', ['-c', `printf 'subjectAltName=DNS:${name}\\n' > ${name}.ext`], { cwd: dir });
    }
    const parleyCert = issue(PARLEY_DOMAIN);
    peerCert = issue(PEER_DOMAIN);
    otherCert = issue('other.test');
    port = await freeTcpPort();
    parley = await startServer({
      xmpp: {
        enabled: true, backend: 'server', xmpp_domain: PARLEY_DOMAIN, s2s_listen: '127.0.0.1', s2s_port: port,
        tls_cert: parleyCert.cert, tls_key: parleyCert.key, s2s_ca: join(dir, 'ca.crt'), dialback_secret: 'a dialback secret for the tests',
      },
    });
    alice = await registeredTcpUser(parley.tcp, 'alice');
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 's2s listener online');
  });

  after(async () => {
    alice?.close();
    await parley?.stop();
  });

  test('a peer whose certificate is valid for its domain authenticates with it, and its messages reach SIP', async () => {
    const peer = await tlsPeer(port, PEER_DOMAIN, peerCert);
    try {
      assert.match(peer.reply, /<mechanism>EXTERNAL<\/mechanism>/);
      await peer.send(`<auth xmlns='${NS_SASL}' mechanism='EXTERNAL'>${Buffer.from(PEER_DOMAIN).toString('base64')}</auth>`, '<success');
      await peer.send(s2sHeader(PEER_DOMAIN, PARLEY_DOMAIN), '</stream:features>', 2);
      peer.write(`<message from='juliet@${PEER_DOMAIN}/x' to='alice*localhost@${PARLEY_DOMAIN}' type='chat'><body>signed by my certificate</body></message>`);
      const message = await alice.waitForRequest((request) => request.method === 'MESSAGE' && request.body.toString() === 'signed by my certificate');
      assert.equal(message.from.uri, `sip:juliet*${PEER_DOMAIN}@${PARLEY_DOMAIN}`);
      assert.ok(parley.server.xmpp!.peers.some((p) => p.domain === PEER_DOMAIN && p.direction === 'in' && p.secure));
      assert.ok(parley.logs.some((line) => line.includes('s2s incoming stream authenticated (certificate, SASL EXTERNAL)')));
    } finally {
      peer.close();
    }
  });

  test('a certificate for another domain is not offered EXTERNAL nor accepted; the stream stays unauthenticated', async () => {
    const peer = await tlsPeer(port, PEER_DOMAIN, otherCert);
    try {
      assert.doesNotMatch(peer.reply, /EXTERNAL/);
      await peer.send(`<auth xmlns='${NS_SASL}' mechanism='EXTERNAL'>=</auth>`, '</failure>');
      assert.match(peer.reply, /<failure xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']><not-authorized\/><\/failure>/);
      await peer.send(`<message from='mallory@${PEER_DOMAIN}' to='alice*localhost@${PARLEY_DOMAIN}'><body>claimed</body></message>`, '</stream:stream>');
      assert.equal(streamErrorIn(peer.reply), 'not-authorized');
    } finally {
      peer.close();
    }
  });
});
