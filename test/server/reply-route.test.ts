// A `reply` route answers a request on the spot, from the request's own header lines: what the
// sender reads is RFC 3261 §8.2.6's response, the same bytes again for a retransmission.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from '../support/server.js';

let s: TestServer;
let socket: Socket;
let port: number;

before(async () => {
  s = await startServer({ routes: [{ method: ['MESSAGE'], user: 'echo-bot', handler: 'reply' }, { handler: 'relay' }] } as never);
  socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  port = socket.address().port;
});
after(async () => {
  socket.close();
  await s.stop();
});

/** Sends `lines` as one datagram and resolves with the next datagram received, as text. */
function exchange(lines: string[]): Promise<string> {
  const answer = new Promise<string>((resolve) => socket.once('message', (data) => resolve(data.toString('utf8'))));
  socket.send(lines.join('\r\n'), s.udp.port, s.udp.host);
  return answer;
}

test('a MESSAGE to a reply route gets 200 with its Vias in order, the top one stamped (on a line of its own), From, a tagged To, Call-ID and CSeq copied', async () => {
  const request = [
    'MESSAGE sip:echo-bot@localhost SIP/2.0',
    `v: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-reply-1;rport , SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKsecond`,
    'Max-Forwards: 70',
    'VIA: SIP/2.0/TCP 192.0.2.8;branch=z9hG4bKthird',
    'f: "Ann Sender" <sip:ann@localhost>;tag=from-1',
    'To:',
    ' <sip:echo-bot@localhost>',
    'i: reply-1@test',
    'CSeq: 7 MESSAGE',
    'Content-Type: text/plain',
    'Content-Length: 5',
    '',
    'Hello',
  ];
  const response = await exchange(request);
  const match = /^To: <sip:echo-bot@localhost>;tag=([0-9a-f]{10})\r$/m.exec(response);
  assert.ok(match, response);
  assert.equal(
    response,
    [
      'SIP/2.0 200 OK',
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-reply-1;rport=${port};received=127.0.0.1`,
      'Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKsecond',
      'Via: SIP/2.0/TCP 192.0.2.8;branch=z9hG4bKthird',
      'From: "Ann Sender" <sip:ann@localhost>;tag=from-1',
      `To: <sip:echo-bot@localhost>;tag=${match[1]}`,
      'Call-ID: reply-1@test',
      'CSeq: 7 MESSAGE',
      `Server: ${s.config.sip.user_agent}`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  assert.equal(await exchange(request), response, 'a retransmission gets the same response, same To tag');
});
