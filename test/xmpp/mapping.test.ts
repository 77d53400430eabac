// Address, message and error mapping of the XMPP gateway, without a network.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import xml from '@xmpp/xml';
import { addressMapping, escapeLocal, formatJid, parseJid, unescapeLocal } from '../../src/xmpp/index.js';
import { conditionForStatus, errorReply, readStanzaError, statusForCondition, STANZAS_NS } from '../../src/xmpp/errors.js';
import { readSipMessage, sipHeaders } from '../../src/bridge/index.js';
import { messageStanza, readStanza, writtenMessage } from '../../src/xmpp/messages.js';
import { receiptRequests } from '../../src/xmpp/receipts.js';
import { guardedParser } from '../../src/xmpp/xml-guard.js';
import { SipMessage, parseUri } from '../../src/sip/index.js';

const separator = addressMapping({ convention: 'separator', separator: '*', gatewayDomain: 'gw.example', xmppDomain: 'sip.xmpp.example' });
const direct = addressMapping({ convention: 'rfc7247', separator: '*', gatewayDomain: 'xmpp.example', xmppDomain: 'sip.example' });
const jid = (text: string) => parseJid(text)!;

describe('XEP-0106 escaping', () => {
  test('characters a localpart forbids are escaped, and come back', () => {
    for (const [text, local] of [
      ["o'neil", 'o\\27neil'],
      ['a b', 'a\\20b'],
      ['user@host', 'user\\40host'],
      ['c:/path&<x>"', 'c\\3a\\2fpath\\26\\3cx\\3e\\22'],
      ['plain.user-1', 'plain.user-1'],
    ]) {
      assert.equal(escapeLocal(text), local);
      assert.equal(unescapeLocal(local), text);
    }
  });

  test('a backslash is escaped only where it would start an escape sequence', () => {
    assert.equal(escapeLocal('a\\b'), 'a\\b');
    assert.equal(escapeLocal('a\\20b'), 'a\\5c20b');
    assert.equal(unescapeLocal('a\\5c20b'), 'a\\20b');
  });

  test('what no localpart can carry is refused', () => {
    for (const text of ['', ' lead', 'trail ', 'nul\0', 'x'.repeat(1024)]) assert.equal(escapeLocal(text), undefined, JSON.stringify(text));
  });
});

describe('JIDs', () => {
  test('split at the first "/" for the resource and the first "@" before it', () => {
    assert.deepEqual(parseJid('romeo@Montague.Example/orchard/balcony'), { local: 'romeo', domain: 'montague.example', resource: 'orchard/balcony' });
    assert.deepEqual(parseJid('montague.example'), { local: '', domain: 'montague.example', resource: '' });
    assert.equal(formatJid({ local: 'a', domain: 'b.example', resource: 'r' }), 'a@b.example/r');
  });

  test('malformed ones are refused', () => {
    for (const text of ['', '@x.example', 'a@', 'a@bad_domain', 'a@x.example/\u0001']) assert.equal(parseJid(text), undefined, text);
  });
});

describe('separator convention (the seed xmpp module)', () => {
  test('sip:user*jabber.server@gateway_domain is user@jabber.server', () => {
    assert.deepEqual(separator.xmppRecipient(parseUri('sip:romeo*xmpp.example@gw.example')), { local: 'romeo', domain: 'xmpp.example', resource: '' });
    assert.deepEqual(separator.xmppRecipient(parseUri("sip:o'neil*xmpp.example@gw.example")), { local: 'o\\27neil', domain: 'xmpp.example', resource: '' });
    assert.equal(separator.xmppRecipient(parseUri('sip:romeo@gw.example')), undefined);
    assert.equal(separator.xmppRecipient(parseUri('sip:*xmpp.example@gw.example')), undefined);
  });

  test('XMPP users see sip:alice@sip.example as alice*sip.example@xmpp_domain', () => {
    assert.equal(formatJid(separator.xmppSender(parseUri('sip:alice@sip.example'))!), 'alice*sip.example@sip.xmpp.example');
    assert.equal(separator.sipRecipient(jid('alice*sip.example@sip.xmpp.example')), 'sip:alice@sip.example');
  });

  test('XMPP senders appear as sip:user*their.domain@gateway_domain, resource dropped', () => {
    assert.equal(separator.sipSender(jid('romeo@xmpp.example/phone')), 'sip:romeo*xmpp.example@gw.example');
    assert.equal(separator.sipSender(jid('o\\27neil@xmpp.example')), "sip:o'neil*xmpp.example@gw.example");
    assert.equal(separator.sipSender(jid('xmpp.example')), undefined);
  });

  test('a user part holding the separator splits at the last one', () => {
    const sender = separator.xmppSender(parseUri('sip:a*b@sip.example'))!;
    assert.equal(formatJid(sender), 'a*b*sip.example@sip.xmpp.example');
    assert.equal(separator.sipRecipient(sender), 'sip:a*b@sip.example');
  });

  test('characters SIP escapes and XMPP escapes differently survive the round trip', () => {
    const sender = separator.xmppSender(parseUri('sip:j%20doe@sip.example'))!;
    assert.equal(sender.local, 'j\\20doe*sip.example');
    assert.equal(separator.sipRecipient(sender), 'sip:j%20doe@sip.example');
  });
});

describe('rfc7247 convention (direct mapping)', () => {
  test('the same address on both sides', () => {
    assert.deepEqual(direct.xmppRecipient(parseUri('sip:romeo@xmpp.example')), { local: 'romeo', domain: 'xmpp.example', resource: '' });
    assert.equal(formatJid(direct.xmppSender(parseUri('sip:juliet@sip.example'))!), 'juliet@sip.example');
    assert.equal(direct.sipRecipient(jid('juliet@sip.example')), 'sip:juliet@sip.example');
    assert.equal(direct.sipSender(jid('romeo@xmpp.example/balcony')), 'sip:romeo@xmpp.example');
  });

  test('XEP-0106 escaping applies to the localpart', () => {
    assert.equal(direct.xmppRecipient(parseUri('sip:d%27artagnan@xmpp.example'))!.local, 'd\\27artagnan');
    assert.equal(direct.sipSender(jid('d\\27artagnan@xmpp.example')), "sip:d'artagnan@xmpp.example");
  });

  test('a sender of another domain than the component has no XMPP address', () => {
    assert.equal(direct.xmppSender(parseUri('sip:juliet@other.example')), undefined);
  });
});

function sipMessage(body: string | Buffer, headers: Array<[string, string]> = []): SipMessage {
  const message = new SipMessage({ method: 'MESSAGE', uri: 'sip:romeo*xmpp.example@gw.example', body: Buffer.from(body) });
  // Pushed as the parser does, values as received: the model would make a control character a space.
  message.headers.push(...[['call-id', 'abc@host'], ...headers].map(([name, value]) => ({ name: name!, value: value! })));
  return message;
}

describe('messages (RFC 7572)', () => {
  test('body, Subject, Content-Language and Call-ID become body, subject, xml:lang and thread', () => {
    const im = readSipMessage(sipMessage('<hi> & ]]>', [['content-type', 'text/plain; charset=UTF-8'], ['subject', 'S'], ['content-language', 'fr, en']]), 1000);
    assert.ok(!('status' in im));
    assert.deepEqual(im, { body: '<hi> & ]]>', subject: 'S', thread: 'abc@host', language: 'fr' });
    const stanza = messageStanza(im, { from: 'a@b', to: 'c@d', id: '1', type: 'chat' });
    assert.equal(
      stanza.toString(),
      '<message from="a@b" to="c@d" id="1" type="chat" xml:lang="fr"><subject>S</subject><body>&lt;hi&gt; &amp; ]]&gt;</body><thread>abc@host</thread></message>',
    );
  });

  test('the stanza written from a template is the element, escaped alike, and reads back as the same message', () => {
    const attrs = { from: 'alice*localhost@gw.example', to: "o\\27neil@xmpp.example", id: 'id-"1"&<2>', type: 'chat' };
    const im = { body: '<b>Tom & "Jerry"</b> \'x\' ]]> ok', subject: 'R&D <today>', thread: `a<b>"c'd@host`, language: 'en-GB' };
    for (const wanted of [undefined, { delivery: true, display: false }, { delivery: true, display: true }]) {
      const written = writtenMessage(im, attrs, wanted);
      const element = messageStanza(im, attrs, ...(wanted ? receiptRequests(wanted) : []));
      assert.equal(written.toString(), element.toString());
      assert.equal(written.attrs.to, attrs.to);
      assert.ok(written.is('message'));
    }
    // Through the parser the link reads with: the same message.
    const parser = new (guardedParser({ maxStanzaBytes: 65536, maxDepth: 10 }))();
    const read: xml.Element[] = [];
    parser.on('element', (element: xml.Element) => read.push(element));
    parser.write(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>${writtenMessage(im, attrs).toString()}`);
    assert.deepEqual(readStanza(read[0]!), im);
    assert.deepEqual({ ...read[0]!.attrs }, { ...attrs, 'xml:lang': 'en-GB' });
    // What an element would leave for the link to mend: carriage returns, and line ends in attributes, which XML would make spaces.
    assert.equal(writtenMessage({ body: 'a\r\nb' }, { ...attrs, id: 'x\ty\n' }).toString(), `<message from="${attrs.from}" to="${attrs.to}" id="x&#9;y&#10;" type="chat"><body>a&#13;\nb</body></message>`);
  });

  test('what XML or XMPP cannot carry is refused', () => {
    const refused = (message: SipMessage) => (readSipMessage(message, 10) as { status: number }).status;
    assert.equal(refused(sipMessage('x', [['content-type', 'text/html']])), 415);
    assert.equal(refused(sipMessage('x', [['content-type', 'text/plain;charset=iso-8859-1']])), 415);
    assert.equal(refused(sipMessage(Buffer.from([0xc3, 0x28]))), 415);
    assert.equal(refused(sipMessage('bell\u0007')), 400);
    assert.equal(refused(sipMessage('x', [['subject', 'nul\u0000']])), 400);
    assert.equal(refused(sipMessage('')), 400);
    assert.equal(refused(sipMessage('eleven bytes')), 413);
  });

  test('of several bodies, the one in the stanza language is taken', () => {
    const stanza = xml(
      'message',
      { 'xml:lang': 'en', type: 'chat' },
      xml('body', { 'xml:lang': 'de' }, 'Hallo'),
      xml('body', {}, 'Hello'),
      xml('subject', {}, 'multi\nline'),
    );
    const im = readStanza(stanza)!;
    assert.deepEqual(im, { body: 'Hello', subject: 'multi\nline', language: 'en' });
    assert.deepEqual(sipHeaders(im), [
      { name: 'subject', value: 'multi line' },
      { name: 'content-language', value: 'en' },
    ]);
    assert.equal(readStanza(xml('message', {}, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' }))), undefined);
  });
});

describe('errors (RFC 7247 §8)', () => {
  test('SIP statuses and stanza error conditions map both ways', () => {
    assert.equal(conditionForStatus(404), 'item-not-found');
    assert.equal(conditionForStatus(403), 'forbidden');
    assert.equal(conditionForStatus(480), 'recipient-unavailable');
    assert.equal(conditionForStatus(408), 'remote-server-timeout');
    assert.equal(conditionForStatus(503), 'service-unavailable');
    assert.equal(conditionForStatus(413), 'policy-violation');
    assert.equal(conditionForStatus(499), 'bad-request');
    assert.equal(statusForCondition('item-not-found'), 404);
    assert.equal(statusForCondition('service-unavailable'), 503);
    assert.equal(statusForCondition('recipient-unavailable'), 480);
    assert.equal(statusForCondition('no-such-condition'), 400);
  });

  test('an error reply swaps the addresses, keeps the id and names the condition', () => {
    const original = xml('message', { from: 'romeo@x/r', to: 'ghost*localhost@gw', id: 'm1', type: 'chat' }, xml('body', {}, 'hi'));
    const reply = errorReply(original, { condition: 'item-not-found', text: '404 Not Found' });
    assert.deepEqual(reply.attrs, { type: 'error', from: 'ghost*localhost@gw', to: 'romeo@x/r', id: 'm1' });
    assert.equal(reply.getChild('error')!.attrs.type, 'cancel');
    assert.ok(reply.getChild('error')!.getChild('item-not-found', STANZAS_NS));
    assert.deepEqual(readStanzaError(reply), { condition: 'item-not-found', text: '404 Not Found' });
  });
});
