// Non-INVITE transactions (RFC 3261 §17) on a fake clock and a fake transport that records what is sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { FakeClock, SipStack, TimerQueue, parseMessage, createResponse, type Peer, type IncomingRequest, type SipMessage } from '../../src/sip/index.js';
import type { TransportLayer } from '../../src/sip/transport/layer.js';
import { paramOf, parseVia } from '../../src/sip/headers.js';

class FakeTransport extends EventEmitter {
  sent: Array<{ message: SipMessage; target: Peer; at: number }> = [];
  bound = [{ proto: 'udp', host: '127.0.0.1', port: 5060 }, { proto: 'tcp', host: '127.0.0.1', port: 5060 }];
  constructor(private readonly clock: FakeClock) {
    super();
  }
  async send(data: Buffer, target: Peer): Promise<void> {
    this.sent.push({ message: parseMessage(data), target, at: this.clock.now() });
  }
  sendOrReport(data: Buffer, target: Peer, onFailure: (error: Error) => void): void {
    this.send(data, target).catch(onFailure);
  }
  local(proto: string) {
    return this.bound.find((b) => b.proto === proto);
  }
  has(proto: string) {
    return this.bound.some((b) => b.proto === proto);
  }
}

function setup(maxTransactions = 1000) {
  const clock = new FakeClock();
  const timers = new TimerQueue(clock);
  const transport = new FakeTransport(clock);
  const stack = new SipStack(transport as unknown as TransportLayer, timers, { t1: 500, t2: 4000, mtu: 1300, userAgent: 'test', maxTransactions });
  return { clock, timers, transport, stack };
}

const peer: Peer = { proto: 'udp', host: '127.0.0.2', port: 5070 };

function incoming(branch = 'z9hG4bKabc', proto = 'UDP') {
  return parseMessage(
    Buffer.from(
      `MESSAGE sip:bob@localhost SIP/2.0\r\nVia: SIP/2.0/${proto} 127.0.0.2:5070;branch=${branch}\r\nMax-Forwards: 70\r\n` +
        'From: <sip:alice@localhost>;tag=1\r\nTo: <sip:bob@localhost>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi',
    ),
  );
}

test('client transaction over UDP retransmits at T1, 2T1, 4T1 up to T2 and times out with 408 at 64·T1', async () => {
  const { clock, timers, transport, stack } = setup();
  const request = stack.createRequest({ method: 'MESSAGE', uri: 'sip:x@127.0.0.2:5070', from: '<sip:a@localhost>', to: '<sip:x@localhost>', body: Buffer.from('hi') });
  const result = stack.request(request, peer);
  clock.advance(64 * 500 + 10, timers);
  const response = await result;
  assert.equal(response.status, 408);
  const gaps = transport.sent.slice(1).map((s, i) => s.at - transport.sent[i]!.at);
  assert.deepEqual(gaps.slice(0, 5), [500, 1000, 2000, 4000, 4000]);
  assert.equal(new Set(transport.sent.map((s) => s.message.via.branch)).size, 1, 'retransmissions keep the branch');
  const sends = transport.sent.length;
  clock.advance(10_000, timers);
  assert.equal(transport.sent.length, sends, 'nothing sent after Timer F');
});

test('client transaction stops retransmitting on a final response and resolves with it', async () => {
  const { clock, timers, transport, stack } = setup();
  const request = stack.createRequest({ method: 'MESSAGE', uri: 'sip:x@127.0.0.2:5070', from: '<sip:a@localhost>', to: '<sip:x@localhost>' });
  const result = stack.request(request, peer);
  clock.advance(600, timers);
  const sent = transport.sent[0]!.message;
  transport.emit('message', createResponse(sent, 100), peer);
  transport.emit('message', createResponse(sent, 202), peer);
  assert.equal((await result).status, 202);
  const count = transport.sent.length;
  clock.advance(10_000, timers);
  assert.equal(transport.sent.length, count);
});

test('server transaction: a retransmission is absorbed before the answer and answered again after it', () => {
  const { clock, timers, transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r) => seen.push(r));
  transport.emit('message', incoming(), peer);
  transport.emit('message', incoming(), peer);
  assert.equal(seen.length, 1, 'processed once');
  assert.equal(transport.sent.length, 0, 'nothing to resend yet');
  seen[0]!.reply(200);
  transport.emit('message', incoming(), peer);
  assert.equal(seen.length, 1);
  assert.equal(transport.sent.length, 2);
  assert.equal(transport.sent[1]!.message.status, 200);
  assert.equal(transport.sent[1]!.message.get('to'), transport.sent[0]!.message.get('to'), 'the same response, same To tag');
  clock.advance(64 * 500 + 20, timers);
  transport.emit('message', incoming(), peer);
  assert.equal(seen.length, 2, 'after Timer J the transaction is gone');
});

test('server transaction: every retransmission until Timer J gets the very bytes of the answer, and the sweep lets it go', () => {
  const { clock, timers, transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r) => {
    seen.push(r);
    r.reply(202, 'Accepted', { headers: [{ name: 'expires', value: '30' }], body: 'ok' });
  });
  transport.emit('message', incoming('z9hG4bKsame'), peer);
  clock.advance(64 * 500 - 500, timers);
  transport.emit('message', incoming('z9hG4bKsame'), peer);
  assert.deepEqual({ handled: seen.length, sent: transport.sent.length, kept: stack.stats.serverTransactions }, { handled: 1, sent: 2, kept: 1 });
  assert.equal(transport.sent[1]!.message.toString(), transport.sent[0]!.message.toString());
  assert.deepEqual(transport.sent[1]!.target, transport.sent[0]!.target);
  clock.advance(500 + 500, timers);
  assert.equal(stack.stats.serverTransactions, 0, 'let go within T1 past Timer J');
  transport.emit('message', incoming('z9hG4bKsame'), peer);
  assert.equal(seen.length, 2);
});

/**
 * A request with `branch` handled once, its retransmission absorbed while its handler works and
 * answered again with its 200 once replied.
 */
function assertMatchedWhileKeptAndAnswered(branch: string, onRequest: (request: IncomingRequest) => void = () => {}): void {
  const { transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r) => {
    seen.push(r);
    onRequest(r);
  });
  transport.emit('message', incoming(branch), peer);
  transport.emit('message', incoming(branch), peer);
  assert.equal(seen.length, 1, 'the retransmission is absorbed');
  seen[0]!.reply(200);
  transport.emit('message', incoming(branch), peer);
  assert.deepEqual({ handled: seen.length, sent: transport.sent.map((s) => s.message.status) }, { handled: 1, sent: [200, 200] });
}

test('a request kept while its handler works is matched on its Via as it came, whatever the handler puts on top of its message', () => {
  assertMatchedWhileKeptAndAnswered('z9hG4bKkept', (r) => {
    // As a proxy would before forwarding: a Via of its own on top of the request.
    r.message.prepend('via', 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKown');
  });
});

test('a request without an RFC 3261 branch is matched on its dialog fields, with nothing kept before it came as with transactions kept', () => {
  assertMatchedWhileKeptAndAnswered('old2543');
});

test('an INVITE refused is answered again for its retransmission, and its ACK is taken without an answer nor a handler', () => {
  const { transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r) => {
    seen.push(r);
    r.reply(405, 'Method Not Allowed');
  });
  const invite = () => parseMessage(Buffer.from(incoming('z9hG4bKinv').toString().replaceAll('MESSAGE', 'INVITE')));
  transport.emit('message', invite(), peer);
  transport.emit('message', invite(), peer);
  assert.equal(seen.length, 1);
  assert.equal(transport.sent.length, 2);
  assert.equal(transport.sent[1]!.message.toString(), transport.sent[0]!.message.toString());
  const ack = parseMessage(
    Buffer.from(
      'ACK sip:bob@localhost SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKinv\r\nMax-Forwards: 70\r\nFrom: <sip:alice@localhost>;tag=1\r\n' +
        `To: ${transport.sent[0]!.message.get('to')}\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`,
    ),
  );
  transport.emit('message', ack, peer);
  assert.deepEqual({ handled: seen.length, sent: transport.sent.length, kept: stack.stats.serverTransactions }, { handled: 1, sent: 2, kept: 1 });
});

test('server transaction over a reliable transport is dropped as soon as it is answered (Timer J = 0)', () => {
  const { transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r) => seen.push(r));
  const tcpPeer: Peer = { proto: 'tcp', host: '127.0.0.2', port: 40000, connectionId: 'c1' };
  transport.emit('message', incoming('z9hG4bKtcp', 'TCP'), tcpPeer);
  seen[0]!.reply(200);
  assert.equal(transport.sent[0]!.target.connectionId, 'c1', 'response goes back on the same connection');
  assert.equal(stack.stats.serverTransactions, 0);
});

test('responses follow rport and received (RFC 3581)', () => {
  const { transport, stack } = setup();
  stack.on('request', (r: IncomingRequest) => r.reply(200));
  const natted: Peer = { proto: 'udp', host: '10.0.0.9', port: 33333 };
  const message = incoming('z9hG4bKnat');
  message.set('via', 'SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKnat;rport');
  transport.emit('message', message, natted);
  const sent = transport.sent[0]!;
  assert.deepEqual({ host: sent.target.host, port: sent.target.port }, { host: '10.0.0.9', port: 33333 });
  assert.match(sent.message.get('via')!, /received=10\.0\.0\.9/);
  assert.match(sent.message.get('via')!, /rport=33333/);
});

test('the stamped Via keeps the sender\'s parameters in their order: rport filled in where it stands, received last', () => {
  const { transport, stack } = setup();
  // What the handler reads of the top Via is what it was stamped with, parameter by parameter and as a whole.
  const read: Array<[received: unknown, rport: unknown, params: unknown]> = [];
  stack.on('request', (r: IncomingRequest) => {
    const via = r.message.via;
    read.push([paramOf(via, 'received'), paramOf(via, 'rport'), [...via.params]]);
    r.reply(200);
  });
  const natted: Peer = { proto: 'udp', host: '10.0.0.9', port: 33333 };
  const cases = [
    ['SIP/2.0/UDP 192.168.1.5:5060;rport;branch=z9hG4bKa1', 'SIP/2.0/UDP 192.168.1.5:5060;rport=33333;branch=z9hG4bKa1;received=10.0.0.9'],
    ['SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKa2;RPort', 'SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKa2;rport=33333;received=10.0.0.9'],
    ['SIP/2.0/UDP 192.168.1.5;branch=z9hG4bKa3', 'SIP/2.0/UDP 192.168.1.5;branch=z9hG4bKa3;received=10.0.0.9'],
    ['SIP/2.0/UDP 192.168.1.5;received=192.0.2.1;branch=z9hG4bKa4;rport', 'SIP/2.0/UDP 192.168.1.5;received=10.0.0.9;branch=z9hG4bKa4;rport=33333'],
    ['SIP/2.0/UDP 192.168.1.5;branch=z9hG4bKa5;rport, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb5', 'SIP/2.0/UDP 192.168.1.5;branch=z9hG4bKa5;rport=33333;received=10.0.0.9'],
  ];
  for (const [sent, stamped] of cases) {
    const message = incoming('z9hG4bKunused');
    message.set('via', sent!);
    transport.emit('message', message, natted);
    assert.equal(transport.sent.at(-1)!.message.get('via'), stamped);
    const expected = parseVia(stamped!).params;
    assert.deepEqual(read.at(-1), [expected.get('received'), expected.get('rport'), [...expected]]);
  }
  assert.equal(transport.sent.length, cases.length);
});

test('a request over the MTU goes over TCP (RFC 3261 §18.1.1)', async () => {
  const { transport, stack } = setup();
  const request = stack.createRequest({ method: 'MESSAGE', uri: 'sip:x@127.0.0.2:5070', from: '<sip:a@localhost>', to: '<sip:x@localhost>', body: Buffer.alloc(2000, 'a') });
  void stack.request(request, peer);
  await new Promise((r) => setImmediate(r));
  assert.equal(transport.sent[0]!.target.proto, 'tcp');
  assert.match(transport.sent[0]!.message.get('via')!, /^SIP\/2\.0\/TCP/);
});

test('past max_transactions requests in progress, a new one gets 503 with Retry-After and is not handled', () => {
  const { transport, stack } = setup(2);
  const seen: IncomingRequest[] = [];
  stack.on('request', (r) => seen.push(r));
  for (const branch of ['z9hG4bK1', 'z9hG4bK2', 'z9hG4bK3']) transport.emit('message', incoming(branch), peer);
  assert.equal(seen.length, 2);
  const refusal = transport.sent.at(-1)!.message;
  assert.equal(refusal.status, 503);
  assert.equal(refusal.reason, 'Service Unavailable (too many requests in progress)');
  assert.equal(refusal.get('retry-after'), '5');
  assert.equal(stack.stats.overloaded, 1);
  seen[0]!.reply(200);
  transport.emit('message', incoming('z9hG4bK4'), peer);
  assert.equal(seen.length, 3, 'an answered request makes room');
});

test('past max_transactions answered ones kept for retransmissions, the oldest is let go: its retransmission is handled again', () => {
  const { transport, stack } = setup(2);
  const seen: IncomingRequest[] = [];
  stack.on('request', (r) => {
    seen.push(r);
    r.reply(200);
  });
  for (const branch of ['z9hG4bK1', 'z9hG4bK2', 'z9hG4bK3']) transport.emit('message', incoming(branch), peer);
  assert.equal(stack.stats.serverTransactions, 2, 'two answered ones kept');
  transport.emit('message', incoming('z9hG4bK3'), peer);
  assert.equal(seen.length, 3, 'the newest retransmission is absorbed');
  transport.emit('message', incoming('z9hG4bK1'), peer);
  assert.equal(seen.length, 4, 'the oldest was let go, so its retransmission is a new request');
});

test('a stateless answer keeps nothing: a retransmission is handled again and gets the same response, To tag included', () => {
  const { transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r: IncomingRequest) => {
    seen.push(r);
    r.reply(200, 'OK', { stateless: true });
  });
  transport.emit('message', incoming('z9hG4bKsl1'), peer);
  assert.equal(stack.stats.serverTransactions, 0, 'nothing kept once answered');
  transport.emit('message', incoming('z9hG4bKsl1'), peer);
  assert.equal(seen.length, 2, 'the retransmission is a new request');
  assert.equal(transport.sent[1]!.message.toString(), transport.sent[0]!.message.toString());
  assert.match(transport.sent[0]!.message.get('to')!, /;tag=[0-9a-z]+$/);
  assert.deepEqual(
    { absorbed: stack.stats.retransmissionsAbsorbed, stateless: stack.stats.answeredStatelessly, kept: stack.stats.serverTransactions },
    { absorbed: 0, stateless: 2, kept: 0 },
  );

  transport.emit('message', incoming('z9hG4bKsl2'), peer);
  const otherCall = incoming('z9hG4bKsl1');
  otherCall.set('call-id', 'c2');
  transport.emit('message', otherCall, peer);
  const tags = transport.sent.map((s) => s.message.to.params.get('tag'));
  assert.equal(new Set(tags).size, 3, `another request, another tag: ${tags.join(' ')}`);
});

test('a request answered statelessly after a wait absorbs retransmissions until then, and keeps nothing after', () => {
  const { transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r: IncomingRequest) => seen.push(r));
  transport.emit('message', incoming('z9hG4bKwait'), peer);
  transport.emit('message', incoming('z9hG4bKwait'), peer);
  assert.deepEqual({ handled: seen.length, absorbed: stack.stats.retransmissionsAbsorbed, kept: stack.stats.serverTransactions }, { handled: 1, absorbed: 1, kept: 1 });
  seen[0]!.reply(404, 'Not Here', { stateless: true });
  assert.equal(stack.stats.serverTransactions, 0);
  transport.emit('message', incoming('z9hG4bKwait'), peer);
  assert.equal(seen.length, 2, 'handled again once answered');
});

test('a stateful answer is still kept next to stateless ones: its retransmission is absorbed', () => {
  const { transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r: IncomingRequest) => {
    seen.push(r);
    r.reply(200, 'OK', { stateless: r.message.via.branch === 'z9hG4bKsl' });
  });
  for (const branch of ['z9hG4bKsl', 'z9hG4bKsf', 'z9hG4bKsl', 'z9hG4bKsf']) transport.emit('message', incoming(branch), peer);
  assert.deepEqual(seen.map((r) => r.message.via.branch), ['z9hG4bKsl', 'z9hG4bKsf', 'z9hG4bKsl']);
  assert.deepEqual({ absorbed: stack.stats.retransmissionsAbsorbed, stateless: stack.stats.answeredStatelessly, kept: stack.stats.serverTransactions }, { absorbed: 1, stateless: 2, kept: 1 });
});

test('a provisional answer cannot be stateless', () => {
  const { transport, stack } = setup();
  const seen: IncomingRequest[] = [];
  stack.on('request', (r: IncomingRequest) => seen.push(r));
  transport.emit('message', incoming('z9hG4bKprov'), peer);
  assert.throws(() => seen[0]!.reply(180, 'Ringing', { stateless: true }), /a stateless answer is final \(200-699\), not 180/);
  assert.equal(transport.sent.length, 0);
});

/** A final response to `sent` as a UAS may write it, each header line given (the top Via's branch is `{branch}`). */
function responseTo(sent: SipMessage, lines: string[]): SipMessage {
  const head = lines.map((line) => line.replace('{branch}', sent.via.branch!)).join('\r\n');
  return parseMessage(Buffer.from(`SIP/2.0 200 Fine\r\n${head}\r\n\r\n`));
}

test('a final response ends its client transaction whatever form its Via and CSeq take: compact names, odd case, blanks, folding', async () => {
  const { clock, timers, transport, stack } = setup();
  const request = stack.createRequest({ method: 'MESSAGE', uri: 'sip:x@127.0.0.2:5070', from: '<sip:a@localhost>', to: '<sip:x@localhost>', callId: 'odd' });
  const result = stack.request(request, peer);
  const sent = transport.sent[0]!.message;
  transport.emit('message', responseTo(sent, [
    'v: SIP/2.0/udp 127.0.0.1:5060 ;rport=5060 ; BRANCH = {branch};received=127.0.0.1',
    `f: ${sent.get('from')}`,
    'T: <sip:x@localhost>;tag=uas',
    'i: odd',
    'cseq:\t1\r\n  MESSAGE',
    'l: 0',
  ]), peer);
  clock.advance(64 * 500 + 10, timers);
  assert.deepEqual([(await result).status, (await result).reason], [200, 'Fine']);
});

test('a response is matched on its top Via and CSeq alone: a From or To that is no name-addr does not make it dropped', async () => {
  const { clock, timers, transport, stack } = setup();
  const request = stack.createRequest({ method: 'MESSAGE', uri: 'sip:x@127.0.0.2:5070', from: '<sip:a@localhost>', to: '<sip:x@localhost>', callId: 'loose' });
  const result = stack.request(request, peer);
  const sent = transport.sent[0]!.message;
  transport.emit('message', responseTo(sent, [`Via: ${sent.get('via')}`, 'From: <sip:a@localhost;tag=1', 'To: sip:x@localhost>;tag=2', 'Call-ID: loose', 'CSeq: 1 MESSAGE']), peer);
  clock.advance(64 * 500 + 10, timers);
  assert.equal((await result).status, 200, 'not the 408 of a request whose answer was dropped');
});

test('a response to another method or another branch leaves the client transaction waiting', async () => {
  const { clock, timers, transport, stack } = setup();
  const request = stack.createRequest({ method: 'MESSAGE', uri: 'sip:x@127.0.0.2:5070', from: '<sip:a@localhost>', to: '<sip:x@localhost>', callId: 'other' });
  const result = stack.request(request, peer);
  const sent = transport.sent[0]!.message;
  const rest = [`From: ${sent.get('from')}`, 'To: <sip:x@localhost>;tag=2', 'Call-ID: other'];
  transport.emit('message', responseTo(sent, [`Via: ${sent.get('via')}`, ...rest, 'CSeq: 1 OPTIONS']), peer);
  transport.emit('message', responseTo(sent, [`Via: ${sent.get('via')!.replace(sent.via.branch!, `${sent.via.branch}x`)}`, ...rest, 'CSeq: 1 MESSAGE']), peer);
  clock.advance(64 * 500 + 10, timers);
  assert.equal((await result).status, 408);
});

test('a response whose top Via has a malformed branch is dropped as malformed, and its client transaction waits on', async () => {
  const { clock, timers, transport, stack } = setup();
  const request = stack.createRequest({ method: 'MESSAGE', uri: 'sip:x@127.0.0.2:5070', from: '<sip:a@localhost>', to: '<sip:x@localhost>', callId: 'bad-branch' });
  const result = stack.request(request, peer);
  const sent = transport.sent[0]!.message;
  const rest = [`From: ${sent.get('from')}`, 'To: <sip:x@localhost>;tag=2', 'Call-ID: bad-branch', 'CSeq: 1 MESSAGE'];
  for (const branch of ['{branch}<', '{branch}\u00e9', '', '"{branch}']) {
    transport.emit('message', responseTo(sent, [`Via: SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=${branch}`, ...rest]), peer);
  }
  assert.equal(stack.stats.malformed, 4);
  transport.emit('message', responseTo(sent, [`Via: ${sent.get('via')}`, ...rest]), peer);
  clock.advance(64 * 500 + 10, timers);
  assert.equal((await result).status, 200, 'the well-formed answer, not one of those dropped');
});
