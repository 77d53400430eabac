// The XMPP gateway in component mode against a real Prosody, with SIP users on Parley and XMPP
// users on Prosody: addresses, text, long bodies, errors both ways, a Prosody restart, bursts, and
// a wrong component secret.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type xml from '@xmpp/xml';
import { STANZAS_NS } from '../../src/xmpp/errors.js';
import { eventually } from '../support/eventually.js';
import { Prosody } from '../support/prosody.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA, waitForSipMessages } from '../support/ua.js';
import { type ComponentGateway, componentConfig, gatewayJid, gatewaySipAddress, startComponentGatewayWith, xmppLinkOnline } from '../support/xmpp-gateway.js';
import type { XmppUser } from '../support/xmpp-user.js';

let prosody: Prosody;
let parley: TestServer;
let alice: TestUA;
let romeo: XmppUser;
let juliet: XmppUser;

/** How SIP users write to an XMPP user, and how XMPP users write to alice (the separator convention). */
const sipAddressOf = (user: string) => gatewaySipAddress(prosody, user);
const aliceJid = () => gatewayJid(prosody, 'alice');

const bodyOf = (stanza: xml.Element) => stanza.getChildText('body') ?? '';

let gateway: ComponentGateway;

before(async () => {
  gateway = await startComponentGatewayWith({ xmppUsers: ['romeo', 'juliet'], sipUsers: ['alice'] });
  ({ prosody, parley, xmppUsers: [romeo, juliet], sipUsers: [alice] } = gateway);
});

after(() => gateway?.stop());

describe('messages between SIP and XMPP users', () => {
  test('a SIP MESSAGE reaches the XMPP user from the mapped address, answered 202', async () => {
    const response = await alice.message(sipAddressOf('romeo'), 'Hello Romeo', [
      { name: 'subject', value: 'Greetings' },
      { name: 'content-language', value: 'it' },
    ]);
    assert.equal(response.status, 202);
    const stanza = await romeo.waitForMessage((m) => bodyOf(m) === 'Hello Romeo');
    assert.equal(stanza.attrs.from, aliceJid());
    assert.equal(stanza.attrs.to, `romeo@${prosody.domain}`);
    assert.equal(stanza.attrs.type, 'chat');
    assert.equal(stanza.attrs['xml:lang'], 'it');
    assert.equal(stanza.getChildText('subject'), 'Greetings');
    assert.equal(stanza.getChildText('thread'), response.callId);
  });

  test('an XMPP message reaches the SIP user from the mapped address', async () => {
    await romeo.send(aliceJid(), 'Hello Alice', { type: 'normal', 'xml:lang': 'fr' });
    const [message] = await waitForSipMessages(alice, 1, (m) => m.body.toString() === 'Hello Alice');
    assert.equal(message!.from.uri, sipAddressOf('romeo'));
    assert.equal(message!.to.uri, 'sip:alice@localhost');
    assert.equal(message!.get('content-type'), 'text/plain;charset=utf-8');
    assert.equal(message!.get('content-language'), 'fr');
  });

  test('text arrives exactly both ways: emoji, right-to-left scripts, XML specials', async () => {
    const text = 'Emoji 🎉👩‍👩‍👧 · עברית ومرحبا · <b>&amp; & ]]> "q" \'a\' · line\nbreak\ttab';
    assert.equal((await alice.message(sipAddressOf('romeo'), `sip ${text}`)).status, 202);
    await romeo.waitForMessage((m) => bodyOf(m) === `sip ${text}`);
    await romeo.send(aliceJid(), `xmpp ${text}`);
    await waitForSipMessages(alice, 1, (m) => m.body.toString('utf8') === `xmpp ${text}`);
  });

  test('a subject and a Call-ID (the thread) with XML specials arrive as they were written', async () => {
    const subject = `R&D <"today"> 'x' ]]>`;
    const request = alice.build('MESSAGE', sipAddressOf('romeo'), { body: 'specials around it', headers: [{ name: 'subject', value: subject }] });
    const callId = `a<b>"c'd@host`;
    request.headers.find((header) => header.name === 'call-id')!.value = callId;
    assert.equal((await alice.send(request)).status, 202);
    const stanza = await romeo.waitForMessage((m) => bodyOf(m) === 'specials around it');
    assert.equal(stanza.getChildText('subject'), subject);
    assert.equal(stanza.getChildText('thread'), callId);
  });

  test('a carriage return from SIP is not turned into a line feed', async () => {
    assert.equal((await alice.message(sipAddressOf('romeo'), 'crlf\r\nend')).status, 202);
    await romeo.waitForMessage((m) => bodyOf(m) === 'crlf\r\nend');
  });

  test('16 KiB bodies are carried whole both ways', async () => {
    const long = 'ab€🎉 '.repeat(1700);
    assert.ok(Buffer.byteLength(long) > 16 * 1024);
    assert.equal((await alice.message(sipAddressOf('romeo'), `sip ${long}`)).status, 202);
    await romeo.waitForMessage((m) => bodyOf(m) === `sip ${long}`);
    await romeo.send(aliceJid(), `xmpp ${long}`);
    await waitForSipMessages(alice, 1, (m) => m.body.toString('utf8') === `xmpp ${long}`);
  });
});

describe('errors', () => {
  test('a message to an XMPP user that does not exist comes back as an error notification', async () => {
    const nobody = sipAddressOf('nobody');
    assert.equal((await alice.message(nobody, 'anyone there?')).status, 202);
    const [notification] = await waitForSipMessages(alice, 1, (m) => m.from.uri === nobody);
    assert.match(notification!.body.toString(), /^Your message to nobody@xmpp\.test was not delivered: XMPP error service-unavailable.*\(503\)\.\n> anyone there\?$/);
    assert.equal(parley.server.xmpp!.stats.stanzaErrors, 1);
  });

  test('an XMPP message to an unknown SIP user gets item-not-found back', async () => {
    const ghost = `ghost*localhost@${prosody.componentDomain}`;
    await romeo.send(ghost, 'boo', { id: 'to-ghost' });
    const error = await romeo.waitForMessage((m) => m.attrs.id === 'to-ghost');
    assert.equal(error.attrs.type, 'error');
    assert.equal(error.attrs.from, ghost);
    assert.ok(error.getChild('error')!.getChild('item-not-found', STANZAS_NS), error.toString());
  });

  test('an XMPP address that maps to no SIP address gets jid-malformed back', async () => {
    await romeo.send(`no-separator@${prosody.componentDomain}`, 'hi', { id: 'malformed' });
    const error = await romeo.waitForMessage((m) => m.attrs.id === 'malformed');
    assert.ok(error.getChild('error')!.getChild('jid-malformed', STANZAS_NS), error.toString());
  });

  test('what XMPP cannot carry is refused with the matching SIP status', async () => {
    const romeoAddress = sipAddressOf('romeo');
    const html = await alice.message(romeoAddress, '<p>hi</p>', [], 'text/html');
    assert.equal(html.status, 415);
    assert.equal(html.get('accept'), 'text/plain');
    assert.equal((await alice.message(romeoAddress, 'bell \u0007')).status, 400);
    assert.equal((await alice.message(romeoAddress, Buffer.from([0x68, 0xc3, 0x28]))).status, 415);
    assert.equal((await alice.message(`sip:romeo@${prosody.componentDomain}`, 'no separator')).status, 404);
    assert.equal((await alice.message(`sip:bob*${prosody.componentDomain}@${prosody.componentDomain}`, 'loop')).status, 482);
  });
});

describe('bursts', () => {
  const COUNT = 500;

  test(`${COUNT} messages from SIP arrive complete and in order`, async () => {
    const responses = await Promise.all(Array.from({ length: COUNT }, (_, i) => alice.message(sipAddressOf('juliet'), `burst ${i}`)));
    assert.ok(responses.every((response) => response.status === 202));
    const received = await juliet.waitForMessages(COUNT, (m) => bodyOf(m).startsWith('burst '), 30_000);
    assert.deepEqual(received.map(bodyOf), Array.from({ length: COUNT }, (_, i) => `burst ${i}`));
  });

  test(`${COUNT} messages from XMPP arrive complete and in order`, async () => {
    for (let i = 0; i < COUNT; i++) await juliet.send(aliceJid(), `xburst ${i}`);
    const received = await waitForSipMessages(alice, COUNT, (m) => m.body.toString().startsWith('xburst '), 30_000);
    assert.deepEqual(received.map((m) => m.body.toString()), Array.from({ length: COUNT }, (_, i) => `xburst ${i}`));
  });
});

describe('Prosody restart', () => {
  test('messages sent while the XMPP server restarts are queued and delivered, none lost', async () => {
    const gateway = parley.server.xmpp!;
    const reconnectsBefore = gateway.stats.reconnects;
    for (let i = 0; i < 5; i++) assert.equal((await alice.message(sipAddressOf('romeo'), `restart ${i}`)).status, 202);
    await romeo.waitForMessages(5, (m) => bodyOf(m).startsWith('restart '));
    // Confirmed by Prosody (a ping answered after them), so the reconnection does not write them again.
    await eventually(() => gateway.stats.unconfirmed === 0 || undefined, 'the first five confirmed');

    await prosody.stop();
    await eventually(() => gateway.stats.state === 'down' || undefined, 'XMPP link down');
    for (let i = 5; i < 10; i++) assert.equal((await alice.message(sipAddressOf('romeo'), `restart ${i}`)).status, 202);
    assert.equal(gateway.stats.queued, 5);

    await prosody.start();
    await xmppLinkOnline(parley);
    assert.ok(gateway.stats.reconnects > reconnectsBefore);
    const received = await romeo.waitForMessages(10, (m) => bodyOf(m).startsWith('restart '), 15_000);
    assert.deepEqual(received.map(bodyOf), Array.from({ length: 10 }, (_, i) => `restart ${i}`));

    await eventually(() => romeo.online || undefined, 'romeo back online');
    await romeo.send(aliceJid(), 'after the restart');
    await waitForSipMessages(alice, 1, (m) => m.body.toString() === 'after the restart');
  });
});

describe('Prosody killed', () => {
  test('messages Prosody had not read when it died are written again once it is back: every one arrives', async () => {
    const gateway = parley.server.xmpp!;
    await xmppLinkOnline(parley);
    // Frozen, Prosody reads nothing: what the gateway writes now waits in its socket buffer and dies with it.
    process.kill(prosody.pid!, 'SIGSTOP');
    for (let i = 0; i < 5; i++) assert.equal((await alice.message(sipAddressOf('romeo'), `killed ${i}`)).status, 202);
    assert.equal(gateway.stats.state, 'online');
    await prosody.stop(0);
    await prosody.start();
    await xmppLinkOnline(parley);
    const received = await romeo.waitForMessages(5, (m) => bodyOf(m).startsWith('killed '), 15_000);
    assert.deepEqual(received.map(bodyOf), Array.from({ length: 5 }, (_, i) => `killed ${i}`));
  });
});

describe('wrong component secret', () => {
  test('is reported clearly, without the secret, and Parley stays up', async () => {
    const secret = 'not-the-component-secret';
    const misconfigured = await startServer({ xmpp: componentConfig(prosody, { xmpp_password: secret }) });
    try {
      await eventually(() => misconfigured.logs.find((line) => line.includes('component handshake refused: check xmpp_password')), 'handshake refusal logged');
      assert.ok(!misconfigured.logs.some((line) => line.includes(secret)), 'the secret is not logged');
      assert.equal(misconfigured.server.xmpp!.stats.state, 'down');
      const bob = await TestUA.create({ proto: 'tcp', user: 'bob', server: misconfigured.tcp });
      const options = await bob.send(bob.build('OPTIONS', 'sip:localhost'));
      bob.close();
      assert.equal(options.status, 200);
    } finally {
      await misconfigured.stop();
    }
    await xmppLinkOnline(parley);
  });
});
