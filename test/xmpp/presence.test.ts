// Presence through the XMPP gateway (RFC 7248) against a real Prosody: a SIP user watching an XMPP
// user, an XMPP user watching a SIP user; then the gateway's status in the admin RPC and metrics,
// and an XMPP thread carried as the Call-ID.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import xml from '@xmpp/xml';
import { rpc, scrape, sample } from '../admin/client.js';
import { eventually } from '../support/eventually.js';
import { tempDir } from '../support/process.js';
import { Watch, notified, pidf, publish } from '../support/presence.js';
import { Prosody } from '../support/prosody.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { type ComponentGateway, componentConfig, gatewayJid, gatewaySipAddress, startComponentGatewayWith, xmppLinkOnline } from '../support/xmpp-gateway.js';
import { XmppUser } from '../support/xmpp-user.js';

let prosody: Prosody;
let parley: TestServer;
let alice: TestUA;
let bob: TestUA;
let mercutio: XmppUser;
let tybalt: XmppUser;

/** The separator convention: how SIP users write to XMPP users, and XMPP users to SIP users. */
const sipAddressOf = (user: string) => gatewaySipAddress(prosody, user);
const jidOf = (sipUser: string) => gatewayJid(prosody, sipUser);

/** Presence from `from` of `type` (undefined: available) received by `user` since index `since`. */
const presenceFrom = (user: XmppUser, from: string, type: string | undefined, since: number) =>
  user.waitForPresence((p) => p.attrs.from === from && p.attrs.type === type, since);

let gateway: ComponentGateway;

before(async () => {
  gateway = await startComponentGatewayWith({ xmppUsers: ['mercutio', 'tybalt'], sipUsers: ['alice', 'bob'], rosters: true });
  ({ prosody, parley, xmppUsers: [mercutio, tybalt], sipUsers: [alice, bob] } = gateway);
  // bob has registered once, so he exists, and is offline now.
  assert.equal((await bob.register(0)).status, 200);
});

after(() => gateway?.stop());

describe('a SIP user watching an XMPP user', () => {
  test('gets NOTIFYs as the contact approves, goes away with a status, busy, extended away, and offline', async () => {
    const since = mercutio.presences.length;
    const { response, watch } = await Watch.subscribe(alice, sipAddressOf('mercutio'), { expires: 600 });
    assert.equal(response.status, 200);
    assert.equal((await notified(watch!, {})).basic, 'closed', 'nothing known before the contact approves');

    const request = await presenceFrom(mercutio, jidOf('alice'), 'subscribe', since);
    assert.equal(request.attrs.to, mercutio.jid);
    await mercutio.sendPresence({ to: jidOf('alice'), type: 'subscribed' });
    await notified(watch!, { basic: 'open', notes: [], activities: [] });

    await mercutio.sendPresence({}, xml('show', {}, 'away'), xml('status', {}, 'Gone fishing 🎣 <back> & soon'));
    await notified(watch!, { basic: 'open', notes: ['Gone fishing 🎣 <back> & soon'], activities: ['away'] });

    await mercutio.sendPresence({}, xml('show', {}, 'dnd'), xml('status', {}, 'Duelling'));
    await notified(watch!, { basic: 'open', notes: ['Duelling'], activities: ['busy'] });

    await mercutio.sendPresence({}, xml('show', {}, 'xa'));
    await notified(watch!, { basic: 'open', notes: [], activities: ['away', 'extended-away'] });

    await mercutio.sendPresence({ type: 'unavailable' }, xml('status', {}, 'A plague o’ both your houses'));
    await notified(watch!, { basic: 'closed', notes: ['A plague o’ both your houses'] });

    await mercutio.sendPresence({}, xml('show', {}, 'chat'));
    await notified(watch!, { basic: 'open', notes: [], activities: [] });

    // Ending the SIP subscription ends the XMPP one.
    const before = mercutio.presences.length;
    assert.equal((await watch!.refresh(0)).status, 200);
    await presenceFrom(mercutio, jidOf('alice'), 'unsubscribe', before);
    await eventually(() => parley.server.xmpp!.presenceStats!.xmppContacts === 0 || undefined, 'contact forgotten');
  });
});

describe('an XMPP user watching a SIP user', () => {
  test('is approved, then sees the SIP user come online on REGISTER, its PUBLISHed note, and go offline on un-REGISTER', async () => {
    let since = tybalt.presences.length;
    await tybalt.sendPresence({ to: jidOf('bob'), type: 'subscribe' });
    await presenceFrom(tybalt, jidOf('bob'), 'subscribed', since);
    await presenceFrom(tybalt, jidOf('bob'), 'unavailable', since);

    since = tybalt.presences.length;
    assert.equal((await bob.register()).status, 200);
    const online = await presenceFrom(tybalt, jidOf('bob'), undefined, since);
    assert.equal(online.getChild('show'), undefined);
    assert.equal(online.getChild('status'), undefined);

    since = tybalt.presences.length;
    const published = await publish(bob, { body: pidf(bob.aor, 'open', { note: 'In a meeting', activities: ['meeting'] }), expires: 600 });
    assert.equal(published.status, 200);
    const busy = await presenceFrom(tybalt, jidOf('bob'), undefined, since);
    assert.equal(busy.getChildText('show'), 'dnd');
    assert.equal(busy.getChildText('status'), 'In a meeting');

    since = tybalt.presences.length;
    assert.equal((await publish(bob, { etag: published.get('sip-etag')!, expires: 0 })).status, 200);
    const plain = await presenceFrom(tybalt, jidOf('bob'), undefined, since);
    assert.equal(plain.getChild('status'), undefined);

    since = tybalt.presences.length;
    assert.equal((await bob.register(0)).status, 200);
    await presenceFrom(tybalt, jidOf('bob'), 'unavailable', since);
  });

  test('a probe (the watcher coming back online) is answered with the current state', async () => {
    assert.equal((await bob.register()).status, 200);
    await tybalt.stop();
    tybalt = await XmppUser.connect(prosody, 'tybalt');
    gateway.xmppUsers[1] = tybalt; // stopped with the others at the end
    await tybalt.fetchRoster();
    await presenceFrom(tybalt, jidOf('bob'), undefined, 0);
  });

  test('an unsubscribe is the end of it', async () => {
    assert.equal(parley.server.xmpp!.presenceStats!.xmppWatchers, 1);
    await tybalt.sendPresence({ to: jidOf('bob'), type: 'unsubscribe' });
    await eventually(() => parley.server.xmpp!.presenceStats!.xmppWatchers === 0 || undefined, 'watcher forgotten');
    // What was sent before the unsubscribe (the answer to the earlier probe) may still be on its way.
    await sleep(300);
    const since = tybalt.presences.length;
    assert.equal((await bob.register(0)).status, 200);
    await sleep(300);
    assert.deepEqual(tybalt.presences.slice(since).filter((p) => p.attrs.from === jidOf('bob') && p.attrs.type !== 'unavailable'), []);
  });

  test('a subscription request to a SIP user who does not exist yet waits, and is approved with its presence at its first REGISTER', async () => {
    const since = tybalt.presences.length;
    await tybalt.sendPresence({ to: jidOf('ghost'), type: 'subscribe' });
    await eventually(() => parley.server.xmpp!.presenceStats!.pendingSubscriptions === 1 || undefined, 'request pending');
    const ghost = await TestUA.create({ proto: 'tcp', user: 'ghost', server: parley.tcp });
    try {
      assert.equal((await ghost.register()).status, 200);
      await presenceFrom(tybalt, jidOf('ghost'), 'subscribed', since);
      await presenceFrom(tybalt, jidOf('ghost'), undefined, since);
      const refusals = tybalt.presences.slice(since).filter((p) => p.attrs.from === jidOf('ghost') && p.attrs.type === 'unsubscribed');
      assert.deepEqual(refusals.map(String), []);
      assert.equal(parley.server.xmpp!.presenceStats!.pendingSubscriptions, 0);
      // The approval holds: the SIP user going offline is told like any other watcher's.
      const before = tybalt.presences.length;
      assert.equal((await ghost.register(0)).status, 200);
      await presenceFrom(tybalt, jidOf('ghost'), 'unavailable', before);
    } finally {
      ghost.close();
    }
  });

  test('a subscription request to a JID that names no local SIP user is refused', async () => {
    const since = tybalt.presences.length;
    await tybalt.sendPresence({ to: `ghost*elsewhere.example@${prosody.componentDomain}`, type: 'subscribe' });
    await presenceFrom(tybalt, `ghost*elsewhere.example@${prosody.componentDomain}`, 'unsubscribed', since);
  });
});

describe('threads', () => {
  test('an XMPP thread becomes the Call-ID of the MESSAGE when it can be one', async () => {
    await tybalt.send(jidOf('alice'), 'in a thread', {}, xml('thread', {}, 'thread-42@xmpp.test'));
    await tybalt.send(jidOf('alice'), 'odd thread', {}, xml('thread', {}, 'not a call id'));
    const inThread = await eventually(() => alice.received.find((m) => m.body.toString() === 'in a thread'), 'message in a thread delivered');
    assert.equal(inThread.callId, 'thread-42@xmpp.test');
    const odd = await eventually(() => alice.received.find((m) => m.body.toString() === 'odd thread'), 'odd thread delivered');
    assert.notEqual(odd.callId, 'not a call id');
  });
});

describe('status', () => {
  test('xmpp.status and the metrics show the link up and the counts', async () => {
    const { result, error } = await rpc(parley, 'xmpp.status');
    assert.equal(error, undefined);
    assert.equal(result.state, 'online');
    assert.equal(result.backend, 'component');
    assert.equal(result.domain, prosody.componentDomain);
    assert.ok(result.stanzasIn > 0 && result.stanzasOut > 0, JSON.stringify(result));
    assert.equal(result.queued, 0);
    assert.equal(result.linkErrors, 0);
    assert.ok(result.presence.presenceIn > 0, JSON.stringify(result.presence));
    assert.deepEqual(result.peers, [{ domain: `${parley.config.xmpp.xmpp_host}:${parley.config.xmpp.xmpp_port}`, direction: 'out', state: 'online', secure: false }]);

    const { status, text } = await scrape(parley);
    assert.equal(status, 200);
    assert.equal(sample(text, 'parley_xmpp_connected'), 1);
    assert.ok(sample(text, 'parley_xmpp_stanzas_in_total')! >= result.stanzasIn);
    assert.ok(sample(text, 'parley_xmpp_stanzas_out_total')! >= result.stanzasOut);
    assert.equal(sample(text, 'parley_xmpp_queued'), 0);
    assert.match(text, /^parley_xmpp_peer_up\{domain="[^"]+",direction="out"\} 1$/m);
    assert.match(text, /^parley_xmpp_errors_total\{kind="link"\} 0$/m);
    assert.match(text, /^parley_xmpp_errors_total\{kind="stanza"\} 0$/m);
  });

  test('xmpp.status is refused when the gateway is disabled', async () => {
    const plain = await startServer();
    try {
      const { error } = await rpc(plain, 'xmpp.status');
      assert.equal(error?.code, -32000);
      assert.match(error!.message, /disabled/);
      assert.equal(sample((await scrape(plain)).text, 'parley_xmpp_connected'), undefined);
    } finally {
      await plain.stop();
    }
  });
});

describe('a graceful stop', () => {
  test('tells XMPP watchers the SIP users are unavailable, keeps the XMPP contacts\' approvals, and ends no SIP subscription', async () => {
    assert.equal((await bob.register()).status, 200);
    let since = tybalt.presences.length;
    await tybalt.sendPresence({ to: jidOf('bob'), type: 'subscribe' });
    await presenceFrom(tybalt, jidOf('bob'), undefined, since);
    const asked = mercutio.presences.length;
    const { watch } = await Watch.subscribe(alice, sipAddressOf('mercutio'), { expires: 600 });
    // The earlier unsubscribe ended mercutio's approval: he is asked again.
    await presenceFrom(mercutio, jidOf('alice'), 'subscribe', asked);
    await mercutio.sendPresence({ to: jidOf('alice'), type: 'subscribed' });
    await notified(watch!, { basic: 'open' });

    since = tybalt.presences.length;
    const mercutioSince = mercutio.presences.length;
    const notifiesBefore = alice.received.length;
    await parley.stop();
    await presenceFrom(tybalt, jidOf('bob'), 'unavailable', since);
    await sleep(200);
    assert.deepEqual(mercutio.presences.slice(mercutioSince).map(String), []);
    // The subscription goes on after a restart: alice is neither told it ended nor that mercutio left.
    const notifies = alice.received.slice(notifiesBefore).filter((m) => m.method === 'NOTIFY' && m.callId === watch!.callId);
    assert.deepEqual(notifies.map((m) => `${m.get('subscription-state')} ${m.body.toString()}`), []);
  });
});

describe('a restart', () => {
  test('a SIP subscription to an XMPP user goes on: the gateway asks the XMPP user again, and the watcher learns what changed meanwhile', async () => {
    await parley.stop(); // the component's domain is this test's now
    const database = `sqlite:${join(tempDir(), 'parley.db')}`;
    let server = await startServer({ xmpp: componentConfig(prosody), database });
    const romeo = await TestUA.create({ user: 'romeo', server: server.udp });
    try {
      await xmppLinkOnline(server);
      const since = mercutio.presences.length;
      const { watch } = await Watch.subscribe(romeo, sipAddressOf('mercutio'), { expires: 600 });
      await presenceFrom(mercutio, jidOf('romeo'), 'subscribe', since);
      await mercutio.sendPresence({ to: jidOf('romeo'), type: 'subscribed' });
      await notified(watch!, { basic: 'open' });

      await server.stop();
      await mercutio.sendPresence({}, xml('show', {}, 'away'), xml('status', {}, 'Fighting Tybalt'));
      server = await startServer({ xmpp: componentConfig(prosody), database, listen: [{ proto: 'udp', host: '127.0.0.1', port: server.udp.port }] });

      await notified(watch!, { basic: 'open', notes: ['Fighting Tybalt'], activities: ['away'] });
    } finally {
      romeo.close();
      await server.stop();
    }
  });

  test('a subscription request waiting for a SIP user who does not exist yet survives it, and is approved at the user\'s first REGISTER', async () => {
    const database = `sqlite:${join(tempDir(), 'parley.db')}`;
    let server = await startServer({ xmpp: componentConfig(prosody), database });
    const phantom = await TestUA.create({ user: 'phantom', server: server.udp });
    try {
      await xmppLinkOnline(server);
      const since = tybalt.presences.length;
      await tybalt.sendPresence({ to: jidOf('phantom'), type: 'subscribe' });
      await eventually(() => server.server.xmpp!.presenceStats!.pendingSubscriptions === 1 || undefined, 'request pending');
      await server.stop();

      server = await startServer({ xmpp: componentConfig(prosody), database, listen: [{ proto: 'udp', host: '127.0.0.1', port: server.udp.port }] });
      assert.equal(server.server.xmpp!.presenceStats!.pendingSubscriptions, 1);
      await xmppLinkOnline(server);
      assert.equal((await phantom.register()).status, 200);
      await presenceFrom(tybalt, jidOf('phantom'), 'subscribed', since);
      await presenceFrom(tybalt, jidOf('phantom'), undefined, since);
    } finally {
      phantom.close();
      await server.stop();
    }
  });
});
