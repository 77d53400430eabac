// Wire values that become socket addresses: a Via, Contact or Route naming port 0, port 65536 or a
// host that is no host must be refused where it is parsed (400 naming the header) or dropped, and
// never reach a socket call that would throw and take the process down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket as UdpSocket } from 'node:dgram';
import { TransportLayer } from '../../src/sip/transport/layer.js';
import { TransportError, formatPeer } from '../../src/sip/transport/types.js';
import { killAll, startParley, type ParleyProcess } from '../support/process.js';
import { bindUdp, closeUdp, request, transact } from './wire.js';

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

describe('the transport layer never throws on send', () => {
  let layer: TransportLayer;

  before(async () => {
    layer = new TransportLayer({ listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }], maxMessageSize: 65535, idleTimeout: 60 });
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
