// The fan-out of a room post: the MESSAGE is built once, and each leg only names its recipient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RoomFanOut } from '../../src/imc/fanout.js';
import type { OutboxStore, RoomHistoryEntry } from '../../src/store/index.js';
import { eventually } from '../support/eventually.js';
import { recordingRelay } from '../support/relay.js';

function fanOutWith(cpim: boolean) {
  const { relay, sent } = recordingRelay();
  let ids = 0;
  const outbox: OutboxStore = {
    add: () => Promise.resolve(++ids),
    record: () => Promise.resolve(),
    pending: () => Promise.resolve({ records: [], cursors: new Map() }),
  };
  const options = { extraHeaders: [{ name: 'x-room', value: 'parley' }], cpim, maxBacklog: 10, maxPending: 10 };
  const stats = { messagesOut: 0, deliveriesFailed: 0 };
  return { fanout: new RoomFanOut(outbox, relay, options, stats, pino({ enabled: false })), sent };
}

const entry = (): RoomHistoryEntry => ({
  roomName: 'chat-x', roomDomain: 'localhost', sender: 'alice@localhost', nick: 'ally', contentType: 'text/plain;charset=utf-8', body: Buffer.from('hello'), at: Date.now(),
});

for (const cpim of [false, true]) {
  test(`a post${cpim ? ' as message/cpim' : ''} is rendered once: its legs share From, body and headers and differ in the recipient and their identity only`, async () => {
    const { fanout, sent } = fanOutWith(cpim);
    await fanout.start();
    const recipients = ['bob@localhost', 'carol@localhost', 'dave@example.org'];
    await fanout.post(entry(), recipients, 'call-1|tag-1|1');
    await eventually(() => sent.length === recipients.length, 'every leg sent');
    await fanout.stop();
    assert.deepEqual(sent.map((m) => m.to), recipients.map((aor) => `sip:${aor}`));
    const [first, ...others] = sent;
    assert.equal(first!.from, '"ally" <sip:chat-x@localhost>');
    assert.match(first!.fromTag ?? '', /^\w+$/);
    assert.match(first!.body.toString(), cpim ? /^From: "ally" <sip:alice@localhost>\r\n[\s\S]*\r\n\r\nhello$/ : /^<ally> hello$/);
    for (const leg of others) {
      assert.equal(leg.body, first!.body, 'the same body, not a copy rendered again');
      assert.equal(leg.headers, first!.headers);
      // Each leg has its own identity (From tag, Call-ID), the same again if it is resent after a restart.
      assert.notEqual(leg.callId, first!.callId);
      assert.notEqual(leg.fromTag, first!.fromTag);
      const unnamed = (m: typeof leg) => ({ ...m, to: undefined, callId: undefined, fromTag: undefined });
      assert.deepEqual(unnamed(leg), unnamed(first!));
    }
  });
}
