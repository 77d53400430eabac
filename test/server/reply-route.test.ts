// A `reply` route answers a request on the spot, from the request's own header lines: what the
// sender reads is RFC 3261 §8.2.6's response, the same bytes again for a retransmission. Like a
// `reject` route it answers statelessly (§8.2.7): nothing is kept, the To tag is made from the request.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from '../support/server.js';

let s: TestServer;
let socket: Socket;
let port: number;

before(async () => {
  s = await startServer({
    routes: [
      { method: ['MESSAGE'], user: 'echo-bot', handler: 'reply' },
      { user: 'closed', handler: 'reject', status: 480, reason: 'Closed Today' },
      { handler: 'relay' },
    ],
  } as never);
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
  const match = /^To: <sip:echo-bot@localhost>;tag=([0-9a-z]+)\r$/m.exec(response);
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

/** A MESSAGE from ann to `user` over this test's socket: a new transaction for each branch. */
function messageTo(user: string, branch: string, callId: string, cseq = 1): string[] {
  return [
    `MESSAGE sip:${user}@localhost SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=${branch};rport`,
    'Max-Forwards: 70',
    'From: <sip:ann@localhost>;tag=from-2',
    `To: <sip:${user}@localhost>`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} MESSAGE`,
    'Content-Length: 0',
    '',
    '',
  ];
}

function toTag(response: string): string | undefined {
  return /^To: .*;tag=([^;\r]+)\r$/m.exec(response)?.[1];
}

test('a reply route keeps no transaction: a retransmission is answered again with the same bytes, and counted as a stateless answer', async () => {
  const stats = s.server.stack.stats;
  const before = { kept: stats.serverTransactions, absorbed: stats.retransmissionsAbsorbed, stateless: stats.answeredStatelessly };
  const request = messageTo('echo-bot', 'z9hG4bK-stateless-1', 'stateless-1@test');
  const first = await exchange(request);
  assert.equal(await exchange(request), first);
  assert.match(first, /^SIP\/2\.0 200 OK\r\n/);
  assert.deepEqual(
    { kept: stats.serverTransactions, absorbed: stats.retransmissionsAbsorbed, stateless: stats.answeredStatelessly },
    { ...before, stateless: before.stateless + 2 },
  );
});

test('different requests to a reply route get different To tags', async () => {
  const tags = [
    toTag(await exchange(messageTo('echo-bot', 'z9hG4bK-tags-1', 'tags-1@test'))),
    toTag(await exchange(messageTo('echo-bot', 'z9hG4bK-tags-2', 'tags-1@test', 2))),
    toTag(await exchange(messageTo('echo-bot', 'z9hG4bK-tags-3', 'tags-3@test'))),
  ];
  assert.ok(tags.every((tag) => tag !== undefined), tags.join(' '));
  assert.equal(new Set(tags).size, 3, tags.join(' '));
});

test('a reject route answers its status statelessly too: a retransmission gets the same bytes', async () => {
  const stateless = s.server.stack.stats.answeredStatelessly;
  const request = messageTo('closed', 'z9hG4bK-closed-1', 'closed-1@test');
  const first = await exchange(request);
  assert.match(first, /^SIP\/2\.0 480 Closed Today\r\n/);
  assert.equal(await exchange(request), first);
  assert.equal(s.server.stack.stats.answeredStatelessly, stateless + 2);
});
