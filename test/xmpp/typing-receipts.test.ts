// Typing notifications and receipts through the XMPP gateway, against a real Prosody: isComposing
// (RFC 3994) <-> XEP-0085 chat states, and IMDN in message/cpim as Linphone sends it (RFC 5438,
// deflated or not) <-> XEP-0184 receipts and XEP-0333 markers, ids mapped both ways.
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import xml from '@xmpp/xml';
import { imdnRequestOf, parseCpim, readIsComposing } from '../../src/bridge/index.js';
import { CHATSTATES_NS } from '../../src/xmpp/chatstates.js';
import { MARKERS_NS, RECEIPTS_NS } from '../../src/xmpp/receipts.js';
import { eventually } from '../support/eventually.js';
import { contentTypeOf, imdnIn, linphoneCpim, linphoneImdn } from '../support/linphone.js';
import { Prosody } from '../support/prosody.js';
import type { TestServer } from '../support/server.js';
import { TestUA, sipMessagesTo } from '../support/ua.js';
import { type ComponentGateway, gatewayJid, gatewaySipAddress, startComponentGatewayWith } from '../support/xmpp-gateway.js';
import type { XmppUser } from '../support/xmpp-user.js';

let prosody: Prosody;
let parley: TestServer;
let alice: TestUA;
let romeo: XmppUser;
let juliet: XmppUser;

const sipAddressOf = (user: string) => gatewaySipAddress(prosody, user);
const jidOf = (sipUser: string) => gatewayJid(prosody, sipUser);
const ISCOMPOSING = 'application/im-iscomposing+xml';

const isComposing = (state: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>${state}</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>`;

let gateway: ComponentGateway;

before(async () => {
  gateway = await startComponentGatewayWith({ xmppUsers: ['romeo', 'juliet'], sipUsers: ['alice'] });
  ({ prosody, parley, xmppUsers: [romeo, juliet], sipUsers: [alice] } = gateway);
});

after(() => gateway?.stop());

describe('typing notifications', () => {
  test('a SIP user typing and stopping is seen by the XMPP user as <composing/> then <paused/>', async () => {
    const fromAlice = (m: xml.Element) => m.attrs.from === jidOf('alice');
    const before = romeo.messages.filter(fromAlice).length;
    assert.equal((await alice.message(sipAddressOf('romeo'), isComposing('active'), [], ISCOMPOSING)).status, 202);
    assert.equal((await alice.message(sipAddressOf('romeo'), isComposing('idle'), [], ISCOMPOSING)).status, 202);
    const [composing, paused] = (await romeo.waitForMessages(before + 2, fromAlice)).slice(before);
    assert.ok(composing!.getChild('composing', CHATSTATES_NS), composing!.toString());
    assert.ok(paused!.getChild('paused', CHATSTATES_NS), paused!.toString());
    assert.equal(composing!.getChild('body'), undefined);
  });

  test('an isComposing that is not one is refused 400', async () => {
    const response = await alice.message(sipAddressOf('romeo'), '<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>typing</state></isComposing>', [], ISCOMPOSING);
    assert.equal(response.status, 400);
    assert.match(response.reason, /isComposing/);
  });

  test('an XMPP user typing and pausing is seen by the SIP user as isComposing active then idle', async () => {
    const composing = alice.waitForRequest((m) => m.method === 'MESSAGE' && contentTypeOf(m) === ISCOMPOSING && readIsComposing(m.body.toString())?.state === 'active');
    await juliet.sendStanza(xml('message', { to: jidOf('alice'), type: 'chat' }, xml('composing', { xmlns: CHATSTATES_NS })));
    const active = await composing;
    assert.equal(active.get('from')?.includes(`juliet*${prosody.domain}@${prosody.componentDomain}`), true, active.get('from'));
    assert.deepEqual(readIsComposing(active.body.toString()), { state: 'active', contentType: 'text/plain', refresh: 90 });

    const idle = alice.waitForRequest((m) => m.method === 'MESSAGE' && contentTypeOf(m) === ISCOMPOSING && readIsComposing(m.body.toString())?.state === 'idle');
    await juliet.sendStanza(xml('message', { to: jidOf('alice'), type: 'chat' }, xml('paused', { xmlns: CHATSTATES_NS })));
    await idle;
  });

  test('a chat state for a SIP user who is offline is neither stored nor answered with an error', async () => {
    const bob = await TestUA.create({ proto: 'tcp', user: 'bob', server: parley.tcp });
    try {
      assert.equal((await bob.register()).status, 200);
      assert.equal((await bob.register(0)).status, 200);
      await juliet.sendStanza(xml('message', { to: jidOf('bob'), type: 'chat', id: 'typing-1' }, xml('composing', { xmlns: CHATSTATES_NS })));
      await juliet.send(jidOf('bob'), 'Wherefore art thou');
      // Each SIP recipient's deliveries go in order: the text is stored after the chat state would have been.
      await eventually(() => parley.server.relay.stats.stored >= 1 || undefined, 'text stored for bob');
      assert.equal((await bob.register()).status, 200);
      await eventually(() => sipMessagesTo(bob, (m) => m.body.toString() === 'Wherefore art thou')[0], 'stored text delivered');
      assert.deepEqual(sipMessagesTo(bob, (m) => contentTypeOf(m) === ISCOMPOSING).map((m) => m.body.toString()), []);
      // What the gateway sends to juliet comes in order on its link: an error for the chat state would come before this.
      assert.equal((await alice.message(sipAddressOf('juliet'), 'marker')).status, 202);
      await juliet.waitForMessage((m) => m.getChildText('body') === 'marker');
      assert.deepEqual(juliet.messages.filter((m) => m.attrs.type === 'error').map(String), []);
    } finally {
      bob.close();
    }
  });
});

describe('receipts', () => {
  test('a Linphone message asking for IMDNs asks the XMPP user for a receipt and a marker; both come back as IMDNs naming its Message-ID', async () => {
    const body = linphoneCpim(`sip:alice@localhost`, sipAddressOf('romeo'), [['imdn.Message-ID', 'Wq4PoxyFRfu2'], ['imdn.Disposition-Notification', 'positive-delivery, display']], 'text/plain;charset=UTF-8', 'Hello Romeo 🌹');
    assert.equal((await alice.message(sipAddressOf('romeo'), body, [], 'message/cpim')).status, 202);
    const stanza = await romeo.waitForMessage((m) => m.getChildText('body') === 'Hello Romeo 🌹');
    assert.ok(stanza.getChild('request', RECEIPTS_NS), stanza.toString());
    assert.ok(stanza.getChild('markable', MARKERS_NS), stanza.toString());

    const delivered = alice.waitForRequest((m) => m.method === 'MESSAGE' && imdnIn(m)?.disposition === 'delivered');
    await romeo.sendStanza(xml('message', { to: jidOf('alice'), id: 'r-1' }, xml('received', { xmlns: RECEIPTS_NS, id: stanza.attrs.id })));
    const deliveredImdn = await delivered;
    assert.deepEqual(imdnIn(deliveredImdn), { messageId: 'Wq4PoxyFRfu2', disposition: 'delivered' });
    assert.ok(deliveredImdn.get('from')!.includes(sipAddressOf('romeo')), deliveredImdn.get('from'));
    const cpim = parseCpim(deliveredImdn.body);
    assert.equal(cpim.contentHeaders.find((h) => h.name === 'Content-Disposition')?.value, 'notification');

    const displayed = alice.waitForRequest((m) => m.method === 'MESSAGE' && imdnIn(m)?.disposition === 'displayed');
    await romeo.sendStanza(xml('message', { to: jidOf('alice'), id: 'r-2' }, xml('displayed', { xmlns: MARKERS_NS, id: stanza.attrs.id })));
    assert.deepEqual(imdnIn(await displayed), { messageId: 'Wq4PoxyFRfu2', disposition: 'displayed' });
  });

  test('an XMPP message asking for a receipt and a marker reaches SIP in CPIM asking for IMDNs; the SIP user\'s IMDNs (deflated, as Linphone sends them) come back as <received/> and <displayed/>', async () => {
    const arrived = alice.waitForRequest((m) => m.method === 'MESSAGE' && contentTypeOf(m).startsWith('message/cpim') && parseCpim(m.body).content.toString() === 'Parting is such sweet sorrow');
    await juliet.sendStanza(
      xml('message', { to: jidOf('alice'), type: 'chat', id: 'j-1' }, xml('body', {}, 'Parting is such sweet sorrow'), xml('request', { xmlns: RECEIPTS_NS }), xml('markable', { xmlns: MARKERS_NS })),
    );
    const message = await arrived;
    const request = imdnRequestOf(parseCpim(message.body));
    assert.deepEqual(request?.wanted, { delivery: true, display: true });

    // Another SIP user cannot answer for alice.
    const bob = await TestUA.create({ proto: 'tcp', user: 'bob', server: parley.tcp });
    try {
      const forged = linphoneImdn('sip:bob@localhost', sipAddressOf('juliet'), request!.messageId, 'delivered');
      assert.equal((await bob.message(sipAddressOf('juliet'), forged, [], 'message/cpim')).status, 202);
    } finally {
      bob.close();
    }
    const deflated = deflateSync(linphoneImdn('sip:alice@localhost', sipAddressOf('juliet'), request!.messageId, 'delivered'));
    assert.equal((await alice.message(sipAddressOf('juliet'), deflated, [{ name: 'content-encoding', value: 'deflate' }], 'message/cpim')).status, 202);
    await alice.message(sipAddressOf('juliet'), linphoneImdn('sip:alice@localhost', sipAddressOf('juliet'), request!.messageId, 'displayed'), [], 'message/cpim');
    const marker = await juliet.waitForMessage((m) => m.getChild('displayed', MARKERS_NS) !== undefined);
    assert.equal(marker.getChild('displayed', MARKERS_NS)!.attrs.id, 'j-1');
    assert.equal(marker.attrs.from, jidOf('alice'));
    const receipts = juliet.messages.filter((m) => m.getChild('received', RECEIPTS_NS) !== undefined);
    assert.deepEqual(receipts.map((m) => m.getChild('received', RECEIPTS_NS)!.attrs.id), ['j-1'], 'one receipt: alice\'s, not bob\'s');
  });

  test('an XMPP message asking for nothing reaches SIP as plain text', async () => {
    const arrived = alice.waitForRequest((m) => m.method === 'MESSAGE' && m.body.toString() === 'plain');
    await juliet.send(jidOf('alice'), 'plain', { id: 'j-2' });
    assert.match(contentTypeOf(await arrived), /^text\/plain/);
  });

  test('a deflated body inflating past max_body is refused 415', async () => {
    const bomb = deflateSync(Buffer.alloc(10_000_000, 'a'));
    const response = await alice.message(sipAddressOf('romeo'), bomb, [{ name: 'content-encoding', value: 'deflate' }], 'message/cpim');
    assert.equal(response.status, 415);
    assert.match(response.reason, /inflated body over/);
  });
});
