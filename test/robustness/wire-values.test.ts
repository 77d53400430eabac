// Wire values that become socket addresses: a Via, Contact or Route naming port 0, port 65536 or a
// host that is no host must be refused where it is parsed (400 naming the header) or dropped, and
// never reach a socket call that would throw and take the process down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import { createResponse, parseMessage } from '../../src/sip/index.js';
import { TransportLayer } from '../../src/sip/transport/layer.js';
import { TransportError, formatPeer } from '../../src/sip/transport/types.js';
import { killAll, startParley, type ParleyProcess } from '../support/process.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { bindUdp, closeUdp, lenient, request, sleep, transact } from './wire.js';

describe('a bad socket address in a request does not stop the process', () => {
  let parley: ParleyProcess;
  let socket: UdpSocket;

  before(async () => {
    parley = await startParley();
    socket = await bindUdp();
  });

  after(async () => {
    closeUdp(socket);
    await parley.stop();
    killAll();
  });

  test('an OPTIONS whose Via names port 0 (no rport) is dropped, and the next OPTIONS is answered', async () => {
    const datagram = [
      'OPTIONS sip:localhost SIP/2.0',
      'Via: SIP/2.0/UDP 1.2.3.4:0;branch=z9hG4bK1',
      'Max-Forwards: 70',
      'From: <sip:probe@localhost>;tag=1',
      'To: <sip:localhost>',
      'Call-ID: port-zero@probe',
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    socket.send(Buffer.from(datagram), parley.udp.port, parley.udp.host);
    // Datagrams are read in order: the OPTIONS after it is only answered if the bad one was survived.
    const response = await transact(socket, parley.udp, request('OPTIONS', 'sip:localhost', socket.address().port));
    assert.equal(response?.status, 200, 'a normal OPTIONS after the bad one was not answered');
    assert.ok(parley.alive, `Parley exited:\n${parley.stderr.join('\n')}`);
  });

  const REFUSED: Array<[what: string, method: string, headers: Array<[string, string]>, reason: string]> = [
    ['a second Via with port 0', 'OPTIONS', [['Via', 'SIP/2.0/UDP 1.2.3.4:0;branch=z9hG4bK1']], 'Bad Via port 0'],
    ['a second Via with port 65536', 'OPTIONS', [['Via', 'SIP/2.0/UDP 1.2.3.4:65536;branch=z9hG4bK1']], 'Bad Via port 65536'],
    ['a second Via whose received is a name', 'OPTIONS', [['Via', 'SIP/2.0/UDP 1.2.3.4;received=evil.example.com']], 'Bad Via received'],
    ['a Contact with port 0', 'REGISTER', [['Contact', '<sip:mallory@127.0.0.1:0>']], 'Bad Contact URI: bad port "0"'],
    ['a Contact whose host is no host', 'REGISTER', [['Contact', '<sip:mallory@999.0.0.1:5060>']], 'Bad Contact URI: bad host "999.0.0.1"'],
    ['a Route with port 65536', 'MESSAGE', [['Route', '<sip:127.0.0.1:65536;lr>']], 'Bad Route URI: bad port "65536"'],
    ['a Path with port 0', 'REGISTER', [['Path', '<sip:127.0.0.1:0;lr>'], ['Contact', '<sip:mallory@127.0.0.1:5060>']], 'Bad Path URI: bad port "0"'],
  ];
  for (const [what, method, headers, reason] of REFUSED) {
    test(`${what} gets 400 ${reason}`, async () => {
      const uri = method === 'MESSAGE' ? 'sip:bob@localhost' : 'sip:localhost';
      const to = method === 'REGISTER' ? '<sip:mallory@localhost>' : undefined;
      const response = await transact(socket, parley.udp, request(method, uri, socket.address().port, { to, headers, body: method === 'MESSAGE' ? 'hi' : undefined }));
      assert.deepEqual([response?.status, response?.reason], [400, reason]);
    });
  }

  test('no binding was made of a refused Contact: a MESSAGE to that user finds nobody', async () => {
    const response = await transact(socket, parley.udp, request('MESSAGE', 'sip:mallory@localhost', socket.address().port, { body: 'anyone?' }));
    assert.equal(response?.status, 404, `${response?.status} ${response?.reason}`);
    assert.ok(parley.alive);
  });
});

describe('a request whose top Via names no address', () => {
  let s: TestServer;
  let socket: UdpSocket;

  before(async () => {
    s = await startServer();
    socket = await bindUdp();
  });

  after(async () => {
    closeUdp(socket);
    await s.stop();
  });

  test('is dropped and counted as malformed, with no response sent anywhere', async () => {
    const malformed = s.server.stack.stats.malformed;
    const responsesOut = s.server.stack.stats.responsesOut;
    const bad = request('OPTIONS', 'sip:localhost', socket.address().port);
    bad.set('via', 'SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bKportzero');
    socket.send(bad.toBuffer(), s.udp.port, s.udp.host);
    // Datagrams are read in order: once the next one is answered, the bad one has been dealt with.
    assert.equal((await transact(socket, s.udp, request('OPTIONS', 'sip:localhost', socket.address().port)))?.status, 200);
    assert.equal(s.server.stack.stats.malformed, malformed + 1);
    assert.equal(s.server.stack.stats.responsesOut, responsesOut + 1, 'only the good OPTIONS was answered');
  });
});

describe('the transport layer never throws on send', () => {
  let layer: TransportLayer;

  before(async () => {
    layer = new TransportLayer({
      listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }],
      maxMessageSize: 65535,
      idleTimeout: 60,
      messageTimeout: 10,
      maxSendBuffer: 1 << 20,
      udpReceiveBuffer: 1 << 20,
      udpSendBuffer: 1 << 20,
      maxConnections: 100,
      maxConnectionsPerIp: 10,
      exemptSources: [],
    });
    await layer.start();
  });

  after(() => layer.stop());

  for (const target of [
    { proto: 'udp', host: '127.0.0.1', port: 0 },
    { proto: 'udp', host: '127.0.0.1', port: 65536 },
    { proto: 'udp', host: '', port: 5060 },
    { proto: 'tcp', host: '127.0.0.1', port: 0 },
    { proto: 'tls', host: '127.0.0.1', port: -1 },
  ] as const) {
    test(`a send to ${formatPeer(target)} is a TransportError rejection`, async () => {
      let sent: Promise<void> | undefined;
      assert.doesNotThrow(() => (sent = layer.send(Buffer.from('OPTIONS'), target)));
      await assert.rejects(sent!, TransportError);
    });
  }
});

describe('no header line is injected through a name', () => {
  let s: TestServer;
  let bob: UdpSocket;
  const atBob: Buffer[] = [];

  before(async () => {
    s = await startServer({ imc: { max_rate: 1000, rate_burst: 1000 } as never });
    bob = await bindUdp();
    // Bob answers every request 200 and keeps the bytes as they came.
    bob.on('message', (data: Buffer, from: RemoteInfo) => {
      const message = lenient(data);
      if (!message?.isRequest) return;
      atBob.push(data);
      bob.send(createResponse(message, 200).toBuffer(), from.port, from.address);
    });
    const contact: Array<[string, string]> = [['Contact', `<sip:bob@127.0.0.1:${bob.address().port}>`]];
    const registered = await transact(bob, s.udp, request('REGISTER', 'sip:localhost', bob.address().port, { from: '<sip:bob@localhost>', to: '<sip:bob@localhost>', headers: contact }));
    assert.equal(registered?.status, 200);
  });

  /** The first request to bob holding `text`, waiting up to 5 s for it. */
  async function arrivedAtBob(text: string): Promise<Buffer | undefined> {
    const deadline = Date.now() + 5000;
    let found: Buffer | undefined;
    while (!(found = atBob.find((data) => data.includes(text))) && Date.now() < deadline) await sleep(20);
    return found;
  }

  after(async () => {
    closeUdp(bob);
    await s.stop();
  });

  test('a user part holding %0D%0A, shown as a room nick, reaches the other members inside the From display name', async () => {
    const create = await transact(bob, s.udp, request('MESSAGE', 'sip:chat-manager@localhost', bob.address().port, { from: '<sip:bob@localhost>', body: '#create chat-wire' }));
    assert.equal(create?.status, 200);
    // A command is answered 200 at once and run after: its reply says it was.
    assert.ok(await arrivedAtBob('created room'), 'bob was not told the room was created');
    const mallory = await TestUA.create({ user: 'mallory%0D%0AX-Injected%3A%20yes', server: s.udp });
    try {
      assert.equal((await mallory.message('sip:chat-wire@localhost', '#join')).status, 200);
      assert.ok(await arrivedAtBob('has joined the room'), 'bob was not told mallory joined');
      assert.equal((await mallory.message('sip:chat-wire@localhost', 'hello from mallory')).status, 200);
      const delivered = await arrivedAtBob('hello from mallory');
      assert.ok(delivered, 'the room message did not reach bob');
      const head = delivered.toString('utf8', 0, delivered.indexOf('\r\n\r\n')).split('\r\n');
      assert.deepEqual(head.filter((line) => /^X-Injected/i.test(line) || /[\r\n]/.test(line)), [], head.join('\n'));
      const message = parseMessage(delivered);
      // Shown as its URI writes it: a nick holds no line break.
      assert.equal(message.from.displayName, 'mallory%0D%0AX-Injected%3A%20yes');
      assert.equal(message.body.toString(), '<mallory%0D%0AX-Injected%3A%20yes> hello from mallory');
      assert.equal(message.from.uri, 'sip:chat-wire@localhost');
    } finally {
      mallory.close();
    }
  });
});
