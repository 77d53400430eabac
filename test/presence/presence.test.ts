// The presence agent over real SIP traffic: PUBLISH, SUBSCRIBE/NOTIFY and registration-derived state.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import SqliteDatabase from 'better-sqlite3';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { Watch, pidf, publish, stateIn } from '../support/presence.js';

/** Starts a server for a suite and gives it UAs, all stopped after the suite. */
function serverForSuite(patch: Parameters<typeof startServer>[0]) {
  let s: TestServer;
  const uas: TestUA[] = [];
  before(async () => {
    s = await startServer(patch);
  });
  after(async () => {
    await s.stop();
    for (const agent of uas) agent.close();
  });
  return {
    get server() {
      return s;
    },
    async ua(user: string, options: { proto?: 'udp' | 'tcp'; domain?: string } = {}) {
      const agent = await TestUA.create({ user, server: options.proto === 'tcp' ? s.tcp : s.udp, ...options });
      uas.push(agent);
      return agent;
    },
  };
}

/** Subscribes and checks it was accepted. */
async function subscribed(ua: TestUA, presentity: string, expires?: number): Promise<Watch> {
  const { response, watch } = await Watch.subscribe(ua, presentity, { expires });
  assert.equal(response.status, 200, `SUBSCRIBE answered ${response.status} ${response.reason}`);
  return watch!;
}

describe('presence', () => {
  const suite = serverForSuite({ presence: { min_expires: 1 } });

  test('a watcher is told the presentity is closed, then open once it registers', async () => {
    const alice = await suite.ua('alice', { proto: 'tcp' });
    const bob = await suite.ua('bob');
    const { response, watch } = await Watch.subscribe(alice, 'sip:bob@localhost', {
      expires: 600,
      headers: [{ name: 'accept', value: 'application/pidf+xml, application/xpidf+xml' }],
    });
    assert.equal(response.status, 200);
    assert.equal(response.get('expires'), '600');
    assert.match(response.get('to')!, /;tag=/);
    assert.match(response.get('contact')!, /^<sip:bob@127\.0\.0\.1:\d+;transport=tcp>$/);

    const first = await watch!.nextNotify();
    assert.equal(first.uri, alice.contact);
    assert.equal(first.get('event'), 'presence');
    assert.match(first.get('subscription-state')!, /^active;expires=(600|599)$/);
    assert.equal(first.get('content-type'), 'application/pidf+xml');
    assert.equal(first.from.params.get('tag'), response.to.params.get('tag'), 'NOTIFY comes from the dialog Parley answered');
    assert.equal(first.get('to'), response.get('from'));
    assert.match(first.body.toString(), /entity="sip:bob@localhost"/);
    assert.equal(stateIn(first).basic, 'closed');

    assert.equal((await bob.register()).status, 200);
    const second = await watch!.nextNotify();
    assert.equal(stateIn(second).basic, 'open');
    assert.ok(second.cseq.seq > first.cseq.seq, 'CSeq grows within the dialog');
    assert.deepEqual(suite.server.server.presence!.watchersOf('bob@localhost'), ['alice@localhost']);

    assert.equal((await bob.register(0)).status, 200);
    assert.equal(stateIn(await watch!.nextNotify()).basic, 'closed');
  });

  test('a publication reaches watchers; refreshed by entity tag, modified, removed back to the registration state', async () => {
    const carol = await suite.ua('carol');
    const dave = await suite.ua('dave');
    await dave.register();
    const watch = await subscribed(carol, 'sip:dave@localhost');
    assert.equal(stateIn(await watch.nextNotify()).basic, 'open', 'registered and nothing published: open');

    const published = await publish(dave, { body: pidf('sip:dave@localhost', 'open', { note: 'in a meeting', activities: ['meeting'] }), expires: 600 });
    assert.equal(published.status, 200);
    assert.equal(published.get('expires'), '600');
    const etag = published.get('sip-etag')!;
    assert.ok(etag);
    assert.deepEqual(stateIn(await watch.nextNotify()), { basic: 'open', notes: ['in a meeting'], activities: ['meeting'] });

    const refreshed = await publish(dave, { etag, expires: 600 });
    assert.equal(refreshed.status, 200);
    const newTag = refreshed.get('sip-etag')!;
    assert.ok(newTag && newTag !== etag, 'each refresh gets a new entity tag');
    await watch.noNotifyWithin(300); // the state did not change
    assert.equal((await publish(dave, { etag })).status, 412, 'the old tag is spent');

    const modified = await publish(dave, { etag: newTag, body: pidf('sip:dave@localhost', 'closed', { note: 'do not disturb' }) });
    assert.equal(modified.status, 200);
    assert.deepEqual(stateIn(await watch.nextNotify()), { basic: 'closed', notes: ['do not disturb'], activities: [] });

    const removed = await publish(dave, { etag: modified.get('sip-etag')!, expires: 0 });
    assert.equal(removed.status, 200);
    assert.equal(removed.get('expires'), '0');
    assert.deepEqual(stateIn(await watch.nextNotify()), { basic: 'open', notes: [], activities: [] });
  });

  test('an expired publication falls back to the registration state', async () => {
    const erin = await suite.ua('erin');
    const frank = await suite.ua('frank');
    const watch = await subscribed(erin, 'sip:frank@localhost');
    assert.equal(stateIn(await watch.nextNotify()).basic, 'closed');
    assert.equal((await publish(frank, { body: pidf('sip:frank@localhost', 'open', { note: 'back in 5' }), expires: 1 })).status, 200);
    assert.deepEqual(stateIn(await watch.nextNotify()).notes, ['back in 5']);
    const expired = await watch.nextNotify(3000);
    assert.deepEqual(stateIn(expired), { basic: 'closed', notes: [], activities: [] });
  });

  test('a refresh is answered with a NOTIFY; unsubscribing with a terminated one, after which nothing comes', async () => {
    const grace = await suite.ua('grace');
    const heidi = await suite.ua('heidi');
    const watch = await subscribed(grace, 'sip:heidi@localhost');
    await watch.nextNotify();

    const refreshed = await watch.refresh(120);
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.get('expires'), '120');
    assert.match((await watch.nextNotify()).get('subscription-state')!, /^active;expires=(120|119)$/);

    const ended = await watch.refresh(0);
    assert.equal(ended.status, 200);
    assert.equal(ended.get('expires'), '0');
    const last = await watch.nextNotify();
    assert.equal(last.get('subscription-state'), 'terminated;reason=timeout');
    assert.equal(stateIn(last).basic, 'closed');

    await heidi.register();
    await watch.noNotifyWithin(300);
    assert.equal((await watch.refresh(60)).status, 481, 'the dialog is gone');
    assert.deepEqual(suite.server.server.presence!.watchersOf('heidi@localhost'), []);
  });

  test('a subscription that is not refreshed ends with a timeout NOTIFY', async () => {
    const ivan = await suite.ua('ivan');
    const watch = await subscribed(ivan, 'sip:judy@localhost', 1);
    assert.equal((await watch.nextNotify()).get('subscription-state'), 'active;expires=1');
    assert.equal((await watch.nextNotify(3000)).get('subscription-state'), 'terminated;reason=timeout');
  });

  test('a fetch (Expires: 0) gets the state once, in a terminated NOTIFY', async () => {
    const ken = await suite.ua('ken');
    const leo = await suite.ua('leo');
    await leo.register();
    const { response, watch } = await Watch.subscribe(ken, 'sip:leo@localhost', { expires: 0 });
    assert.equal(response.status, 200);
    assert.equal(response.get('expires'), '0');
    const only = await watch!.nextNotify();
    assert.equal(only.get('subscription-state'), 'terminated;reason=timeout');
    assert.equal(stateIn(only).basic, 'open');
    assert.deepEqual(suite.server.server.presence!.watchersOf('leo@localhost'), []);
  });

  test('a subscriber whose UA answers NOTIFY with 481 is dropped', async () => {
    const mallory = await suite.ua('mallory');
    const nick = await suite.ua('nick');
    const watch = await subscribed(mallory, 'sip:nick@localhost');
    await watch.nextNotify();
    mallory.answer = 481;
    await nick.register();
    await watch.nextNotify();
    for (let i = 0; i < 50 && suite.server.server.presence!.watchersOf('nick@localhost').length > 0; i++) await sleep(20);
    assert.deepEqual(suite.server.server.presence!.watchersOf('nick@localhost'), []);
    await publish(nick, { body: pidf('sip:nick@localhost', 'open', { note: 'anyone?' }) });
    await watch.noNotifyWithin(300);
  });

  test('what the agent refuses', async () => {
    const olivia = await suite.ua('olivia');
    const bad = (body: string) => publish(olivia, { body });
    assert.equal((await bad('<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple>')).status, 400);
    assert.equal((await bad('<html/>')).status, 400);
    const wrongEvent = await publish(olivia, { body: pidf('sip:olivia@localhost', 'open'), event: 'dialog' });
    assert.equal(wrongEvent.status, 489);
    assert.equal(wrongEvent.get('allow-events'), 'presence');
    const wrongType = await publish(olivia, { body: 'online', contentType: 'text/plain' });
    assert.equal(wrongType.status, 415);
    assert.equal(wrongType.get('accept'), 'application/pidf+xml');
    assert.equal((await publish(olivia, { etag: 'never-issued' })).status, 412);
    assert.equal((await publish(olivia, {})).status, 400, 'an initial PUBLISH needs a body');
    const forSomeoneElse = olivia.build('PUBLISH', 'sip:bob@localhost', {
      headers: [{ name: 'event', value: 'presence' }], body: pidf('sip:bob@localhost', 'closed'), contentType: 'application/pidf+xml',
    });
    assert.equal((await olivia.send(forSomeoneElse)).status, 403);

    assert.equal((await Watch.subscribe(olivia, 'sip:bob@localhost', { event: 'message-summary' })).response.status, 489);
    const textOnly = await Watch.subscribe(olivia, 'sip:bob@localhost', { headers: [{ name: 'accept', value: 'text/plain' }] });
    assert.equal(textOnly.response.status, 406);
    const stray = olivia.build('NOTIFY', 'sip:bob@localhost', {
      to: '<sip:bob@localhost>;tag=unknown', headers: [{ name: 'event', value: 'presence' }, { name: 'subscription-state', value: 'active' }],
    });
    assert.equal((await olivia.send(stray)).status, 481);
  });

  test('OPTIONS lists PUBLISH and SUBSCRIBE', async () => {
    const peggy = await suite.ua('peggy');
    const allow = (await peggy.send(peggy.build('OPTIONS', 'sip:localhost'))).get('allow')!;
    for (const method of ['PUBLISH', 'SUBSCRIBE']) assert.ok(allow.includes(method), allow);
  });
});

describe('presence policy same-domain and expiry limits', () => {
  const suite = serverForSuite({ domains: ['localhost', 'example.org'], presence: { policy: 'same-domain' } });

  test('only users of the presentity\'s domain may watch it', async () => {
    const local = await suite.ua('quinn');
    const foreign = await suite.ua('rupert', { domain: 'example.org' });
    assert.equal((await Watch.subscribe(foreign, 'sip:quinn@localhost')).response.status, 403);
    assert.equal((await Watch.subscribe(local, 'sip:rupert@example.org')).response.status, 403);
    const accepted = await subscribed(local, 'sip:sybil@localhost');
    await accepted.nextNotify();
  });

  test('a PUBLISH or SUBSCRIBE shorter than min_expires gets 423 with Min-Expires', async () => {
    const trent = await suite.ua('trent');
    const tooShortPublish = await publish(trent, { body: pidf('sip:trent@localhost', 'open'), expires: 10 });
    assert.equal(tooShortPublish.status, 423);
    assert.equal(tooShortPublish.get('min-expires'), '60');
    const tooShortSubscribe = await Watch.subscribe(trent, 'sip:quinn@localhost', { expires: 10 });
    assert.equal(tooShortSubscribe.response.status, 423);
    assert.equal(tooShortSubscribe.response.get('min-expires'), '60');
  });
});

describe('presence limits', () => {
  const suite = serverForSuite({ presence: { max_subscriptions_per_watcher: 2, max_subscriptions: 3, max_publications_per_presentity: 1 } });

  test('a watcher over max_subscriptions_per_watcher gets 403, everyone over max_subscriptions 503 with Retry-After', async () => {
    const vera = await suite.ua('vera');
    const walt = await suite.ua('walt');
    const first = await subscribed(vera, 'sip:p1@localhost');
    await subscribed(vera, 'sip:p2@localhost');
    const third = (await Watch.subscribe(vera, 'sip:p3@localhost')).response;
    assert.equal(third.status, 403);
    assert.equal(third.reason, 'Forbidden (too many subscriptions from this watcher)');
    assert.equal((await Watch.subscribe(vera, 'sip:p3@localhost', { expires: 0 })).response.status, 200, 'a fetch keeps nothing, so it is not limited');

    await subscribed(walt, 'sip:p1@localhost');
    const full = (await Watch.subscribe(walt, 'sip:p2@localhost')).response;
    assert.equal(full.status, 503);
    assert.equal(full.reason, 'Service Unavailable (too many presence subscriptions)');
    assert.equal(full.get('retry-after'), '60');

    assert.equal((await first.refresh(0)).status, 200);
    await subscribed(vera, 'sip:p3@localhost');
  });

  test('a new publication over max_publications_per_presentity gets 503 with Retry-After; the existing one is still refreshed', async () => {
    const xena = await suite.ua('xena');
    const published = await publish(xena, { body: pidf('sip:xena@localhost', 'open'), expires: 600 });
    assert.equal(published.status, 200);
    const second = await publish(xena, { body: pidf('sip:xena@localhost', 'closed') });
    assert.equal(second.status, 503);
    assert.equal(second.reason, 'Service Unavailable (too many publications for this presentity)');
    assert.match(second.get('retry-after') ?? '', /^(600|599)$/);
    assert.equal((await publish(xena, { etag: published.get('sip-etag') })).status, 200);
  });
});

describe('presence limits under concurrent SUBSCRIBEs', () => {
  const suite = serverForSuite({ presence: { max_subscriptions: 2 } });

  test('places being written count: of five SUBSCRIBEs at once, two are accepted and three get 503', async () => {
    const watchers = await Promise.all(['w1', 'w2', 'w3', 'w4', 'w5'].map((user) => suite.ua(user)));
    const responses = await Promise.all(watchers.map((watcher) => Watch.subscribe(watcher, 'sip:star@localhost', { expires: 600 })));
    assert.deepEqual(responses.map(({ response }) => response.status).sort(), [200, 200, 503, 503, 503]);
    assert.equal(suite.server.server.presence!.watchersOf('star@localhost').length, 2);
  });
});

describe('presence while the store is unavailable', () => {
  const suite = serverForSuite({});

  test('PUBLISH and SUBSCRIBE get 503 with Retry-After and change nothing; once the store is back, tags and dialogs are as before', async () => {
    const erin = await suite.ua('erin');
    const frank = await suite.ua('frank');
    const published = await publish(erin, { body: pidf('sip:erin@localhost', 'open', { note: 'here' }), expires: 600 });
    assert.equal(published.status, 200);
    const etag = published.get('sip-etag')!;
    const watch = await subscribed(frank, 'sip:erin@localhost', 600);
    assert.deepEqual(stateIn(await watch.nextNotify()).notes, ['here']);

    const lock = new SqliteDatabase(join(suite.server.dir, 'parley.db'));
    lock.exec('BEGIN EXCLUSIVE');
    try {
      const refused = [
        await publish(erin, { etag, body: pidf('sip:erin@localhost', 'closed') }),
        await publish(erin, { body: pidf('sip:erin@localhost', 'closed') }),
        (await Watch.subscribe(frank, 'sip:grace@localhost')).response,
        await watch.refresh(0),
      ];
      for (const response of refused) {
        assert.equal(response.status, 503, `${response.cseq.method}: ${response.status} ${response.reason}`);
        assert.match(response.reason, /store unavailable/);
        assert.ok(Number(response.get('retry-after')) > 0);
      }
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    await watch.noNotifyWithin(300);
    assert.deepEqual(suite.server.server.presence!.watchersOf('erin@localhost'), ['frank@localhost']);
    assert.equal((await publish(erin, { etag, expires: 600 })).status, 200, 'the entity tag is still good');
    assert.equal((await watch.refresh(600)).status, 200, 'the dialog is still there');
    assert.deepEqual(stateIn(await watch.nextNotify()).notes, ['here']);
  });
});
