// Per-user XMPP gateway beyond one-to-one chat, against a real Prosody with a MUC component:
// presence both ways through the user's own account (#allow for a contact's request, PUBLISH seen
// by the contact, SUBSCRIBE to a contact's address), group chats joined with #join at the jabber
// seed's nick*room*server address, purple's mapping of local users to their linked accounts, an
// XMPP transport (the seed's aliases, played by a component of the same Prosody) with gateway
// detection, and a Prosody restart in the middle of a conversation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { component } from '@xmpp/component';
import xml from '@xmpp/xml';
import { eventually } from '../support/eventually.js';
import { GATEWAY, bodyOf, gatewayConfig, sessionOnline, xmppLinkCommand } from '../support/gateway.js';
import { Watch, pidf, publish, stateIn } from '../support/presence.js';
import { Prosody } from '../support/prosody.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA, waitForSipMessage } from '../support/ua.js';
import { XmppUser } from '../support/xmpp-user.js';

const ALIAS = 'xmpp.localhost';
const MUC = 'http://jabber.org/protocol/muc';

let prosody: Prosody;
let parley: TestServer;
let alice: TestUA;
let bob: TestUA;
let juliet: XmppUser;

const textOf = (stanza: xml.Element) => stanza.getChildText('body') ?? '';

async function link(ua: TestUA, user: string, password: string): Promise<number> {
  const response = await ua.message(GATEWAY, xmppLinkCommand(prosody, user, password));
  assert.equal(response.status, 200);
  const accounts = await parley.server.store.gatewayAccounts.listFor(ua.aor.replace(/;.*$/, ''));
  return accounts.find((a) => a.extUser === `${user}@${prosody.domain}`)!.id;
}

const online = (id: number) => sessionOnline(parley, id, `session ${id} online`);

let aliceAccount = 0;

before(async () => {
  prosody = await Prosody.start();
  await Promise.all([prosody.register('alice', 'alice-xmpp'), prosody.register('bob', 'bob-xmpp'), prosody.register('juliet', 'password'), prosody.register('romeo', 'romeo-xmpp')]);
  juliet = await XmppUser.connect(prosody, 'juliet');
  await juliet.fetchRoster();
  parley = await startServer({
    presence: { enabled: true },
    // Presence requests of the test UA carry no credentials: senders are taken as they say they are.
    gateway: { ...gatewayConfig, allow_unauthenticated: true, aliases: [`${prosody.componentDomain}=%`] },
  });
  alice = await TestUA.create({ proto: 'tcp', user: 'alice', server: parley.tcp });
  bob = await TestUA.create({ proto: 'tcp', user: 'bob', server: parley.tcp });
  aliceAccount = await link(alice, 'alice', 'alice-xmpp');
  assert.equal((await alice.register()).status, 200);
  await online(aliceAccount);
});

after(async () => {
  alice?.close();
  bob?.close();
  await juliet?.stop();
  await parley?.stop();
  await prosody?.stop();
});

describe('a contact who is no SIP user', () => {
  test('writes first, and the SIP user\'s answer to the address it came from reaches it', async () => {
    const romeo = await XmppUser.connect(prosody, 'romeo', 'romeo-xmpp');
    try {
      await romeo.send(`alice@${prosody.domain}`, 'Romeo here, out of the blue');
      const first = await waitForSipMessage(alice, (m) => bodyOf(m) === 'Romeo here, out of the blue', 'romeo\'s first message');
      assert.equal(first.from.uri, `sip:romeo*${prosody.domain}@${ALIAS}`);
      assert.equal((await alice.message(first.from.uri, 'Hello stranger')).status, 202);
      const answer = await romeo.waitForMessage((m) => textOf(m) === 'Hello stranger');
      assert.match(answer.attrs.from!, new RegExp(`^alice@${prosody.domain.replace(/\./g, '\\.')}/`));
    } finally {
      await romeo.stop();
    }
  });
});

describe('presence through the linked account', () => {
  const aliceJid = () => `alice@${prosody.domain}`;

  test('a contact\'s subscription request reaches the SIP user, and #allow completes it', async () => {
    const mark = juliet.presences.length;
    await juliet.sendPresence({ to: aliceJid(), type: 'subscribe' });
    const request = await waitForSipMessage(alice, (m) => m.from.uri === GATEWAY && bodyOf(m).includes(`juliet@${prosody.domain} asks to see`), 'subscription request notice');
    assert.match(bodyOf(request), new RegExp(`#allow juliet@${prosody.domain}`));
    assert.equal((await alice.message(GATEWAY, `#allow juliet@${prosody.domain}`)).status, 200);
    await juliet.waitForPresence((p) => p.attrs.from === aliceJid() && p.attrs.type === 'subscribed', mark);
    // Approved: the server now shows juliet alice's available presence.
    await juliet.waitForPresence((p) => p.attrs.from?.startsWith(`${aliceJid()}/`) === true && p.attrs.type === undefined, mark);
  });

  test('PUBLISH away with a note: the XMPP contact sees away and the note', async () => {
    const mark = juliet.presences.length;
    const response = await publish(alice, { body: pidf(alice.aor, 'open', { note: 'At lunch', activities: ['away'] }), expires: 600 });
    assert.equal(response.status, 200);
    const seen = await juliet.waitForPresence((p) => p.attrs.from?.startsWith(`${aliceJid()}/`) === true && p.getChildText('show') === 'away', mark);
    assert.equal(seen.getChildText('status'), 'At lunch');
  });

  test('SUBSCRIBE to a contact\'s address: NOTIFY open once the contact approves, closed when it logs out', async () => {
    const mark = juliet.presences.length;
    const { response, watch } = await Watch.subscribe(alice, `sip:juliet*${prosody.domain}@${ALIAS}`, { expires: 600 });
    assert.equal(response.status, 200);
    // The account asks juliet for a subscription on the user's behalf; juliet approves it.
    await juliet.waitForPresence((p) => p.attrs.from === aliceJid() && p.attrs.type === 'subscribe', mark);
    await juliet.sendPresence({ to: aliceJid(), type: 'subscribed' });
    await juliet.sendPresence({}, xml('status', {}, 'Reading'));
    const open = await eventually(async () => {
      const notify = await watch!.nextNotify(10_000);
      return stateIn(notify).notes.includes('Reading') ? notify : undefined;
    }, 'NOTIFY open with the contact\'s status');
    assert.equal(stateIn(open).basic, 'open');
    await juliet.sendPresence({ type: 'unavailable' });
    const closed = await eventually(async () => {
      const notify = await watch!.nextNotify(10_000);
      return stateIn(notify).basic === 'closed' ? notify : undefined;
    }, 'NOTIFY closed');
    assert.equal(stateIn(closed).basic, 'closed');
    await juliet.sendPresence({});
  });
});

describe('group chats', () => {
  const room = () => `lobby@conference.${prosody.domain}`;
  const roomAddress = () => `sip:lobby*conference.${prosody.domain}@${ALIAS}`;

  test('#join at nick*room*server enters the room, and the user is told from the room\'s address', async () => {
    const mark = juliet.presences.length;
    await juliet.sendPresence({ to: `${room()}/Juliet` }, xml('x', { xmlns: MUC }));
    await juliet.waitForPresence((p) => p.attrs.from === `${room()}/Juliet`, mark);
    const response = await alice.message(`sip:Alice*lobby*conference.${prosody.domain}@${ALIAS}`, '#join');
    assert.equal(response.status, 202);
    const notice = await waitForSipMessage(alice, (m) => m.from.uri === roomAddress() && bodyOf(m).startsWith('You are in'), 'joined notice');
    assert.equal(bodyOf(notice), `You are in ${room()} as Alice. Write to this address to talk there; send #leave to leave.`);
    await juliet.waitForPresence((p) => p.attrs.from === `${room()}/Alice`, mark);
  });

  test('room messages both ways: the speaker\'s nick on what arrives, the user\'s nick on what is sent', async () => {
    await juliet.send(room(), 'Hello room <&> ☀', { type: 'groupchat' });
    const heard = await waitForSipMessage(alice, (m) => m.from.uri === roomAddress() && bodyOf(m).includes('Hello room'), 'room message');
    assert.equal(bodyOf(heard), '<Juliet> Hello room <&> ☀');
    assert.equal(heard.from.displayName, 'Juliet');
    assert.equal((await alice.message(roomAddress(), 'Hi all — ünïcödé')).status, 202);
    const said = await juliet.waitForMessage((m) => m.attrs.type === 'groupchat' && textOf(m) === 'Hi all — ünïcödé');
    assert.equal(said.attrs.from, `${room()}/Alice`);
    // Her own message echoed by the room does not come back to her.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(alice.received.filter((m) => m.method === 'MESSAGE' && bodyOf(m).includes('Hi all')).length, 0);
  });

  test('#leave leaves the room; writing there afterwards is refused with a reason', async () => {
    const mark = juliet.presences.length;
    const response = await alice.message(roomAddress(), '#leave');
    assert.equal(response.status, 200);
    await juliet.waitForPresence((p) => p.attrs.from === `${room()}/Alice` && p.attrs.type === 'unavailable', mark);
    await waitForSipMessage(alice, (m) => m.from.uri === roomAddress() && bodyOf(m) === `You left ${room()}.`, 'left notice');
    const refused = await alice.message(`sip:Alice*lobby*conference.${prosody.domain}@${ALIAS}`, 'anyone?');
    assert.equal(refused.status, 480);
    assert.match(refused.reason, /send #join to this address first/);
  });
});

describe('purple mapping of local users', () => {
  let bobXmpp: XmppUser;
  let bobAccount = 0;

  before(async () => {
    bobXmpp = await XmppUser.connect(prosody, 'bob', 'bob-xmpp');
    bobAccount = await link(bob, 'bob', 'bob-xmpp');
  });

  after(async () => {
    await bobXmpp?.stop();
  });

  test('a MESSAGE to a local user who is not registered goes to his linked account from the sender\'s own', async () => {
    assert.ok(bobAccount > 0);
    const response = await alice.message('sip:bob@localhost', 'Bob, are you on XMPP?');
    assert.equal(response.status, 202);
    const stanza = await bobXmpp.waitForMessage((m) => textOf(m) === 'Bob, are you on XMPP?');
    assert.match(stanza.attrs.from!, new RegExp(`^alice@${prosody.domain.replace(/\./g, '\\.')}/`));
  });

  test('his answer from that account arrives as from the SIP user', async () => {
    await bobXmpp.send(`alice@${prosody.domain}`, 'Yes, here.');
    const answer = await waitForSipMessage(alice, (m) => bodyOf(m) === 'Yes, here.', 'answer from bob');
    assert.equal(answer.from.uri, 'sip:bob@localhost');
  });

  test('once he registers on SIP, messages to him go to SIP again', async () => {
    assert.equal((await bob.register()).status, 200);
    const response = await alice.message('sip:bob@localhost', 'Now on SIP');
    assert.equal(response.status, 200);
    await waitForSipMessage(bob, (m) => bodyOf(m) === 'Now on SIP', 'message on SIP');
  });
});

describe('an XMPP transport (aliases)', () => {
  const transport = () => prosody.componentDomain;
  const received: xml.Element[] = [];
  let entity: ReturnType<typeof component>;

  before(async () => {
    entity = component({ service: `xmpp://127.0.0.1:${prosody.componentPort}`, domain: transport(), password: prosody.componentSecret });
    entity.on('error', () => {});
    entity.on('stanza', (stanza: xml.Element) => received.push(stanza));
    await entity.start();
  });

  after(async () => {
    await entity?.stop().catch(() => {});
  });

  const fromTransport = (stanza: xml.Element) => entity.send(stanza);

  test('bob*hotmail.com@TRANSPORT goes to bob%hotmail.com@TRANSPORT from the user\'s account, and back', async () => {
    assert.equal((await alice.message(`sip:bob*hotmail.com@${transport()}`, 'via the transport')).status, 202);
    const stanza = await eventually(() => received.find((s) => s.is('message') && textOf(s) === 'via the transport'), 'message at the transport');
    assert.equal(stanza.attrs.to, `bob%hotmail.com@${transport()}`);
    assert.match(stanza.attrs.from!, new RegExp(`^alice@${prosody.domain.replace(/\./g, '\\.')}/`));
    await fromTransport(xml('message', { from: `bob%hotmail.com@${transport()}`, to: stanza.attrs.from, type: 'chat' }, xml('body', {}, 'answer via the transport')));
    const answer = await waitForSipMessage(alice, (m) => bodyOf(m) === 'answer via the transport', 'answer from the transport');
    assert.equal(answer.from.uri, `sip:bob*hotmail.com@${transport()}`);
  });

  test('a transport that said it is offline: 480 with its reason, until it is back', async () => {
    const aliceFull = received.find((s) => s.is('message'))!.attrs.from!;
    await fromTransport(xml('presence', { from: transport(), to: aliceFull, type: 'unavailable' }, xml('status', {}, 'MSN is down')));
    const refused = await eventually(async () => {
      const response = await alice.message(`sip:bob*hotmail.com@${transport()}`, 'anyone?');
      return response.status === 480 ? response : undefined;
    }, '480 from a transport that is down');
    assert.equal(refused.reason, `Temporarily Unavailable (the ${transport()} transport is offline: MSN is down)`);
    await fromTransport(xml('presence', { from: transport(), to: aliceFull }));
    await eventually(async () => (await alice.message(`sip:bob*hotmail.com@${transport()}`, 'back?')).status === 202 || undefined, '202 once the transport is back');
  });
});

describe('XMPP server restart', () => {
  test('the session comes back by itself and a message sent meanwhile is delivered', async () => {
    await prosody.stop();
    await eventually(() => parley.server.gateway!.sessionState(aliceAccount) === 'connecting' || undefined, 'session lost');
    assert.equal((await alice.message(`sip:juliet*${prosody.domain}@${ALIAS}`, 'sent while the server was down')).status, 202);
    await prosody.start();
    await online(aliceAccount);
    await eventually(() => juliet.online || undefined, 'juliet back online', 15_000);
    await juliet.waitForMessage((m) => textOf(m) === 'sent while the server was down', 20_000);
  });
});
