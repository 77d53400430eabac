// JsSIP, the SIP library web clients use, in Node over SIP-over-WebSocket (RFC 7118): registers on
// Parley's ws listener, exchanges MESSAGEs with a UDP user, and gets what was sent while it was gone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { JsSipClient } from '../support/jssip.js';
import { computeHa1 } from '../../src/registrar/index.js';
import { formatPeer } from '../../src/sip/index.js';
import { realmFor } from '../../src/config/index.js';
import { eventually } from '../support/eventually.js';

let s: TestServer;
let url: string;
const clients: JsSipClient[] = [];
const uas: TestUA[] = [];

async function jssip(user: string): Promise<JsSipClient> {
  const client = await JsSipClient.start({ url, uri: `sip:${user}@localhost`, password: 'unused-open-policy' });
  clients.push(client);
  return client;
}

async function udpUser(user: string): Promise<TestUA> {
  const agent = await TestUA.create({ user, server: s.udp });
  uas.push(agent);
  assert.equal((await agent.register()).status, 200);
  return agent;
}


/** Opens a WebSocket with the given subprotocols; resolves with the HTTP status of a refused upgrade or the agreed protocol. */
function upgrade(protocols: string[]): Promise<{ status: number; protocol?: string; body?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.on('open', () => {
      resolve({ status: 101, protocol: ws.protocol });
      ws.close();
    });
    ws.on('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    ws.on('error', (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

before(async () => {
  s = await startServer();
  assert.ok(s.ws, 'the test server has a ws listener');
  url = `ws://${s.ws.host}:${s.ws.port}`;
});

after(async () => {
  for (const client of clients) client.kill();
  for (const agent of uas) agent.close();
  await s?.stop();
});

const EMOJI = 'Grüße 👋🏽 from dave — ☃ 🎉 𝄞';

test('JsSIP registers carol over WebSocket', async () => {
  const carol = await jssip('carol');
  const bindings = s.server.registrar.lookup('carol@localhost');
  assert.equal(bindings.length, 1);
  const binding = bindings[0]!;
  assert.match(formatPeer(binding.source), /^ws:127\.0\.0\.1:\d+$/);
  assert.match(binding.contact, /;transport=ws/);
  assert.match(binding.userAgent ?? '', /JsSIP/);
  assert.ok(carol.ua.isRegistered());
});

test('a UDP user\'s MESSAGE reaches JsSIP over its WebSocket, UTF-8 intact', async () => {
  const carol = clients[0]!;
  const dave = await udpUser('dave');
  const response = await dave.message('sip:carol@localhost', EMOJI, [], 'text/plain;charset=utf-8');
  assert.equal(response.status, 200);
  const got = await carol.waitForMessage((m) => m.body === EMOJI);
  assert.equal(got.from, 'sip:dave@localhost');
  assert.match(got.contentType ?? '', /^text\/plain/);
});

test('JsSIP\'s sendMessage reaches the UDP user and succeeds', async () => {
  const carol = clients[0]!;
  const dave = uas[0]!;
  const text = 'Hallo dave, 😀 über WebSocket — ✓';
  const incoming = dave.waitForRequest((m) => m.method === 'MESSAGE');
  const outcome = await carol.sendMessage('sip:dave@localhost', text);
  assert.deepEqual(outcome, { ok: true, status: 200 });
  const got = await incoming;
  assert.equal(got.body.toString('utf8'), text);
  assert.equal(Number(got.get('content-length')), Buffer.byteLength(text));
  assert.match(got.get('from')!, /<sip:carol@localhost>/);
  assert.equal(got.uri, dave.contact);
});

test('a WebSocket upgrade without the "sip" subprotocol is refused with 400', async () => {
  assert.equal((await upgrade([])).status, 400);
  const other = await upgrade(['xmpp']);
  assert.equal(other.status, 400);
  assert.match(other.body ?? '', /sip/);
  const sip = await upgrade(['sip']);
  assert.deepEqual(sip, { status: 101, protocol: 'sip' });
});

test('a MESSAGE for a JsSIP user whose connection died is stored (202) and delivered on its next registration', async () => {
  const erin = await jssip('erin');
  const dave = uas[0]!;
  erin.kill();
  await eventually(() => s.server.registrar.lookup('erin@localhost').length === 0, 'erin\'s WebSocket binding to go');
  const text = `while you were away: ${EMOJI}`;
  const response = await dave.message('sip:erin@localhost', text, [], 'text/plain;charset=utf-8');
  assert.equal(response.status, 202);
  const again = await jssip('erin');
  const got = await again.waitForMessage((m) => m.body === text);
  assert.equal(got.from, 'sip:dave@localhost');
  assert.ok(got.request.getHeader('Date'), 'the stored message carries its original Date');
  await eventually(async () => (await s.server.store.offline.count('erin@localhost')) === 0, 'the stored message to be removed once JsSIP took it');
});

test('after JsSIP stops cleanly (un-REGISTER), a MESSAGE is stored and then delivered over a new WebSocket', async () => {
  const frank = await jssip('frank');
  const dave = uas[0]!;
  await frank.stop();
  assert.equal(s.server.registrar.lookup('frank@localhost').length, 0, 'un-REGISTER removed the binding');
  const response = await dave.message('sip:frank@localhost', 'ping 🏓');
  assert.equal(response.status, 202);
  const again = await jssip('frank');
  const got = await again.waitForMessage((m) => m.body === 'ping 🏓');
  assert.equal(got.from, 'sip:dave@localhost');
});

test('with digest authentication required (default algorithms), JsSIP registers, a wrong password is refused, and its MESSAGEs pass', async () => {
  // Parley's default algorithms (SHA-256, then MD5). JsSIP 3.x answers only MD5, and only the last
  // WWW-Authenticate it parsed (its parser keeps one), so this order is the one it can use.
  const secured = await startServer({ auth: { policy: 'required' } });
  try {
    const realm = realmFor(secured.config, 'localhost');
    for (const [user, password] of [['kim', 'kim-pass'], ['lee', 'lee-pass']] as const) {
      await secured.server.store.users.put({ username: user, domain: 'localhost', ...computeHa1(user, realm, password) });
    }
    const wsUrl = `ws://${secured.ws!.host}:${secured.ws!.port}`;
    await assert.rejects(JsSipClient.start({ url: wsUrl, uri: 'sip:kim@localhost', password: 'wrong' }), /registration failed/i);
    assert.equal(secured.server.registrar.lookup('kim@localhost').length, 0);
    const kim = await JsSipClient.start({ url: wsUrl, uri: 'sip:kim@localhost', password: 'kim-pass' });
    clients.push(kim);
    const lee = await TestUA.create({ user: 'lee', server: secured.udp, password: 'lee-pass' });
    uas.push(lee);
    assert.equal((await lee.register()).status, 200);
    const incoming = lee.waitForRequest((m) => m.method === 'MESSAGE');
    assert.deepEqual(await kim.sendMessage('sip:lee@localhost', 'authenticated 🔑'), { ok: true, status: 200 });
    assert.equal((await incoming).body.toString('utf8'), 'authenticated 🔑');
    assert.equal((await lee.message('sip:kim@localhost', 'reply 🔑')).status, 200);
    assert.equal((await kim.waitForMessage((m) => m.body === 'reply 🔑')).from, 'sip:lee@localhost');
    kim.kill();
  } finally {
    await secured.stop();
  }
});
