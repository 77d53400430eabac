// TLS, secure WebSocket and TCP against Parley, with a certificate made by `parley cert`:
// a TLS and a WSS client register and exchange MESSAGEs with a UDP user, a large MESSAGE for a
// UDP user goes over TCP (RFC 3261 §18.1.1), and stream keepalives are answered (RFC 5626).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { StreamUA } from '../support/stream-ua.js';
import { SipMessage, createResponse, formatPeer, randomToken } from '../../src/sip/index.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');

let s: TestServer;
let certDir: string;
let certPem: string;
let tls: { host: string; port: number };
let wss: { host: string; port: number };
const closers: Array<() => void> = [];

async function udpUser(user: string): Promise<TestUA> {
  const agent = await TestUA.create({ user, server: s.udp });
  closers.push(() => agent.close());
  assert.equal((await agent.register()).status, 200);
  return agent;
}

async function streamUser(user: string, proto: 'tcp' | 'tls' | 'ws' | 'wss'): Promise<StreamUA> {
  const server = proto === 'tls' ? tls : proto === 'wss' ? wss : proto === 'tcp' ? s.tcp : s.ws!;
  const agent = await StreamUA.connect({ proto, user, server, ca: certPem });
  closers.push(() => agent.close());
  return agent;
}

/** A TCP listener on the same port number as a UDP user's socket, answering what arrives on it. */
interface TcpTwin {
  server: Server;
  received: SipMessage[];
  next(timeoutMs?: number): Promise<SipMessage>;
}

async function tcpTwin(port: number): Promise<TcpTwin | undefined> {
  const received: SipMessage[] = [];
  const waiting: Array<(m: SipMessage) => void> = [];
  const server = createTcpServer((socket) => {
    const framer = new StreamFramer(1 << 20);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      for (const r of framer.push(chunk)) {
        if (!('message' in r) || !r.message.isRequest) continue;
        received.push(r.message);
        socket.write(createResponse(r.message, 200).toBuffer());
        waiting.shift()?.(r.message);
      }
    });
  });
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (!ok) return undefined;
  closers.push(() => server.close());
  return {
    server,
    received,
    next: (timeoutMs = 5000) =>
      received.length > 0
        ? Promise.resolve(received[received.length - 1]!)
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`nothing arrived over TCP on port ${port} within ${timeoutMs} ms`)), timeoutMs);
            waiting.push((m) => {
              clearTimeout(timer);
              resolve(m);
            });
          }),
  };
}

/** A UDP user whose port number is also open for TCP (like a phone listening on both). */
async function udpUserWithTcpTwin(user: string): Promise<{ ua: TestUA; twin: TcpTwin }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const ua = await TestUA.create({ user, server: s.udp });
    closers.push(() => ua.close());
    const twin = await tcpTwin(ua.localPort);
    if (!twin) continue;
    assert.equal((await ua.register()).status, 200);
    return { ua, twin };
  }
  throw new Error('no UDP port whose TCP twin was free');
}

/** Writes bytes on a fresh stream and collects what comes back for `ms`. */
async function exchange(socket: Socket, writes: Array<string | Buffer>, ms = 300, gapMs = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  for (const w of writes) {
    socket.write(w);
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  await new Promise((r) => setTimeout(r, ms));
  return Buffer.concat(chunks);
}

function optionsRequest(proto: 'TCP' | 'TLS', port: number): string {
  return [
    `OPTIONS sip:localhost SIP/2.0`,
    `Via: SIP/2.0/${proto} 127.0.0.1:${port};branch=z9hG4bK${randomToken(10)}`,
    'Max-Forwards: 70',
    `From: <sip:probe@localhost>;tag=${randomToken()}`,
    'To: <sip:localhost>',
    `Call-ID: ${randomToken(12)}@keepalive`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'parley-cert-'));
  await promisify(execFile)(process.execPath, [join(ROOT, 'bin', 'parley.js'), 'cert', '--out', certDir, '--host', 'localhost'], { cwd: ROOT });
  certPem = readFileSync(join(certDir, 'cert.pem'), 'utf8');
  s = await startServer({
    listen: [
      { proto: 'udp', host: '127.0.0.1', port: 0 },
      { proto: 'tcp', host: '127.0.0.1', port: 0 },
      { proto: 'tls', host: '127.0.0.1', port: 0 },
      { proto: 'ws', host: '127.0.0.1', port: 0 },
      { proto: 'wss', host: '127.0.0.1', port: 0 },
    ],
    tls: { cert: join(certDir, 'cert.pem'), key: join(certDir, 'key.pem') },
  });
  const bound = (proto: string) => {
    const b = s.server.transports.bound.find((l) => l.proto === proto);
    assert.ok(b, `Parley listens on ${proto}`);
    return { host: b.host, port: b.port };
  };
  tls = bound('tls');
  wss = bound('wss');
});

after(async () => {
  for (const close of closers) close();
  await s?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

test('a TLS client verifies Parley\'s certificate (the one `parley cert` wrote) and registers', async () => {
  const alice = await streamUser('alice', 'tls');
  const presented = alice.tlsSocket!.getPeerCertificate();
  assert.equal(presented.fingerprint256, new X509Certificate(certPem).fingerprint256);
  assert.equal((await alice.register()).status, 200);
  const [binding] = s.server.registrar.lookup('alice@localhost');
  assert.ok(binding);
  assert.equal(formatPeer(binding.source), `tls:127.0.0.1:${alice.localPort}`);
  assert.equal(binding.contact, alice.contact);
});

test('TLS and UDP users exchange MESSAGEs both ways', async () => {
  const alice = await streamUser('alice2', 'tls');
  assert.equal((await alice.register()).status, 200);
  const bob = await udpUser('bob');

  const toAlice = alice.waitForRequest((m) => m.method === 'MESSAGE');
  const r1 = await bob.message('sip:alice2@localhost', 'over TLS 🔒 to alice');
  assert.equal(r1.status, 200);
  const got = await toAlice;
  assert.equal(got.body.toString('utf8'), 'over TLS 🔒 to alice');
  assert.equal(got.uri, alice.contact);
  assert.match(got.via.transport, /^TLS$/i, 'Parley\'s Via names the transport it used');

  const toBob = bob.waitForRequest((m) => m.method === 'MESSAGE');
  const r2 = await alice.message('sip:bob@localhost', 'from TLS 🔐 to bob');
  assert.equal(r2.status, 200);
  assert.equal((await toBob).body.toString('utf8'), 'from TLS 🔐 to bob');
});

test('a MESSAGE over 1300 bytes for a UDP user goes over TCP to the same address (RFC 3261 §18.1.1)', async () => {
  const { ua: hugo, twin } = await udpUserWithTcpTwin('hugo');
  const sender = await streamUser('sender', 'tls');
  const body = `${'x'.repeat(1400)} — end ✓`;
  assert.ok(Buffer.byteLength(body) > 1300);
  const response = await sender.message('sip:hugo@localhost', body);
  assert.equal(response.status, 200);
  const got = await twin.next();
  assert.equal(got.method, 'MESSAGE');
  assert.equal(got.body.toString('utf8'), body);
  assert.match(got.via.transport, /^TCP$/i);
  assert.equal(hugo.received.filter((m) => m.method === 'MESSAGE').length, 0, 'nothing came over UDP');

  // The control: a small one still goes over UDP.
  const small = hugo.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await sender.message('sip:hugo@localhost', 'small')).status, 200);
  assert.equal((await small).body.toString(), 'small');
  assert.equal(twin.received.length, 1, 'the small one did not come over TCP');
});

test('when the UDP user does not listen on TCP, the large MESSAGE falls back to UDP', async () => {
  const ivan = await udpUser('ivan');
  const sender = await streamUser('sender2', 'tls');
  const body = 'y'.repeat(1500);
  const incoming = ivan.waitForRequest((m) => m.method === 'MESSAGE');
  const response = await sender.message('sip:ivan@localhost', body);
  assert.equal(response.status, 200);
  const got = await incoming;
  assert.equal(got.body.toString(), body);
  assert.match(got.via.transport, /^UDP$/i);
});

test('a MESSAGE for a TLS user whose connection closed is stored (202), not lost', async () => {
  const jane = await streamUser('jane', 'tls');
  assert.equal((await jane.register()).status, 200);
  const [binding] = s.server.registrar.lookup('jane@localhost');
  jane.close();
  const deadline = Date.now() + 3000;
  while (s.server.transports.isConnected(binding!.connectionId!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const bob = await udpUser('bob2');
  const response = await bob.message('sip:jane@localhost', 'for later 📨');
  assert.equal(response.status, 202);
  const back = await streamUser('jane', 'tls');
  const incoming = back.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await back.register()).status, 200);
  assert.equal((await incoming).body.toString('utf8'), 'for later 📨');
});

test('a TCP keepalive ping (CRLFCRLF) gets a CRLF pong, and the connection still carries SIP', async () => {
  const socket = tcpConnect(s.tcp.port, s.tcp.host);
  closers.push(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const pong = await exchange(socket, ['\r\n\r\n']);
  assert.equal(pong.toString('latin1'), '\r\n');
  socket.removeAllListeners('data');
  const answer = await exchange(socket, [optionsRequest('TCP', socket.localPort!)]);
  assert.match(answer.toString('utf8'), /^SIP\/2\.0 200 /);
});

test('a single CRLF (a pong) is not answered', async () => {
  const socket = tcpConnect(s.tcp.port, s.tcp.host);
  closers.push(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const nothing = await exchange(socket, ['\r\n']);
  assert.equal(nothing.length, 0);
});

test('a keepalive ping split across two TCP segments still gets its pong', async () => {
  const socket = tcpConnect(s.tcp.port, s.tcp.host);
  closers.push(() => socket.destroy());
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const pong = await exchange(socket, ['\r\n', '\r\n'], 300, 100);
  assert.equal(pong.toString('latin1'), '\r\n');
});

test('a TLS keepalive ping gets a CRLF pong', async () => {
  const socket = tlsConnect({ host: tls.host, port: tls.port, ca: certPem });
  closers.push(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  const pong = await exchange(socket, ['\r\n\r\n']);
  assert.equal(pong.toString('latin1'), '\r\n');
});

test('a secure WebSocket client (sip subprotocol, certificate verified) registers and gets a MESSAGE', async () => {
  const carol = await streamUser('carol', 'wss');
  assert.equal(carol.wsProtocol, 'sip');
  assert.equal((await carol.register()).status, 200);
  const [binding] = s.server.registrar.lookup('carol@localhost');
  assert.ok(binding);
  assert.match(formatPeer(binding.source), /^wss:127\.0\.0\.1:\d+$/);
  const dave = await udpUser('dave');
  const incoming = carol.waitForRequest((m) => m.method === 'MESSAGE');
  const response = await dave.message('sip:carol@localhost', 'wss 🛡️ hello');
  assert.equal(response.status, 200);
  const got = await incoming;
  assert.equal(got.body.toString('utf8'), 'wss 🛡️ hello');
  assert.equal(got.uri, carol.contact);
  assert.match(got.via.transport, /^WSS$/i);
  const toDave = dave.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await carol.message('sip:dave@localhost', 'and back 🔁')).status, 200);
  assert.equal((await toDave).body.toString('utf8'), 'and back 🔁');
});
