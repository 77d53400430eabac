// Outbound (RFC 5626) and Path (RFC 3327): a device's flows (reg-id) are the ways to reach it, one
// at a time, a closed one dropped for the next; an edge proxy's Path is the route to its devices;
// keep-alives are answered (STUN over UDP, a CRLF pong over WebSocket).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer as createTcpServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { createResponse, type SipMessage } from '../../src/sip/index.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { StreamUA } from '../support/stream-ua.js';
import { eventually } from '../support/eventually.js';
import { newInstance, registerDevice } from './devices.js';

let s: TestServer;
const agent = udpAgents();
const streams: StreamUA[] = [];
before(async () => {
  s = await startServer();
});
after(async () => {
  for (const ua of streams) ua.close();
  await s.stop();
});

async function tcpFlow(user: string): Promise<StreamUA> {
  const ua = await StreamUA.connect({ proto: 'tcp', user, server: s.tcp });
  streams.push(ua);
  return ua;
}

const bodies = (ua: StreamUA) => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());

test('two flows of one device: Require: outbound, a MESSAGE goes over one flow, and over the other once the first closes', async () => {
  const first = await tcpFlow('frank');
  const second = await tcpFlow('frank');
  const bob = await agent('bob', s.udp);
  const instance = newInstance();
  const ok = await registerDevice(first, { instance, regId: 1, uriParams: ';ob', supported: 'path, outbound' });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.getAll('require'), ['outbound']);
  assert.deepEqual(ok.getAll('supported'), ['path', 'outbound']);
  assert.equal((await registerDevice(second, { instance, regId: 2, uriParams: ';ob', supported: 'path, outbound' })).status, 200);
  assert.equal(s.server.registrar.lookup('frank@localhost').length, 2);

  const overFirst = first.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message('sip:frank@localhost', 'one')).status, 200);
  await overFirst;

  first.close();
  await eventually(() => s.server.registrar.lookup('frank@localhost').length === 1, 'the closed flow dropped');
  const overSecond = second.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message('sip:frank@localhost', 'two')).status, 200);
  await overSecond;
  // TCP keeps order: had "one" gone over this flow too, it would have come first.
  assert.deepEqual(bodies(second), ['two']);
});

test('a device answers over one flow: a 486 there is its answer, a 503 passes the request on to its next flow', async () => {
  const firstFlow = await agent('hana', s.udp);
  const secondFlow = await agent('hana', s.udp);
  const bob = await agent('bob', s.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(firstFlow, { instance, regId: 1, supported: 'outbound' })).status, 200);
  assert.equal((await registerDevice(secondFlow, { instance, regId: 2, supported: 'outbound' })).status, 200);
  firstFlow.answer = 486;
  assert.equal((await bob.message('sip:hana@localhost', 'busy?')).status, 486);
  firstFlow.answer = 503;
  const overSecond = secondFlow.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message('sip:hana@localhost', 'still there?')).status, 200);
  assert.equal((await overSecond).body.toString(), 'still there?');
});

test('a TCP contact with ;ob is dropped when its connection closes, not dialled again', async () => {
  const phone = await tcpFlow('ivan');
  const ok = await phone.send(phone.build('REGISTER', 'sip:localhost', { to: `<${phone.aor}>`, headers: [{ name: 'contact', value: `<${phone.contact};ob>` }] }));
  assert.equal(ok.status, 200);
  phone.close();
  await eventually(() => s.server.registrar.lookup('ivan@localhost').length === 0, 'the binding of the closed connection dropped');
});

test('a closing TCP connection drops the ;ob bindings of every AOR it carried, and none that moved to another connection', async () => {
  const shared = await tcpFlow('lena');
  const moving = await tcpFlow('mona');
  const registerOn = (ua: StreamUA, user: string, contact: string) =>
    ua.send(ua.build('REGISTER', 'sip:localhost', { to: `<sip:${user}@localhost>`, headers: [{ name: 'contact', value: `<${contact};ob>` }] }));
  assert.equal((await registerOn(shared, 'lena', shared.contact)).status, 200);
  assert.equal((await registerOn(shared, 'nora', shared.contact)).status, 200);
  // mona's binding first lives on the shared connection, then the same contact registers again over her own.
  assert.equal((await registerOn(shared, 'mona', moving.contact)).status, 200);
  assert.equal((await registerOn(moving, 'mona', moving.contact)).status, 200);
  shared.close();
  await eventually(
    () => s.server.registrar.lookup('lena@localhost').length === 0 && s.server.registrar.lookup('nora@localhost').length === 0,
    'the bindings of the closed connection dropped',
  );
  assert.equal(s.server.registrar.lookup('mona@localhost').length, 1);
  moving.close();
  await eventually(() => s.server.registrar.lookup('mona@localhost').length === 0, 'the moved binding dropped with its own connection');
});

test('an edge proxy in front: its Path is echoed and stored, and requests for the device take it as their route', async () => {
  const edge = await agent('edge', s.udp);
  const bob = await agent('bob', s.udp);
  const path = `<sip:edge@127.0.0.1:${edge.localPort};lr;ob>`;
  const deviceContact = 'sip:gina@127.0.0.1:9;ob';
  const register = (regPath: string) =>
    edge.send(
      edge.build('REGISTER', 'sip:localhost', {
        to: '<sip:gina@localhost>',
        headers: [
          { name: 'via', value: 'SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKdevice;rport' },
          { name: 'path', value: regPath },
          { name: 'supported', value: 'path, outbound' },
          { name: 'contact', value: `<${deviceContact}>;+sip.instance="<${newInstance()}>";reg-id=1` },
        ],
      }),
    );
  const refused = await register(`<sip:edge@127.0.0.1:${edge.localPort};lr>`);
  assert.equal(refused.status, 439);
  assert.equal(refused.reason, 'First Hop Lacks Outbound Support');

  const ok = await register(path);
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.getAll('path'), [path]);
  assert.deepEqual(ok.getAll('require'), ['outbound']);
  const atEdge = edge.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message('sip:gina@localhost', 'through the edge')).status, 200);
  const forwarded = await atEdge;
  assert.equal(forwarded.uri, deviceContact);
  assert.deepEqual(forwarded.getAll('route'), [path]);
});

test('behind a TCP edge proxy whose connection closed, requests go where its Path says it listens', async () => {
  const listener = createTcpServer((socket) => {
    const framer = new StreamFramer(1 << 16);
    socket.on('data', (chunk: Buffer) => {
      for (const result of framer.push(chunk)) {
        if (!('message' in result) || !result.message.isRequest) continue;
        atEdge.push(result.message);
        socket.write(createResponse(result.message, 200).toBuffer());
      }
    });
  });
  const atEdge: SipMessage[] = [];
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  after(() => listener.close());
  const edgePort = (listener.address() as { port: number }).port;
  const edge = await tcpFlow('edge');
  const bob = await agent('bob', s.udp);
  const path = `<sip:edge@127.0.0.1:${edgePort};transport=tcp;lr>`;
  const ok = await edge.send(
    edge.build('REGISTER', 'sip:localhost', {
      to: '<sip:hugo@localhost>',
      headers: [
        { name: 'via', value: 'SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKhugo' },
        { name: 'path', value: path },
        { name: 'contact', value: '<sip:hugo@127.0.0.1:9;transport=tcp>' },
      ],
    }),
  );
  assert.equal(ok.status, 200);
  edge.close();
  await eventually(() => !s.server.transports.isConnected(s.server.registrar.lookup('hugo@localhost')[0]!.connectionId!), 'the edge\'s connection closed');
  assert.equal((await bob.message('sip:hugo@localhost', 'via the edge again')).status, 200);
  assert.equal(atEdge[0]?.uri, 'sip:hugo@127.0.0.1:9;transport=tcp');
  assert.deepEqual(atEdge[0]?.getAll('route'), [path]);
});

test('a STUN binding request on the SIP UDP port gets its XOR-MAPPED-ADDRESS', { timeout: 5000 }, async () => {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    const transaction = randomBytes(12);
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0);
    request.writeUInt32BE(0x2112a442, 4);
    transaction.copy(request, 8);
    const answered = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    socket.send(request, s.udp.port, s.udp.host);
    const response = await answered;
    assert.equal(response.readUInt16BE(0), 0x0101, 'binding success response');
    assert.deepEqual(response.subarray(8, 20), transaction);
    assert.equal(response.readUInt16BE(20), 0x0020, 'XOR-MAPPED-ADDRESS');
    assert.equal(response.readUInt16BE(26) ^ 0x2112, socket.address().port);
    assert.deepEqual([...response.subarray(28, 32)].map((byte, i) => byte ^ [0x21, 0x12, 0xa4, 0x42][i]!), [127, 0, 0, 1]);
  } finally {
    socket.close();
  }
});

test('a WebSocket keep-alive ping (double CRLF) gets a single CRLF pong', { timeout: 5000 }, async () => {
  const ws = new WebSocket(`ws://${s.ws!.host}:${s.ws!.port}`, 'sip');
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  try {
    const pong = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString())));
    ws.send('\r\n\r\n');
    assert.equal(await pong, '\r\n');
  } finally {
    ws.terminate();
  }
});
