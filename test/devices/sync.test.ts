// Own-message sync: what a user sends from one device reaches the user's other devices as a copy
// marked X-Parley-Copy: sent, From the user and To the peer; the sending device gets none, a device
// away gets it when it registers again, in order with what it received; receipts, typing and
// Expires: 0 are not copied; a domain can switch it off.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA, udpAgents } from '../support/ua.js';
import { killAll, startParley } from '../support/process.js';
import { contactParam, newInstance, registerDevice } from './devices.js';
import { command } from '../imc/room-helpers.js';
import { eventually } from '../support/eventually.js';
import { xmppComponentServer } from '../support/xmpp-peer.js';
import { startHttpStandIn, type StandIn } from '../support/push-providers.js';
import type { SipMessage } from '../../src/sip/index.js';

let s: TestServer;
/** Stands for the next hop towards other domains (relay.outbound_proxy): it takes every request with 200. */
let proxy: TestUA;
/** Stands for a push provider (a webhook). */
let hook: StandIn;
const agent = udpAgents();
before(async () => {
  // It answers where its server is: Parley, once started.
  const parleyAddress = { host: '127.0.0.1', port: 0 };
  proxy = await TestUA.create({ user: 'proxy', server: parleyAddress });
  hook = await startHttpStandIn();
  s = await startServer({
    push: { enabled: true, attempts: 1, webhook_url: `${hook.url}/wake?call=$call_id` },
    domains: ['localhost', 'quiet.test'],
    relay: { accept_timeout: 1, outbound_proxy: `sip:127.0.0.1:${proxy.localPort}`, sync_sent_domains: { 'quiet.test': false } } as never,
  });
  parleyAddress.port = s.udp.port;
});
after(async () => {
  proxy.close();
  await s.stop();
  await hook.close();
  killAll();
});

const messages = (ua: TestUA) => ua.received.filter((m) => m.method === 'MESSAGE');
const bodies = (ua: TestUA) => messages(ua).map((m) => m.body.toString());
const isCopy = (m: SipMessage) => m.get('x-parley-copy') === 'sent';

/** `user` (of `domain`) on a phone and a laptop, each with its own instance, both registered, and bob. */
async function twoDevices(user: string, domain = 'localhost') {
  const make = async () => {
    const ua = await TestUA.create({ user, domain, server: s.udp });
    after(() => ua.close());
    return ua;
  };
  const phone = await make();
  const laptop = await make();
  const bob = await agent(`${user}-bob`, s.udp);
  const phoneInstance = newInstance();
  const laptopInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  assert.equal((await bob.register()).status, 200);
  return { phone, laptop, bob, phoneInstance, laptopInstance, aor: `sip:${user}@${domain}` };
}

test('a message sent from one device reaches the peer, and the other device as a copy marked sent, From the user and To the peer; the sender gets none', async () => {
  const { phone, laptop, bob, phoneInstance, aor } = await twoDevices('amy');
  const toBob = bob.waitForRequest((m) => m.method === 'MESSAGE');
  const copy = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  const sent = phone.build('MESSAGE', bob.aor, { body: 'hi bob', headers: [{ name: 'date', value: 'Sun, 06 Dec 2026 18:00:00 GMT' }] });
  assert.equal((await phone.send(sent)).status, 200);
  const original = await toBob;
  assert.equal(original.body.toString(), 'hi bob');
  assert.equal(original.has('x-parley-copy'), false, 'the peer gets the message as it was sent');

  const copied = await copy;
  assert.equal(copied.body.toString(), 'hi bob');
  assert.equal(copied.get('x-parley-copy'), 'sent');
  assert.match(copied.get('from')!, new RegExp(`^<${aor}>;tag=`));
  assert.equal(copied.get('to'), `<${bob.aor}>`);
  assert.equal(copied.get('date'), 'Sun, 06 Dec 2026 18:00:00 GMT');
  assert.notEqual(copied.callId, sent.callId, 'a request of its own, not the one the phone sent');
  assert.deepEqual(bodies(phone), [], 'the sending device gets no copy');
  const kept = await s.server.store.deliveries.pendingCounts('amy@localhost');
  assert.deepEqual(kept.filter(({ device }) => device === phoneInstance), [], 'nothing kept for the sender');

  // Bob's answer reaches both devices, marked as nothing.
  const answers = [phone.waitForRequest((m) => m.method === 'MESSAGE'), laptop.waitForRequest((m) => m.body.toString() === 'hi amy')];
  assert.equal((await bob.message(aor, 'hi amy')).status, 200);
  for (const answer of await Promise.all(answers)) {
    assert.equal(answer.body.toString(), 'hi amy');
    assert.equal(isCopy(answer), false);
  }
  assert.deepEqual(bodies(laptop), ['hi bob', 'hi amy']);
});

test('a device asleep when the user sent gets the copy when it registers again, in order with what it received meanwhile', async () => {
  const { phone, laptop, bob, laptopInstance, aor } = await twoDevices('ben');
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, expires: 0 })).status, 200);
  assert.equal((await bob.message(aor, 'one from bob')).status, 200);
  assert.equal((await phone.message(bob.aor, 'one from ben')).status, 200);
  assert.equal((await bob.message(aor, 'two from bob')).status, 200);
  assert.deepEqual(bodies(phone), ['one from bob', 'two from bob']);

  const last = laptop.waitForRequest((m) => m.body.toString() === 'two from bob');
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  await last;
  assert.deepEqual(messages(laptop).map((m) => `${m.body.toString()}${isCopy(m) ? ' (sent)' : ''}`), ['one from bob', 'one from ben (sent)', 'two from bob']);
});

test('a copy wakes no device through push; the away device gets it when it registers', async () => {
  const { phone, laptop, bob, laptopInstance, aor } = await twoDevices('joy');
  const push = ';pn-provider=acme;pn-prid=token-joy;pn-param=app1';
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, uriParams: push })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, uriParams: push, expires: 0 })).status, 200);
  const before = hook.requests.length;
  assert.equal((await phone.message(bob.aor, 'not worth a push')).status, 200);
  // Bob's message to joy, sent after, is pushed: by then a push for the copy would have been asked for.
  const pushed = hook.nextRequest();
  const fromBob = bob.build('MESSAGE', aor, { body: 'worth a push' });
  assert.equal((await bob.send(fromBob)).status, 200, 'the phone took it');
  assert.equal((await pushed).path, `/wake?call=${encodeURIComponent(fromBob.callId)}`);
  assert.equal(hook.requests.length, before + 1, 'the copy pushed nothing');

  const last = laptop.waitForRequest((m) => m.body.toString() === 'worth a push');
  assert.equal((await registerDevice(laptop, { instance: laptopInstance, uriParams: push })).status, 200);
  await last;
  assert.deepEqual(messages(laptop).map((m) => `${m.body.toString()}${isCopy(m) ? ' (sent)' : ''}`), ['not worth a push (sent)', 'worth a push']);
});

test('receipts (IMDN, also in CPIM, deflated or not), is-composing (also in CPIM) and Expires: 0 are not copied', async () => {
  const { phone, laptop, bob } = await twoDevices('cal');
  const imdn = '<?xml version="1.0"?><imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>x1</message-id><delivery-notification><status><delivered/></status></delivery-notification></imdn>';
  assert.equal((await phone.message(bob.aor, imdn, [], 'message/imdn+xml')).status, 200);
  const cpim = `From: <sip:cal@localhost>\r\nTo: <${bob.aor}>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\nContent-Type: message/imdn+xml\r\n\r\n${imdn}`;
  assert.equal((await phone.message(bob.aor, cpim, [], 'message/cpim')).status, 200);
  const deflated = phone.build('MESSAGE', bob.aor, { body: deflateSync(cpim), contentType: 'message/cpim', headers: [{ name: 'content-encoding', value: 'deflate' }] });
  assert.equal((await phone.send(deflated)).status, 200);
  const composing = '<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>';
  assert.equal((await phone.message(bob.aor, composing, [], 'application/im-iscomposing+xml')).status, 200);
  const wrapped = `From: <sip:cal@localhost>\r\nTo: <${bob.aor}>\r\n\r\nContent-Type: application/im-iscomposing+xml\r\n\r\n${composing}`;
  assert.equal((await phone.message(bob.aor, wrapped, [], 'message/cpim')).status, 200);
  assert.equal((await phone.message(bob.aor, 'now or never', [{ name: 'expires', value: '0' }])).status, 200);
  const copy = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await phone.message(bob.aor, 'a real one')).status, 200);
  assert.equal((await copy).body.toString(), 'a real one');
  assert.deepEqual(bodies(laptop), ['a real one']);
  assert.equal(messages(bob).length, 7, 'bob got all seven');
});

test('a note to the user\'s own address reaches the other device once, as the message itself', async () => {
  const { phone, laptop, bob, aor } = await twoDevices('kim');
  const note = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await phone.message(aor, 'note to self')).status, 200);
  assert.equal(isCopy(await note), false);
  const next = laptop.waitForRequest((m) => m.body.toString() === 'from bob');
  assert.equal((await bob.message(aor, 'from bob')).status, 200);
  await next;
  assert.deepEqual(bodies(laptop), ['note to self', 'from bob']);
});

test('relay.sync_sent_domains switches copies off for a domain', async () => {
  const { phone, laptop, bob, aor } = await twoDevices('dee', 'quiet.test');
  assert.equal((await phone.message(bob.aor, 'not copied')).status, 200);
  const next = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await bob.message(aor, 'from bob')).status, 200);
  await next;
  assert.deepEqual(bodies(laptop), ['from bob']);
  assert.deepEqual(await s.server.store.deliveries.pendingCounts('dee@quiet.test'), []);
});

test('the sending device is known by the +sip.instance or the GRUU of its Contact; one registered without an instance by the flow it sends on', async () => {
  const { phone, laptop, bob, phoneInstance, laptopInstance } = await twoDevices('eve');
  // The phone sends from another socket, naming itself in Contact.
  const elsewhere = await agent('eve', s.udp);
  const copy = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  const contact = { name: 'contact', value: `<${elsewhere.contact}>;+sip.instance="<${phoneInstance}>"` };
  assert.equal((await elsewhere.message(bob.aor, 'from the phone, elsewhere', [contact])).status, 200);
  assert.equal((await copy).body.toString(), 'from the phone, elsewhere');
  assert.deepEqual(bodies(phone), []);

  // The laptop, registered with GRUUs, sends from elsewhere with its public GRUU as Contact.
  const gruu = contactParam(await registerDevice(laptop, { instance: laptopInstance, supported: 'gruu' }), laptop.contact, 'pub-gruu');
  assert.ok(gruu);
  const toPhone = phone.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await elsewhere.message(bob.aor, 'from the laptop, elsewhere', [{ name: 'contact', value: `<${gruu}>` }])).status, 200);
  assert.equal((await toPhone).body.toString(), 'from the laptop, elsewhere');
  assert.deepEqual(bodies(laptop), ['from the phone, elsewhere']);

  // A desk phone without an instance: the phone and the laptop get the copy, the desk none.
  const desk = await agent('eve', s.udp);
  assert.equal((await desk.register()).status, 200);
  const copies = [phone.waitForRequest((m) => m.method === 'MESSAGE'), laptop.waitForRequest((m) => m.body.toString() === 'from the desk')];
  assert.equal((await desk.message(bob.aor, 'from the desk')).status, 200);
  for (const copied of await Promise.all(copies)) assert.equal(isCopy(copied), true);
  assert.deepEqual(bodies(desk), []);
});

test('a message to another domain (through the outbound proxy) is copied too; one the peer refuses is not', async () => {
  const { phone, laptop } = await twoDevices('fay');
  const copy = laptop.waitForRequest((m) => m.method === 'MESSAGE');
  const atProxy = proxy.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await phone.message('sip:zed@elsewhere.example', 'to a remote friend')).status, 200);
  assert.equal((await atProxy).body.toString(), 'to a remote friend');
  const copied = await copy;
  assert.equal(copied.get('to'), '<sip:zed@elsewhere.example>');
  assert.equal(isCopy(copied), true);

  assert.equal((await phone.message('sip:nobody@localhost', 'to no one')).status, 404);
  const next = laptop.waitForRequest((m) => m.body.toString() === 'to a remote friend, again');
  assert.equal((await phone.message('sip:zed@elsewhere.example', 'to a remote friend, again')).status, 200);
  await next;
  assert.deepEqual(bodies(laptop), ['to a remote friend', 'to a remote friend, again'], 'nothing of the refused message');
});

test('a room post reaches the other members from the room, and the sender\'s other devices as a copy To the room', async () => {
  const { phone, laptop, bob } = await twoDevices('gil');
  assert.match(await command(phone, 'sip:chat-manager@localhost', '#create chat-gil'), /created/i);
  assert.match(await command(bob, 'sip:chat-gil@localhost', '#join'), /joined|welcome/i);
  const post = bob.waitForRequest((m) => m.body.toString().includes('hello room'));
  const copy = laptop.waitForRequest((m) => isCopy(m));
  assert.equal((await phone.message('sip:chat-gil@localhost', 'hello room')).status, 200);
  assert.match((await post).get('from')!, /chat-gil@localhost/);
  const copied = await copy;
  assert.equal(copied.body.toString(), 'hello room');
  assert.equal(copied.get('to'), '<sip:chat-gil@localhost>');
  const posts = messages(laptop).filter((m) => m.body.toString().includes('hello room'));
  assert.deepEqual(posts.map((m) => m.body.toString()), ['hello room'], 'once: the room itself sends nothing to its sender');
  assert.equal(messages(phone).filter(isCopy).length, 0);
});

test('room posts from a softphone without +sip.instance are not copied, until a device with one registers: the next post is copied to it', async () => {
  const softphone = await agent('ida', s.udp);
  const bob = await agent('ida-bob', s.udp);
  assert.equal((await softphone.register()).status, 200);
  assert.equal((await bob.register()).status, 200);
  assert.match(await command(softphone, 'sip:chat-ida@localhost', '#create chat-ida'), /created/i);
  assert.match(await command(bob, 'sip:chat-ida@localhost', '#join'), /joined|welcome/i);
  for (const text of ['first post', 'second post']) {
    const post = bob.waitForRequest((m) => m.body.toString().includes(text));
    assert.equal((await softphone.message('sip:chat-ida@localhost', text)).status, 200);
    await post;
  }
  const laptop = await TestUA.create({ user: 'ida', server: s.udp });
  after(() => laptop.close());
  assert.equal((await registerDevice(laptop, { instance: newInstance() })).status, 200);
  const copy = laptop.waitForRequest((m) => isCopy(m));
  assert.equal((await softphone.message('sip:chat-ida@localhost', 'third post')).status, 200);
  assert.equal((await copy).body.toString(), 'third post');
  assert.deepEqual(messages(laptop).filter(isCopy).map((m) => m.body.toString()), ['third post'], 'no copy of the posts before it registered');
  assert.equal(messages(softphone).filter(isCopy).length, 0);
});

test('a message to an XMPP contact through the gateway is copied to the sender\'s other devices, To the gateway address', async () => {
  const xmppServer = xmppComponentServer('sip.xmpp.example');
  const xmpp = await startServer({ xmpp: { enabled: true, xmpp_domain: 'sip.xmpp.example', xmpp_password: 'scripted-server-secret', xmpp_port: await xmppServer.listen() } as never });
  try {
    await eventually(() => xmpp.server.xmpp!.stats.state === 'online' || undefined, 'gateway online');
    const phone = await agent('ivy', xmpp.udp);
    const laptop = await agent('ivy', xmpp.udp);
    assert.equal((await registerDevice(phone, { instance: newInstance() })).status, 200);
    assert.equal((await registerDevice(laptop, { instance: newInstance() })).status, 200);
    const romeo = 'sip:romeo*xmpp.example@sip.xmpp.example';
    const copy = laptop.waitForRequest((m) => m.method === 'MESSAGE');
    assert.equal((await phone.message(romeo, 'wherefore art thou')).status, 202);
    await eventually(() => xmppServer.latest?.input.includes('<body>wherefore art thou</body>') || undefined, 'the stanza at the XMPP server');
    const copied = await copy;
    assert.equal(copied.body.toString(), 'wherefore art thou');
    assert.equal(copied.get('to'), `<${romeo}>`);
    assert.equal(isCopy(copied), true);
    assert.deepEqual(bodies(phone), []);
  } finally {
    await xmpp.stop();
    xmppServer.close();
  }
});

test('kill -9 with a copy pending: a restarted Parley delivers it to the away device as the same request', async () => {
  let parley = await startParley();
  try {
    const phone = await agent('hal', parley.udp);
    const laptop = await agent('hal', parley.udp);
    const bob = await agent('hal-bob', parley.udp);
    assert.equal((await registerDevice(phone, { instance: newInstance() })).status, 200);
    assert.equal((await registerDevice(laptop, { instance: newInstance() })).status, 200);
    assert.equal((await bob.register()).status, 200);
    laptop.answer = 503;
    const refused = laptop.waitForRequest((m) => m.method === 'MESSAGE');
    assert.equal((await phone.message(bob.aor, 'before the crash')).status, 200);
    const first = await refused;
    assert.equal(isCopy(first), true);

    parley.kill('SIGKILL');
    await parley.exited;
    laptop.answer = 200;
    // The laptop is still registered: the restarted Parley delivers what it has waiting at start.
    const again = laptop.waitForRequest((m) => m.method === 'MESSAGE' && m.callId === first.callId, 10_000);
    parley = await startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });
    const copied = await again;
    assert.equal(copied.body.toString(), 'before the crash');
    assert.equal(isCopy(copied), true);
    assert.equal(copied.get('from'), first.get('from'), 'the same From tag');
    assert.equal(copied.get('cseq'), first.get('cseq'));
  } finally {
    await parley.stop();
  }
});
