// Typing notifications and receipts of the XMPP gateway on their own: isComposing (RFC 3994) and
// chat states (XEP-0085), message/cpim with IMDN headers as Linphone sends it, IMDN documents
// (RFC 5438) and XEP-0184 receipts / XEP-0333 markers, deflate bodies, and the bounded memory of
// which message is which.
import assert from 'node:assert/strict';
import { deflateRawSync, deflateSync } from 'node:zlib';
import { describe, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { pino } from 'pino';
import { openStore } from '../../src/store/index.js';
import xml from '@xmpp/xml';
import {
  ContentError, cpimAskingForImdn, cpimNotification, decodeContent, formatCpim, imdnBody, imdnRequestOf, isComposingBody, parseCpim, readImdn, readIsComposing,
} from '../../src/bridge/index.js';
import { CHATSTATES_NS, chatStateOf, chatStateOfComposing, chatStateStanza, composingOfChatState } from '../../src/xmpp/chatstates.js';
import { Correlations, MARKERS_NS, RECEIPTS_NS, receiptRequests, receiptStanza, receiptsOf } from '../../src/xmpp/receipts.js';

/** A text message as Linphone wraps it in message/cpim, asking for delivery and display notifications. */
const LINPHONE_MESSAGE = [
  'From: <sip:alice@localhost>',
  'To: <sip:romeo*xmpp.test@sip.xmpp.test>',
  'DateTime: 2026-12-06T15:00:00Z',
  'NS: imdn <urn:ietf:params:imdn>',
  'imdn.Message-ID: Wq4PoxyFRfu2',
  'imdn.Disposition-Notification: positive-delivery, display',
  '',
  'Content-Type: text/plain;charset=UTF-8',
  '',
  'Hello Romeo 🌹',
].join('\r\n');

/** A delivery notification as Linphone sends it. */
const LINPHONE_DELIVERED = `<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>abc-1</message-id><datetime>2026-12-06T15:00:01Z</datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>`;

describe('isComposing and chat states', () => {
  test('an isComposing document is read, and built back', () => {
    const active = '<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>';
    assert.deepEqual(readIsComposing(active), { state: 'active', refresh: 60, contentType: 'text/plain' });
    assert.deepEqual(readIsComposing('<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state></isComposing>'), { state: 'idle' });
    assert.equal(readIsComposing('<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>typing</state></isComposing>'), undefined);
    assert.equal(readIsComposing('<isComposing><state>active</state></isComposing>'), undefined, 'wrong namespace');
    assert.equal(readIsComposing('<isComposing'), undefined);
    const built = isComposingBody({ state: 'active', contentType: 'text/plain', refresh: 90 });
    assert.deepEqual(readIsComposing(built), { state: 'active', refresh: 90, contentType: 'text/plain' });
  });

  test('map both ways: active <-> composing, idle <-> paused (and every other chat state to idle)', () => {
    assert.equal(chatStateOfComposing({ state: 'active' }), 'composing');
    assert.equal(chatStateOfComposing({ state: 'idle' }), 'paused');
    assert.deepEqual(composingOfChatState('composing'), { state: 'active', contentType: 'text/plain', refresh: 90 });
    for (const state of ['paused', 'active', 'inactive', 'gone'] as const) assert.deepEqual(composingOfChatState(state), { state: 'idle' });
  });

  test('a chat state stanza carries the state and a no-store hint, and is read back', () => {
    const stanza = chatStateStanza('composing', { from: 'a@x', to: 'b@y', id: '1', type: 'chat' });
    assert.equal(stanza.toString(), '<message from="a@x" to="b@y" id="1" type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/><no-store xmlns="urn:xmpp:hints"/></message>');
    assert.equal(chatStateOf(stanza), 'composing');
    assert.equal(chatStateOf(xml('message', {}, xml('paused', { xmlns: CHATSTATES_NS }))), 'paused');
    assert.equal(chatStateOf(xml('message', {}, xml('paused', { xmlns: 'urn:other' }))), undefined);
  });
});

describe('message/cpim', () => {
  test('a Linphone message is read: headers, content headers, content; and written back the same', () => {
    const cpim = parseCpim(Buffer.from(LINPHONE_MESSAGE));
    assert.equal(cpim.headers.length, 6);
    assert.deepEqual(cpim.contentHeaders, [{ name: 'Content-Type', value: 'text/plain;charset=UTF-8' }]);
    assert.equal(cpim.content.toString(), 'Hello Romeo 🌹');
    assert.deepEqual(imdnRequestOf(cpim), { messageId: 'Wq4PoxyFRfu2', wanted: { delivery: true, display: true } });
    assert.equal(formatCpim(cpim).toString(), LINPHONE_MESSAGE);
  });

  test('the IMDN headers are found under the prefix the NS header gives, and bare LF line ends are taken', () => {
    const text = 'NS: n <urn:ietf:params:imdn>\nn.Message-ID: x1\nn.Disposition-Notification: display\n\nContent-Type: text/plain\n\nhi';
    const cpim = parseCpim(Buffer.from(text));
    assert.deepEqual(imdnRequestOf(cpim), { messageId: 'x1', wanted: { delivery: false, display: true } });
    assert.equal(cpim.content.toString(), 'hi');
  });

  test('no IMDN asked: no request; malformed CPIM is a ContentError', () => {
    assert.equal(imdnRequestOf(parseCpim(Buffer.from('From: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nhi'))), undefined);
    assert.equal(imdnRequestOf(parseCpim(Buffer.from('imdn.Message-ID: x\r\nimdn.Disposition-Notification: negative-delivery\r\n\r\n\r\nhi'))), undefined);
    assert.throws(() => parseCpim(Buffer.from('From: <sip:a@b>\r\nno blank line')), ContentError);
    assert.throws(() => parseCpim(Buffer.from('not a header\r\n\r\n\r\n')), ContentError);
  });

  test('the CPIM messages Parley writes are read back: a text asking for IMDNs, and an IMDN', () => {
    const envelope = { from: 'sip:juliet*xmpp.test@sip.xmpp.test', to: 'sip:alice@localhost', at: new Date('2026-12-06T15:00:00Z'), messageId: 'm-1' };
    const asking = parseCpim(cpimAskingForImdn(envelope, { delivery: true, display: false }, 'text/plain;charset=utf-8', Buffer.from('hi')));
    assert.deepEqual(imdnRequestOf(asking), { messageId: 'm-1', wanted: { delivery: true, display: false } });
    assert.deepEqual(asking.headers.slice(0, 3), [
      { name: 'From', value: '<sip:juliet*xmpp.test@sip.xmpp.test>' },
      { name: 'To', value: '<sip:alice@localhost>' },
      { name: 'DateTime', value: '2026-12-06T15:00:00.000Z' },
    ]);
    assert.equal(asking.content.toString(), 'hi');
    const notification = parseCpim(cpimNotification({ ...envelope, messageId: 'm-2' }, { messageId: 'Wq4PoxyFRfu2', disposition: 'delivered' }));
    assert.deepEqual(notification.contentHeaders, [{ name: 'Content-Type', value: 'message/imdn+xml' }, { name: 'Content-Disposition', value: 'notification' }]);
    assert.equal(imdnRequestOf(notification), undefined, 'an IMDN asks for no IMDN');
    assert.deepEqual(readImdn(notification.content.toString()), { messageId: 'Wq4PoxyFRfu2', disposition: 'delivered' });
  });
});

describe('Content-Encoding deflate', () => {
  test('zlib and raw deflate are inflated; identity passes', () => {
    const text = Buffer.from(LINPHONE_DELIVERED);
    assert.equal(decodeContent(deflateSync(text), 'deflate', 10_000).toString(), LINPHONE_DELIVERED);
    assert.equal(decodeContent(deflateRawSync(text), 'Deflate', 10_000).toString(), LINPHONE_DELIVERED);
    assert.equal(decodeContent(text, undefined, 10), text);
    assert.equal(decodeContent(text, 'identity', 10), text);
  });

  test('a body inflating past the bound (a zip bomb), a corrupt one, another encoding: ContentError', () => {
    const bomb = deflateSync(Buffer.alloc(50_000_000));
    assert.ok(bomb.length < 100_000);
    assert.throws(() => decodeContent(bomb, 'deflate', 65_536), { name: 'Error', message: 'inflated body over 65536 bytes' });
    assert.throws(() => decodeContent(Buffer.from('not deflate at all'), 'deflate', 65_536), ContentError);
    assert.throws(() => decodeContent(Buffer.from('x'), 'gzip', 65_536), /unsupported content encoding gzip/);
  });
});

describe('IMDN and XMPP receipts', () => {
  test('a Linphone delivery notification and a display notification are read; others are not', () => {
    assert.deepEqual(readImdn(LINPHONE_DELIVERED), { messageId: 'abc-1', disposition: 'delivered' });
    const displayed = '<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>abc-2</message-id><display-notification><status><displayed/></status></display-notification></imdn>';
    assert.deepEqual(readImdn(displayed), { messageId: 'abc-2', disposition: 'displayed' });
    const failed = '<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>abc-3</message-id><delivery-notification><status><failed/></status></delivery-notification></imdn>';
    assert.equal(readImdn(failed), undefined);
    assert.equal(readImdn('<imdn xmlns="urn:ietf:params:xml:ns:imdn"><delivery-notification><status><delivered/></status></delivery-notification></imdn>'), undefined);
    assert.equal(readImdn('<html/>'), undefined);
  });

  test('the IMDN Parley writes is read back', () => {
    const body = imdnBody({ messageId: 'Wq4PoxyFRfu2', disposition: 'displayed' }, new Date('2026-12-06T15:00:00Z'));
    assert.match(body, /<datetime>2026-12-06T15:00:00.000Z<\/datetime>/);
    assert.deepEqual(readImdn(body), { messageId: 'Wq4PoxyFRfu2', disposition: 'displayed' });
  });

  test('XMPP requests, receipts and markers are read and written', () => {
    const asking = xml('message', { id: 's1' }, xml('body', {}, 'hi'), ...receiptRequests({ delivery: true, display: true }));
    assert.deepEqual(receiptsOf(asking), { wanted: { delivery: true, display: true } });
    const attrs = { from: 'a@x', to: 'b@y/phone', id: 'r1', type: 'chat' };
    const received = receiptStanza({ messageId: 's1', disposition: 'delivered' }, attrs);
    assert.equal(received.getChild('received', RECEIPTS_NS)?.attrs.id, 's1');
    assert.deepEqual(receiptsOf(received).answers, { messageId: 's1', disposition: 'delivered' });
    const displayed = receiptStanza({ messageId: 's1', disposition: 'displayed' }, attrs);
    assert.equal(displayed.getChild('displayed', MARKERS_NS)?.attrs.id, 's1');
    assert.deepEqual(receiptsOf(displayed).answers, { messageId: 's1', disposition: 'displayed' });
  });
});

describe('correlations', () => {
  const anyone = () => true;

  test('an entry answers the notifications it asked for, from the right party, then goes', async () => {
    const correlations = new Correlations<{ wanted: { delivery: boolean; display: boolean }; who: string }>(10, 1000);
    await correlations.remember('m1', { wanted: { delivery: true, display: true }, who: 'alice' }, 0);
    assert.equal(await correlations.answer({ messageId: 'm1', disposition: 'delivered' }, (entry) => entry.who === 'mallory', 1), undefined, 'wrong party');
    assert.equal((await correlations.answer({ messageId: 'm1', disposition: 'delivered' }, anyone, 1))?.who, 'alice');
    assert.equal(await correlations.answer({ messageId: 'm1', disposition: 'delivered' }, anyone, 2), undefined, 'delivered only once');
    assert.equal((await correlations.answer({ messageId: 'm1', disposition: 'displayed' }, anyone, 3))?.who, 'alice');
    assert.equal(correlations.size, 0);

    await correlations.remember('m2', { wanted: { delivery: true, display: false }, who: 'alice' }, 0);
    assert.equal(await correlations.answer({ messageId: 'm2', disposition: 'displayed' }, anyone, 1), undefined, 'display not asked for');
  });

  test('kept in SQLite: an entry is told committed, readable by another connection (as after a kill -9), before its disk sync resolves remember()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-correlations-'));
    const store = await openStore(`sqlite:${join(dir, 'parley.db')}`);
    const reader = new SqliteDatabase(join(dir, 'parley.db'), { readonly: true });
    try {
      const durable = { store: store.receiptIds, direction: 'xmpp-imdn', ownerOf: () => 'sip:alice@localhost', maxPerOwner: 10, log: pino({ enabled: false }) };
      const correlations = new Correlations<{ wanted: { delivery: boolean; display: boolean } }>(10, 60_000, durable);
      let resolved = false;
      const seen: Array<{ resolved: boolean; rows: number }> = [];
      const remembered = correlations.remember('m1', { wanted: { delivery: true, display: false } }, Date.now(), () => {
        seen.push({ resolved, rows: (reader.prepare(`SELECT count(*) AS n FROM receipt_ids WHERE message_id = 'm1'`).get() as { n: number }).n });
      });
      await remembered.then(() => (resolved = true));
      assert.deepEqual(seen, [{ resolved: false, rows: 1 }]);
    } finally {
      reader.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('are bounded in number and in time', async () => {
    const correlations = new Correlations<{ wanted: { delivery: boolean; display: boolean } }>(2, 1000);
    const wanted = { delivery: true, display: false };
    await correlations.remember('a', { wanted }, 0);
    await correlations.remember('b', { wanted }, 10);
    await correlations.remember('c', { wanted }, 20);
    assert.equal(correlations.size, 2);
    assert.equal(await correlations.answer({ messageId: 'a', disposition: 'delivered' }, anyone, 30), undefined, 'the oldest went');
    assert.equal(await correlations.answer({ messageId: 'b', disposition: 'delivered' }, anyone, 2000), undefined, 'too old');
    correlations.sweep(2000);
    assert.equal(correlations.size, 0);
  });
});
