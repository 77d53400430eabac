// The bridge between SIP and the other networks, without a network: the outbox step before the 202,
// what was sent and not confirmed, failure notices, ordered delivery into SIP, the SIP edge.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import {
  Recent, SipBridge, TEXT_PLAIN, imdnBody, imdnRequestOf, isComposingBody, parseCpim, readImdn, readIsComposing, readSipPayload, sipRequestOf, type SipOrigin,
} from '../../src/bridge/index.js';
import { type IncomingRequest, parseMessage } from '../../src/sip/index.js';
import type { LegOutcome } from '../../src/relay/index.js';
import type { OutboxStore } from '../../src/store/index.js';
import { eventually } from '../support/eventually.js';
import { recordingRelay } from '../support/relay.js';

const log = pino({ enabled: false });
const origin: SipOrigin = { sender: 'sip:alice@example.com', target: 'sip:bob*xmpp.example@gw.example.com', recipient: 'bob@xmpp.example', excerpt: 'hello there' };

function bridgeWith() {
  const { relay, sent } = recordingRelay();
  return { bridge: new SipBridge(relay, { network: 'XMPP', maxSent: 2 }, log), sent };
}

function memoryOutbox(): OutboxStore {
  let ids = 0;
  return { add: () => Promise.resolve(++ids), record: () => Promise.resolve(), pending: () => Promise.resolve({ records: [], cursors: new Map() }) };
}

function requestAnswered(): { request: IncomingRequest; answers: number[] } {
  const answers: number[] = [];
  return { request: { reply: (status: number) => void answers.push(status) } as unknown as IncomingRequest, answers };
}

describe('failures told to the SIP sender', () => {
  test('a network refusing a message sent with an id tells its sender once, from the address it wrote to, in words quoting it', async () => {
    const { bridge, sent } = bridgeWith();
    bridge.sentToNetwork('m1', origin);
    assert.equal(bridge.refusedByNetwork('m1', 404, 'XMPP error item-not-found'), true);
    assert.equal(bridge.refusedByNetwork('m1', 404, 'XMPP error item-not-found'), false, 'the second error for it is not told again');
    assert.equal(bridge.refusedByNetwork('unknown', 404, 'no such nick'), false);
    await bridge.drain();
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.from, '<sip:bob*xmpp.example@gw.example.com>');
    assert.equal(sent[0]!.to, 'sip:alice@example.com');
    assert.equal(sent[0]!.contentType, TEXT_PLAIN);
    assert.equal(sent[0]!.body, 'Your message to bob@xmpp.example was not delivered: XMPP error item-not-found (404).\n> hello there');
  });

  test('what was sent is remembered within bounds: the oldest go past the number, all of them past the time', () => {
    const recent = new Recent<string>(2, 1000);
    recent.remember('a', 'A', 0);
    recent.remember('b', 'B', 500);
    recent.remember('c', 'C', 600);
    assert.equal(recent.get('a', 600), undefined, 'the oldest went when a third came');
    assert.equal(recent.get('b', 1550), undefined, 'older than the time');
    recent.sweep(1550);
    assert.equal(recent.size, 1);
    assert.equal(recent.get('c', 1550), 'C');
  });

  test('an entry remembered again is the newest; one forgotten leaves room; the bound holds through any number', () => {
    const recent = new Recent<number>(3, 1000);
    for (const id of ['a', 'b', 'c']) recent.remember(id, 1, 0);
    recent.remember('a', 2, 10);
    recent.remember('d', 1, 20);
    assert.equal(recent.get('b', 20), undefined, 'b, now the oldest, went');
    assert.equal(recent.get('a', 20), 2);
    recent.forget('c');
    recent.remember('e', 1, 30);
    assert.deepEqual(['a', 'd', 'e'].map((id) => recent.get(id, 30)), [2, 1, 1], 'the forgotten one made room: nothing else went');
    for (let i = 0; i < 10_000; i++) {
      recent.remember(`m${i}`, i, 40);
      if (i % 2 === 0) recent.forget(`m${i}`);
    }
    assert.equal(recent.size, 3);
    assert.deepEqual([9995, 9997, 9999].map((i) => recent.get(`m${i}`, 40)), [9995, 9997, 9999]);
    recent.update('m9995', -1);
    recent.sweep(1000 + 41);
    assert.equal(recent.size, 0);
  });
});

describe('delivery into SIP', () => {
  test('each recipient gets its messages in the order given, a message made in its turn included', async () => {
    let release!: () => void;
    const slow = new Promise<void>((resolve) => (release = resolve));
    const { bridge, sent } = bridgeWith();
    const to = { network: 'sip', id: 'sip:alice@example.com' } as const;
    bridge.intoSip({ to, make: async () => {
      await slow;
      return { kind: 'text', from: { network: 'sip', id: 'sip:first@gw.example.com' }, to, body: 'first', contentType: TEXT_PLAIN };
    } });
    bridge.intoSip({ kind: 'text', from: { network: 'sip', id: 'sip:second@gw.example.com' }, to, body: 'second', contentType: TEXT_PLAIN });
    bridge.notice('sip:other@gw.example.com', 'sip:carol@example.com', 'not held up');
    await eventually(() => sent.length === 1, 'the other recipient served');
    assert.equal(sent[0]!.to, 'sip:carol@example.com');
    release();
    await bridge.drain();
    assert.deepEqual(sent.slice(1).map((message) => message.body), ['first', 'second']);
  });

  test('the SIP edge: a typing state is never stored offline, a text carries its subject and language, a speaker its name', () => {
    const from = { network: 'sip', id: 'sip:room*irc.example@gw.example.com', name: 'ally' } as const;
    const to = { network: 'sip', id: 'sip:alice@example.com' } as const;
    const typing = sipRequestOf({ kind: 'typing', from, to, typing: { state: 'active', refresh: 90 } });
    assert.equal(typing.storeOffline, false);
    assert.equal(typing.contentType, 'application/im-iscomposing+xml');
    assert.deepEqual(readIsComposing(typing.body.toString()), { state: 'active', refresh: 90 });
    assert.equal(typing.from, '"ally" <sip:room*irc.example@gw.example.com>');
    const text = sipRequestOf({ kind: 'text', from, to, body: 'hi', contentType: TEXT_PLAIN, subject: 'a\nb', language: 'fr', conversation: 'thread-1' });
    assert.equal(text.storeOffline, undefined);
    assert.equal(text.callId, 'thread-1');
    assert.equal(text.body, 'hi');
    assert.deepEqual(text.headers, [{ name: 'subject', value: 'a b' }, { name: 'content-language', value: 'fr' }]);
  });

  test('the SIP edge: a text asking for receipts goes in CPIM asking for IMDNs under its id; a receipt is an IMDN in CPIM', () => {
    const from = { network: 'sip', id: 'sip:bob*xmpp.example@gw.example.com' } as const;
    const to = { network: 'sip', id: 'sip:alice@example.com' } as const;
    const asking = sipRequestOf({ kind: 'text', from, to, id: 'm-1', body: 'read me', contentType: TEXT_PLAIN, wanted: { delivery: true, display: true } });
    assert.equal(asking.contentType, 'message/cpim');
    const cpim = parseCpim(asking.body as Buffer);
    assert.deepEqual(imdnRequestOf(cpim), { messageId: 'm-1', wanted: { delivery: true, display: true } });
    assert.equal(cpim.content.toString(), 'read me');
    const receipt = sipRequestOf({ kind: 'receipt', from, to, id: 'r-1', receipt: { messageId: 'm-0', disposition: 'displayed' } });
    assert.equal(receipt.contentType, 'message/cpim');
    assert.deepEqual(readImdn(parseCpim(receipt.body as Buffer).content.toString()), { messageId: 'm-0', disposition: 'displayed' });
  });

  test('the SIP edge the other way: a MESSAGE is read as a text, a typing state or a receipt, or refused in words', () => {
    const message = (contentType: string, body: string) => {
      const parsed = parseMessage(Buffer.from(
        `MESSAGE sip:bob*xmpp.example@gw.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\n` +
          `To: <sip:bob*xmpp.example@gw.example.com>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: ${contentType}\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      ));
      return readSipPayload(parsed, 1000);
    };
    assert.deepEqual(message('text/plain', 'hello'), { kind: 'text', text: { body: 'hello', subject: undefined, thread: 'c1', language: undefined } });
    assert.deepEqual(message('application/im-iscomposing+xml', isComposingBody({ state: 'idle' })), { kind: 'typing', typing: { state: 'idle' } });
    assert.deepEqual(message('message/imdn+xml', imdnBody({ messageId: 'x', disposition: 'delivered' }, new Date())), { kind: 'receipt', receipt: { messageId: 'x', disposition: 'delivered' } });
    assert.deepEqual(message('message/imdn+xml', '<imdn/>'), { status: 400, reason: 'Bad Request (not a delivered or displayed IMDN)' });
    assert.equal((message('image/png', 'x') as { status: number }).status, 415);
  });
});

describe('the outbox step before the 202', () => {
  test('a message is answered 202 once it is in the outbox; past its bound nothing is answered and the caller refuses it', async () => {
    const { bridge } = bridgeWith();
    const delivered: string[] = [];
    let hold!: () => void;
    const held = new Promise<void>((resolve) => (hold = resolve));
    const outbox = bridge.outbox(memoryOutbox(), 'test', async (item: { text: string }): Promise<LegOutcome> => {
      await held;
      delivered.push(item.text);
      return 'done';
    }, { maxMessages: 1, maxPerRecipient: 1 });
    await outbox.start();
    const first = requestAnswered();
    assert.equal(await bridge.accept(first.request, outbox, { text: 'one' }, 'account-1'), true);
    assert.deepEqual(first.answers, [202]);
    const second = requestAnswered();
    assert.equal(await bridge.accept(second.request, outbox, { text: 'two' }, 'account-1'), false);
    assert.deepEqual(second.answers, [], 'left to the caller to refuse');
    hold();
    await eventually(() => delivered.length === 1, 'the first delivered');
    await outbox.stop();
    assert.deepEqual(delivered, ['one']);
  });
});
