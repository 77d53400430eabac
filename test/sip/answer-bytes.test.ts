// The bytes of a stateless answer, pinned: a 200 or a reject written from the request's own header
// lines (RFC 3261 §8.2.6) is the same, byte for byte, however it is built, To tag included (§8.2.7:
// a retransmission gets the very same answer, across versions too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { FakeClock, SipStack, TimerQueue, parseMessage, type IncomingRequest, type Peer, type ReplyOptions } from '../../src/sip/index.js';
import type { TransportLayer } from '../../src/sip/transport/layer.js';

interface AnswerCase {
  title: string;
  /** The answer's lines, CRLF-joined on the wire. */
  answer: string[];
  request: string;
  status: number;
  reason?: string;
  source?: { host: string; port: number };
  options?: ReplyOptions;
}

const lines = (...l: string[]) => l.join('\r\n');

const CASES: AnswerCase[] = [
  { title: 'a usual MESSAGE: one Via asking for rport, every line as most clients write it',
    answer: [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-r-1;rport=5070;received=127.0.0.2',
      'From: <sip:alice@localhost>;tag=r-1',
      'To: <sip:bob@localhost>;tag=cd172937c1414885',
      'Call-ID: r-1@bench',
      'CSeq: 1 MESSAGE',
      'Server: Parley test',
      'Content-Length: 0',
      '',
      '',
    ], status: 200, request: lines(
    'MESSAGE sip:bob@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-r-1;rport', 'Max-Forwards: 70',
    'From: <sip:alice@localhost>;tag=r-1', 'To: <sip:bob@localhost>', 'Call-ID: r-1@bench', 'CSeq: 1 MESSAGE', 'User-Agent: hotpath-bench',
    'Content-Type: text/plain', 'Content-Length: 14', '', 'Hello number 1') },
  { title: 'Vias on several lines and in a list, compact names, odd case, folding, blanks around values',
    answer: [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-two;rport=5070;received=127.0.0.2',
      'Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKsecond',
      'Via: SIP/2.0/TCP 192.0.2.8;branch=z9hG4bKthird',
      'From: "Ann Sender" <sip:ann@localhost>;tag=from-1',
      'To: <sip:bob@localhost>;tag=95c4a05dc27091f3',
      'Call-ID: two@test',
      'CSeq: 7 MESSAGE',
      'Server: Parley test',
      'Content-Length: 0',
      '',
      '',
    ], status: 200, request: lines(
    'MESSAGE sip:bob@localhost SIP/2.0', 'v: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-two;rport , SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKsecond',
    'Max-Forwards: 70', 'VIA: SIP/2.0/TCP 192.0.2.8;branch=z9hG4bKthird', 'f: "Ann Sender" <sip:ann@localhost>;tag=from-1', 'To:', ' <sip:bob@localhost>',
    'i: two@test', 'CSeq:\t7 MESSAGE  ', 'Content-Type: text/plain', 'Content-Length: 5', '', 'Hello') },
  { title: 'a To that has a tag already, headers in another order, a Via without rport from another address',
    answer: [
      'SIP/2.0 200 OK',
      'To: <sip:bob@localhost>;tag=dialog',
      'CSeq: 3 MESSAGE',
      'Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-three;received=192.0.2.99',
      'Call-ID: three@test',
      'From: <sip:alice@localhost>;tag=a3',
      'Server: Parley test',
      'Content-Length: 0',
      '',
      '',
    ], status: 200,
    source: { host: '192.0.2.99', port: 6000 }, request: lines(
    'MESSAGE sip:bob@localhost SIP/2.0', 'To: <sip:bob@localhost>;tag=dialog', 'CSeq: 3 MESSAGE', 'Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-three',
    'Call-ID: three@test', 'Max-Forwards: 69', 'From: <sip:alice@localhost>;tag=a3', 'Content-Length: 0', '', '') },
  { title: 'lines ended by LF alone',
    answer: [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-lf;rport=5070;received=127.0.0.2',
      'From: <sip:alice@localhost>;tag=lf',
      'To: <sip:bob@localhost>;tag=0076f9148b0121f6',
      'Call-ID: lf@test',
      'CSeq: 2 MESSAGE',
      'Server: Parley test',
      'Content-Length: 0',
      '',
      '',
    ], status: 200, request: [
    'MESSAGE sip:bob@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-lf;rport', 'From: <sip:alice@localhost>;tag=lf',
    'To: <sip:bob@localhost>', 'Call-ID: lf@test', 'CSeq: 2 MESSAGE', 'Max-Forwards: 70', 'Content-Length: 2', '', 'hi'].join('\n') },
  { title: 'UTF-8 in the From display name and the To URI',
    answer: [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-utf;rport=5070;received=127.0.0.2',
      'From: "Zoë Ünal" <sip:zoe@localhost>;tag=u8',
      'To: "Bøb" <sip:bob@localhost>;tag=61bbe2acb98c927e',
      'Call-ID: utf@test',
      'CSeq: 5 MESSAGE',
      'Server: Parley test',
      'Content-Length: 0',
      '',
      '',
    ], status: 200, request: lines(
    'MESSAGE sip:bob@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-utf;rport', 'From: "Zoë Ünal" <sip:zoe@localhost>;tag=u8',
    'To: "Bøb" <sip:bob@localhost>', 'Call-ID: utf@test', 'CSeq: 5 MESSAGE', 'Content-Length: 0', '', '') },
  { title: 'a control character in a copied value, replaced by a space',
    answer: [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-ctl;rport=5070;received=127.0.0.2',
      'From: "A nn" <sip:ann@localhost>;tag=c1',
      'To: <sip:bob@localhost>;tag=a8a05dbccc512dae',
      'Call-ID: ctl @test',
      'CSeq: 5 MESSAGE',
      'Server: Parley test',
      'Content-Length: 0',
      '',
      '',
    ], status: 200, request: lines(
    'MESSAGE sip:bob@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-ctl;rport', 'From: "A\x01nn" <sip:ann@localhost>;tag=c1',
    'To: <sip:bob@localhost>', 'Call-ID: ctl\x7f@test', 'CSeq: 5 MESSAGE', 'Content-Length: 0', '', '') },
  { title: 'a reject with a reason of its own, UTF-8 in it: no Server line',
    answer: [
      'SIP/2.0 480 Fermé aujourd’hui',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-rej;rport=5070;received=127.0.0.2',
      'From: <sip:alice@localhost>;tag=rj',
      'To: <sip:closed@localhost>;tag=a31bf9a84a2098c8',
      'Call-ID: rej@test',
      'CSeq: 9 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ], status: 480, reason: 'Fermé aujourd’hui', request: lines(
    'OPTIONS sip:closed@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-rej;rport=5070', 'From: <sip:alice@localhost>;tag=rj',
    'To: <sip:closed@localhost>', 'Call-ID: rej@test', 'CSeq: 9 OPTIONS', 'Content-Length: 0', '', '') },
  { title: 'an RFC 2543 request (no branch cookie) with the To line last but Content-Length',
    answer: [
      'SIP/2.0 403 Forbidden',
      'Via: SIP/2.0/UDP 127.0.0.2:5070',
      'From: <sip:alice@localhost>;tag=old',
      'Call-ID: old@test',
      'CSeq: 4 MESSAGE',
      'To: sip:bob@localhost;tag=e8b51ba0a7f2b616',
      'Content-Length: 0',
      '',
      '',
    ], status: 403, request: lines(
    'MESSAGE sip:bob@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070', 'From: <sip:alice@localhost>;tag=old', 'Call-ID: old@test',
    'CSeq: 4 MESSAGE', 'To: sip:bob@localhost', 'Content-Length: 0', '', '') },
  { title: 'a 503 with a header of its own',
    answer: [
      'SIP/2.0 503 Service Unavailable (busy)',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-busy;rport=5070;received=127.0.0.2',
      'From: <sip:alice@localhost>;tag=b',
      'To: <sip:bob@localhost>;tag=125ad9259dee84d1',
      'Call-ID: busy@test',
      'CSeq: 1 MESSAGE',
      'Retry-After: 5',
      'Content-Length: 0',
      '',
      '',
    ], status: 503, reason: 'Service Unavailable (busy)', options: { headers: [{ name: 'retry-after', value: '5' }] }, request: lines(
    'MESSAGE sip:bob@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-busy;rport', 'From: <sip:alice@localhost>;tag=b',
    'To: <sip:bob@localhost>', 'Call-ID: busy@test', 'CSeq: 1 MESSAGE', 'Content-Length: 0', '', '') },
  { title: 'a 200 with a body',
    answer: [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-body;rport=5070;received=127.0.0.2',
      'From: <sip:alice@localhost>;tag=p',
      'To: <sip:bob@localhost>;tag=134c54a4f809f088',
      'Call-ID: body@test',
      'CSeq: 1 OPTIONS',
      'Server: Parley test',
      'Content-Type: text/plain',
      'Content-Length: 4',
      '',
      'pong',
    ], status: 200, options: { body: 'pong', contentType: 'text/plain' }, request: lines(
    'OPTIONS sip:bob@localhost SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-body;rport', 'From: <sip:alice@localhost>;tag=p',
    'To: <sip:bob@localhost>', 'Call-ID: body@test', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', '') },
];

/** A stack on a transport that keeps the bytes it is given; answer(c) sends c's request and gives the bytes of its stateless answer. */
function setup() {
  const sent: Buffer[] = [];
  const transport = Object.assign(new EventEmitter(), {
    bound: [{ proto: 'udp', host: '127.0.0.1', port: 5060 }],
    sendOrReport: (bytes: Buffer) => sent.push(bytes),
    local: () => undefined,
    has: () => false,
  });
  const stack = new SipStack(transport as unknown as TransportLayer, new TimerQueue(new FakeClock()), {
    t1: 500, t2: 4000, mtu: 1300, userAgent: 'Parley test', maxTransactions: 100,
  });
  let current: AnswerCase | undefined;
  stack.on('request', (request: IncomingRequest) => request.reply(current!.status, current!.reason, { ...current!.options, stateless: true }));
  return (c: AnswerCase): Buffer => {
    current = c;
    const source: Peer = { proto: 'udp', ...(c.source ?? { host: '127.0.0.2', port: 5070 }) };
    transport.emit('message', parseMessage(Buffer.from(c.request)), source);
    return sent.at(-1)!;
  };
}

for (const c of CASES) {
  test(`stateless answer bytes: ${c.title}`, () => {
    const answer = setup();
    const first = answer(c);
    assert.equal(first.toString('utf8'), c.answer.join('\r\n'));
    assert.deepEqual(answer(c), first, 'a retransmission gets the same bytes');
  });
}
