// The relay's behaviour over real SIP traffic; run against each store driver by the *.test.ts files beside it.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';

const OFFLINE_EXPIRES = 3600;

export function relaySuite(driver: string, database: () => Promise<string | undefined>): void {
  describe(`relay on ${driver}`, () => {
    let s: TestServer;
    const uas: TestUA[] = [];
    const ua = async (user: string, proto: 'udp' | 'tcp' = 'udp') => {
      const agent = await TestUA.create({ user, proto, server: proto === 'udp' ? s.udp : s.tcp });
      uas.push(agent);
      return agent;
    };

    before(async () => {
      s = await startServer({ relay: { max_body: 2000 } as never, offline: { max_per_user: 3, expires: OFFLINE_EXPIRES }, database: await database() });
    });
    after(async () => {
      for (const agent of uas) agent.close();
      await s.stop();
    });

    test('two registered users exchange MESSAGEs both ways', async () => {
      const alice = await ua('alice');
      const bob = await ua('bob', 'tcp');
      assert.equal((await alice.register()).status, 200);
      assert.equal((await bob.register()).status, 200);
      const toBob = bob.waitForRequest((m) => m.method === 'MESSAGE');
      const r1 = await alice.message('sip:bob@localhost', 'hello bob ☃');
      assert.equal(r1.status, 200);
      const got = await toBob;
      assert.equal(got.body.toString(), 'hello bob ☃');
      assert.match(got.get('from')!, /sip:alice@localhost/);
      assert.equal(got.uri, bob.contact);
      const toAlice = alice.waitForRequest((m) => m.method === 'MESSAGE');
      assert.equal((await bob.message('sip:alice@localhost', 'hi alice')).status, 200);
      assert.equal((await toAlice).body.toString(), 'hi alice');
    });

    test('the recipient\'s failure is relayed back to the sender', async () => {
      const carol = await ua('carol');
      const dave = await ua('dave');
      await carol.register();
      await dave.register();
      dave.answer = 486;
      const r = await carol.message('sip:dave@localhost', 'busy?');
      assert.equal(r.status, 486);
    });

    test('a MESSAGE to an unknown local user gets 404', async () => {
      const eve = await ua('eve');
      const r = await eve.message('sip:nobody@localhost', 'anyone?');
      assert.equal(r.status, 404);
    });

    test('a message for a known user who is offline is stored (202) and delivered on registration with its Date', async () => {
      const frank = await ua('frank');
      const grace = await ua('grace');
      await grace.register();
      assert.equal((await grace.register(0)).status, 200);
      const r1 = await frank.message('sip:grace@localhost', 'first');
      const r2 = await frank.message('sip:grace@localhost', 'second');
      assert.equal(r1.status, 202);
      assert.equal(r2.status, 202);
      const first = grace.waitForRequest((m) => m.body.toString() === 'first');
      const second = grace.waitForRequest((m) => m.body.toString() === 'second');
      await grace.register();
      const [a, b] = await Promise.all([first, second]);
      assert.ok(a.get('date'), 'stored message carries its original Date');
      assert.match(a.get('from')!, /sip:frank@localhost/);
      assert.ok(grace.received.indexOf(a) < grace.received.indexOf(b), 'delivered in order');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await s.server.store.offline.count('grace@localhost'), 0, 'removed after the 2xx');
    });

    test('a far-future Date neither bypasses max_per_user nor delays expiry, and the recipient still sees it', async () => {
      const mallory = await ua('mallory');
      const nina = await ua('nina');
      await nina.register();
      assert.equal((await nina.register(0)).status, 200);
      const farFuture = 'Fri, 01 Jan 9999 00:00:00 GMT';
      const sendDated = (body: string) => mallory.message('sip:nina@localhost', body, [{ name: 'date', value: farFuture }]);
      const before = Date.now();
      for (const body of ['one', 'two', 'three']) assert.equal((await sendDated(body)).status, 202);
      const after = Date.now();
      const full = await sendDated('four');
      assert.equal(full.status, 486, `${full.status} ${full.reason}`);
      assert.match(full.reason, /full/);

      const stored = await s.server.store.offline.listFor('nina@localhost', after, { afterId: 0, limit: 10 });
      assert.equal(stored.length, 3);
      for (const message of stored) {
        assert.ok(message.receivedAt >= before && message.receivedAt <= after, `received at ${message.receivedAt}, not between ${before} and ${after}`);
        assert.equal(message.expiresAt, message.receivedAt + OFFLINE_EXPIRES * 1000);
        assert.equal(message.sentAt, Date.parse(farFuture));
      }

      const delivered = nina.waitForRequest((m) => m.body.toString() === 'three');
      await nina.register();
      assert.equal((await delivered).get('date'), farFuture, 'the recipient sees the Date the sender wrote');
      assert.deepEqual(nina.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString()), ['one', 'two', 'three']);
    });

    test('2,000 stored messages are delivered in order on registration, read a page at a time', async () => {
      const aor = 'olga@localhost';
      const olga = await ua('olga');
      await olga.register();
      assert.equal((await olga.register(0)).status, 200);
      const offline = s.server.store.offline;
      const now = Date.now();
      const total = 2000;
      for (let i = 0; i < total; i++) {
        const message = { aor, fromHeader: '<sip:pete@localhost>', toHeader: `<sip:${aor}>`, contentType: 'text/plain', body: Buffer.from(`m${i}`), receivedAt: now, expiresAt: now + 60_000 };
        assert.equal(typeof (await offline.add(message, total)), 'number');
      }
      const pageSizes: number[] = [];
      const listFor = offline.listFor;
      offline.listFor = async (...args) => {
        const page = await listFor.apply(offline, args);
        pageSizes.push(page.length);
        return page;
      };
      try {
        const last = olga.waitForRequest((m) => m.body.toString() === `m${total - 1}`, 60_000);
        await olga.register();
        await last;
      } finally {
        offline.listFor = listFor;
      }
      const bodies = olga.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
      assert.deepEqual(bodies, Array.from({ length: total }, (_, i) => `m${i}`), 'every message, once, in order');
      assert.ok(Math.max(...pageSizes) <= 100, `pages of ${Math.max(...pageSizes)} messages`);
      assert.ok(pageSizes.length >= total / 100, `${pageSizes.length} pages`);
    });

    test('a user with nothing stored registers without a read of stored messages; one stored for them later comes at the next registration', async () => {
      const quinn = await ua('quinn');
      const rosa = await ua('rosa');
      // Known and not registered: what is sent to quinn is stored.
      assert.equal((await quinn.register()).status, 200);
      assert.equal((await quinn.register(0)).status, 200);
      const { offline, deliveries } = s.server.store;
      const reads: string[] = [];
      const listFor = offline.listFor;
      offline.listFor = (aor, ...rest) => {
        reads.push(aor);
        return listFor.call(offline, aor, ...rest);
      };
      // Kept for quinn's device (its contact), as quinn registered before. The drains of earlier
      // tests' users may still read theirs.
      const pendingFor = deliveries.pendingFor;
      deliveries.pendingFor = (aor, ...rest) => {
        if (aor === 'quinn@localhost') reads.push(aor);
        return pendingFor.call(deliveries, aor, ...rest);
      };
      try {
        assert.equal((await quinn.register()).status, 200);
        assert.equal((await quinn.register(0)).status, 200);
        assert.deepEqual(reads, [], 'nothing stored for quinn: no read');
        assert.equal((await rosa.message('sip:quinn@localhost', 'kept for you')).status, 202);
        const delivered = quinn.waitForRequest((m) => m.body.toString() === 'kept for you');
        assert.equal((await quinn.register()).status, 200);
        assert.match((await delivered).get('from')!, /sip:rosa@localhost/);
        assert.deepEqual(reads, ['quinn@localhost']);
      } finally {
        offline.listFor = listFor;
        deliveries.pendingFor = pendingFor;
      }
    });

    test('a retransmitted MESSAGE is delivered once', async () => {
      const henry = await ua('henry');
      const ivy = await ua('ivy');
      await ivy.register();
      const request = henry.build('MESSAGE', 'sip:ivy@localhost', { body: 'once' });
      const bytes = request.toBuffer();
      henry.sendRaw(bytes);
      henry.sendRaw(bytes);
      const response = await henry.send(request);
      henry.sendRaw(bytes);
      assert.equal(response.status, 200);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(ivy.received.filter((m) => m.body.toString() === 'once').length, 1);
    });

    test('INVITE gets 405 with Allow; an unknown method gets 501; OPTIONS is answered', async () => {
      const jack = await ua('jack');
      const invite = await jack.send(jack.build('INVITE', 'sip:bob@localhost'));
      assert.equal(invite.status, 405);
      assert.match(invite.get('allow')!, /MESSAGE/);
      const foo = await jack.send(jack.build('FOO', 'sip:bob@localhost'));
      assert.equal(foo.status, 501);
      const options = await jack.send(jack.build('OPTIONS', 'sip:localhost'));
      assert.equal(options.status, 200);
      assert.match(options.get('allow')!, /REGISTER/);
    });

    test('limits and policy: 413 for a big body, 403 for a foreign domain, 483 at Max-Forwards 0', async () => {
      const kate = await ua('kate');
      assert.equal((await kate.message('sip:bob@localhost', 'x'.repeat(2001))).status, 413);
      assert.equal((await kate.message('sip:someone@example.org', 'hi')).status, 403);
      const hop = kate.build('MESSAGE', 'sip:bob@localhost', { body: 'hop', headers: [] });
      hop.set('max-forwards', '0');
      assert.equal((await kate.send(hop)).status, 483);
    });

    test('malformed requests get 400 naming the problem and the server keeps serving', async () => {
      const leo = await ua('leo');
      const bad = leo.build('MESSAGE', 'sip:bob@localhost', { body: 'x' });
      bad.set('cseq', 'banana MESSAGE');
      const response = await leo.send(bad);
      assert.equal(response.status, 400);
      assert.match(response.reason, /CSeq/);
      assert.equal((await leo.send(leo.build('OPTIONS', 'sip:localhost'))).status, 200);
    });
  });
}
