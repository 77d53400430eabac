// Registrar rules of RFC 3261 §10.3 against a real SQLite store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log/index.js';
import { openStore, type LocationStore } from '../../src/store/index.js';
import { Registrar } from '../../src/registrar/index.js';
import { parseMessage, createResponse, type IncomingRequest, type SipMessage, type Header, type Peer } from '../../src/sip/index.js';

const options = { minExpires: 60, maxExpires: 3600, defaultExpires: 1800, maxContacts: 3 };
const silent = createLogger('silent');
let cseq = 1;

function register(
  contacts: string[],
  extra: Header[] = [],
  callId = 'reg-1',
  source: Peer = { proto: 'udp', host: '127.0.0.1', port: 5070 },
): { request: IncomingRequest; response: () => SipMessage } {
  const lines = [
    'REGISTER sip:localhost SIP/2.0',
    'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK' + cseq,
    'From: <sip:alice@localhost>;tag=a', 'To: <sip:alice@localhost>', `Call-ID: ${callId}`, `CSeq: ${cseq++} REGISTER`,
    ...contacts.map((c) => `Contact: ${c}`),
    ...extra.map((h) => `${h.name}: ${h.value}`),
    'Content-Length: 0', '', '',
  ];
  const message = parseMessage(Buffer.from(lines.join('\r\n')));
  let sent: SipMessage | undefined;
  const request: IncomingRequest = {
    message,
    source,
    get replied() {
      return sent !== undefined;
    },
    reply(status, reason, opts) {
      sent = createResponse(message, status, reason);
      if (opts?.headers) sent.headers.push(...opts.headers);
    },
    respond(r) {
      sent = r;
    },
  };
  return { request, response: () => sent! };
}

async function setup() {
  const path = join(mkdtempSync(join(tmpdir(), 'parley-reg-')), 'db.sqlite');
  const store = await openStore(`sqlite:${path}`);
  const registrar = new Registrar(store.locations, options, () => false, silent);
  await registrar.start();
  return { store, registrar, path };
}

async function run(registrar: Registrar, contacts: string[], extra: Header[] = [], callId?: string) {
  const r = register(contacts, extra, callId);
  await registrar.handle(r.request, 'alice@localhost');
  return r.response();
}

test('Expires header and per-contact expires; several contacts ordered by q', async () => {
  const { registrar, store } = await setup();
  const response = await run(registrar, ['<sip:alice@127.0.0.1:5070>;q=0.5', '<sip:alice@127.0.0.1:5071>;expires=120'], [{ name: 'expires', value: '600' }]);
  assert.equal(response.status, 200);
  const contacts = response.getAll('contact');
  assert.equal(contacts.length, 2);
  assert.match(contacts.find((c) => c.includes('5071'))!, /expires=120/);
  assert.match(contacts.find((c) => c.includes('5070'))!, /expires=600/);
  assert.deepEqual(registrar.lookup('alice@localhost').map((b) => b.contact), ['sip:alice@127.0.0.1:5071', 'sip:alice@127.0.0.1:5070']);
  registrar.stop();
  await store.close();
});

test('423 with Min-Expires below the minimum; the maximum caps; no Expires means the default', async () => {
  const { registrar, store } = await setup();
  const brief = await run(registrar, ['<sip:alice@127.0.0.1:5070>'], [{ name: 'expires', value: '10' }]);
  assert.equal(brief.status, 423);
  assert.equal(brief.get('min-expires'), '60');
  const capped = await run(registrar, ['<sip:alice@127.0.0.1:5070>'], [{ name: 'expires', value: '99999' }]);
  assert.match(capped.get('contact')!, /expires=3600/);
  const defaulted = await run(registrar, ['<sip:alice@127.0.0.1:5072>']);
  assert.match(defaulted.getAll('contact').find((c) => c.includes('5072'))!, /expires=1800/);
  registrar.stop();
  await store.close();
});

test('Contact * with Expires 0 removes every binding; without Expires 0 it is refused', async () => {
  const { registrar, store } = await setup();
  await run(registrar, ['<sip:alice@127.0.0.1:5070>', '<sip:alice@127.0.0.1:5071>']);
  assert.equal((await run(registrar, ['*'])).status, 400);
  assert.equal((await run(registrar, ['*'], [{ name: 'expires', value: '0' }])).status, 200);
  assert.equal(registrar.lookup('alice@localhost').length, 0);
  assert.equal(await registrar.isKnown('alice@localhost'), true, 'an unregistered user stays known');
  registrar.stop();
  await store.close();
});

test('refresh keeps one binding; an older CSeq on the same Call-ID is refused with 500', async () => {
  const { registrar, store } = await setup();
  await run(registrar, ['<sip:alice@127.0.0.1:5070>'], [], 'same');
  await run(registrar, ['<sip:alice@127.0.0.1:5070>'], [], 'same');
  assert.equal(registrar.lookup('alice@localhost').length, 1);
  cseq -= 5;
  const stale = await run(registrar, ['<sip:alice@127.0.0.1:5070>'], [], 'same');
  assert.equal(stale.status, 500);
  cseq += 10;
  registrar.stop();
  await store.close();
});

test('too many contacts are refused; bindings survive a restart', async () => {
  const { registrar, store, path } = await setup();
  const many = await run(registrar, ['<sip:a@127.0.0.1:1>', '<sip:a@127.0.0.1:2>', '<sip:a@127.0.0.1:3>', '<sip:a@127.0.0.1:4>']);
  assert.equal(many.status, 403);
  await run(registrar, ['<sip:alice@127.0.0.1:5070>']);
  registrar.stop();
  await store.close();
  const reopened = await openStore(`sqlite:${path}`);
  const again = new Registrar(reopened.locations, options, () => false, silent);
  await again.start();
  assert.deepEqual(again.lookup('alice@localhost').map((b) => b.contact), ['sip:alice@127.0.0.1:5070']);
  again.stop();
  await reopened.close();
});

test('a contact unregistered with expires=0 goes, the others stay', async () => {
  const { registrar, store } = await setup();
  await run(registrar, ['<sip:alice@127.0.0.1:5070>', '<sip:alice@127.0.0.1:5071>']);
  const r = await run(registrar, ['<sip:alice@127.0.0.1:5070>;expires=0']);
  assert.equal(r.status, 200);
  assert.deepEqual(registrar.lookup('alice@localhost').map((b) => b.contact), ['sip:alice@127.0.0.1:5071']);
  registrar.stop();
  await store.close();
});

test('an expired binding is no longer looked up and is dropped by the next sweep, one registered after a sweep found nothing due included', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  let now = Date.now();
  const path = join(mkdtempSync(join(tmpdir(), 'parley-reg-')), 'db.sqlite');
  const store = await openStore(`sqlite:${path}`);
  const registrar = new Registrar(store.locations, options, () => false, silent, () => now);
  await registrar.start();
  const unregistered: string[] = [];
  registrar.on('unregistered', (aor: string) => unregistered.push(aor));
  const registerAs = (aor: string, expires: number) =>
    registrar.handle(register(['<sip:phone@127.0.0.1:5070>'], [{ name: 'expires', value: String(expires) }]).request, aor);
  await registerAs('alice@localhost', 3600);
  now += 1000_000;
  t.mock.timers.tick(5000);
  assert.equal(registrar.aorCount, 1, 'nothing expired yet');
  await registerAs('bob@localhost', 60);
  now += 61_000;
  assert.equal(registrar.lookup('bob@localhost').length, 0, 'an expired binding is not looked up, swept or not');
  assert.equal(registrar.lookup('alice@localhost').length, 1);
  t.mock.timers.tick(5000);
  assert.deepEqual(unregistered, ['bob@localhost']);
  assert.equal(registrar.aorCount, 1);
  now += 3600_000;
  t.mock.timers.tick(5000);
  assert.deepEqual(unregistered, ['bob@localhost', 'alice@localhost']);
  assert.equal(registrar.aorCount, 0);
  registrar.stop();
  await store.close();
});

test('a connection that closes while a REGISTER of its AOR is stored drops its binding after it, not the binding that REGISTER added', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'parley-reg-')), 'db.sqlite');
  const store = await openStore(`sqlite:${path}`);
  // The store's writes wait while `held` does, so that the close comes while the REGISTER is written.
  let held: Promise<void> = Promise.resolve();
  const writes: Array<Promise<unknown>> = [];
  const locations: LocationStore = {
    replace: (...args) => {
      const write = held.then(() => store.locations.replace(...args));
      writes.push(write);
      return write;
    },
    listAll: () => store.locations.listAll(),
    removeExpired: (now) => store.locations.removeExpired(now),
    isKnown: (aor) => store.locations.isKnown(aor),
    serverKey: (name) => store.locations.serverKey(name),
  };
  const connected = new Set(['ws-1']);
  const registrar = new Registrar(locations, options, (id) => connected.has(id), silent);
  await registrar.start();
  const browser = register(['<sip:alice@browser.invalid;transport=ws>'], [], 'browser', { proto: 'ws', host: '127.0.0.1', port: 5080, connectionId: 'ws-1' });
  await registrar.handle(browser.request, 'alice@localhost');
  assert.equal(browser.response().status, 200);

  let release!: () => void;
  held = new Promise((resolve) => (release = resolve));
  const phone = register(['<sip:alice@127.0.0.1:5071>'], [], 'phone');
  const registering = registrar.handle(phone.request, 'alice@localhost');
  connected.delete('ws-1');
  registrar.connectionClosed('ws-1');
  release();
  await registering;
  // Serialised with what was asked for the AOR before it: a drop of nothing waits for the close's.
  await registrar.drop('alice@localhost', []);
  await Promise.all(writes);

  assert.equal(phone.response().status, 200);
  assert.ok(phone.response().getAll('contact').some((c) => c.startsWith('<sip:alice@127.0.0.1:5071>')), 'the phone got its 200 with its contact');
  assert.deepEqual(registrar.lookup('alice@localhost').map((b) => b.contact), ['sip:alice@127.0.0.1:5071'], 'the phone stays registered, the browser is gone');
  assert.deepEqual((await store.locations.listAll()).map((b) => b.contact), ['sip:alice@127.0.0.1:5071'], 'and so it is stored');
  registrar.stop();
  await store.close();
});

test("a user's rows the table does not hold go when it registers again: a WebSocket binding after a restart, one whose write failed", async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'parley-reg-')), 'db.sqlite');
  const store = await openStore(`sqlite:${path}`);
  const first = new Registrar(store.locations, options, () => true, silent);
  await first.start();
  const browser = register(['<sip:alice@browser.invalid;transport=ws>'], [], 'browser', { proto: 'ws', host: '127.0.0.1', port: 5080, connectionId: 'ws-1' });
  await first.handle(browser.request, 'alice@localhost');
  assert.equal(browser.response().status, 200);
  first.stop();

  // A write that is committed and then fails, as when the disk sync after the commit does.
  let failing = false;
  const locations: LocationStore = {
    replace: async (...args) => {
      await store.locations.replace(...args);
      if (failing) throw new Error('disk sync failed');
    },
    listAll: () => store.locations.listAll(),
    removeExpired: (now) => store.locations.removeExpired(now),
    isKnown: (aor) => store.locations.isKnown(aor),
    serverKey: (name) => store.locations.serverKey(name),
  };
  const restarted = new Registrar(locations, options, () => false, silent);
  await restarted.start();
  assert.equal(restarted.lookup('alice@localhost').length, 0, 'the browser did not survive the restart');
  await run(restarted, ['<sip:alice@127.0.0.1:5071>']);
  assert.deepEqual((await store.locations.listAll()).map((b) => b.contact), ['sip:alice@127.0.0.1:5071'], "the browser's row went with the phone's REGISTER");

  const bob = (contact: string) => register([contact], [], `bob-${contact}`).request;
  failing = true;
  await assert.rejects(restarted.handle(bob('<sip:bob@127.0.0.1:5072>'), 'bob@localhost'));
  failing = false;
  assert.equal(restarted.lookup('bob@localhost').length, 0, 'a failed write registers nothing');
  await restarted.handle(bob('<sip:bob@127.0.0.1:5073>'), 'bob@localhost');
  assert.deepEqual(
    (await store.locations.listAll()).filter((b) => b.aor === 'bob@localhost').map((b) => b.contact),
    ['sip:bob@127.0.0.1:5073'],
    "the row of the failed write went with the next REGISTER's",
  );
  restarted.stop();
  await store.close();
});
