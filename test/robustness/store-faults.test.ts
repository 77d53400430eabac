// Database faults: a SQLite file locked by another process, a PostgreSQL server stopped and started
// again under traffic. Parley stays alive, answers what needs the store with 503 and Retry-After
// meanwhile, logs the outage once, and serves again by itself once the store is back.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from '../support/eventually.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { freeTcpPort, killAll, startParley, tempDir, type Endpoint, type ParleyProcess } from '../support/process.js';
import { TestUA } from '../support/ua.js';
import { sleep } from './wire.js';

const uas: TestUA[] = [];
let postgres: PostgresServer | undefined;

after(async () => {
  for (const agent of uas) agent.close();
  killAll();
  await postgres?.stop();
});

async function ua(user: string, server: Endpoint): Promise<TestUA> {
  const agent = await TestUA.create({ user, server });
  uas.push(agent);
  return agent;
}

/** Parley on `db` (default: SQLite in `dir`), open registration, no practical offline limit, the XMPP gateway towards a server not there; `yaml` adds to its config. */
async function parleyOn(dir: string, db?: string, yaml = ''): Promise<ParleyProcess> {
  const config = join(dir, 'parley.yaml');
  const xmpp = `xmpp:\n  enabled: true\n  xmpp_domain: sip.xmpp.example\n  xmpp_password: secret\n  xmpp_port: ${await freeTcpPort()}\n`;
  writeFileSync(config, `auth:\n  policy: open\noffline:\n  max_per_user: 100000\n${xmpp}${yaml}`);
  return startParley({ dir, db, logLevel: 'debug', args: ['--config', config] });
}

/** bob is online, carol is known but offline, alice sends. */
async function users(parley: ParleyProcess): Promise<{ alice: TestUA; bob: TestUA; carol: TestUA }> {
  const [alice, bob, carol] = await Promise.all([ua('alice', parley.udp), ua('bob', parley.udp), ua('carol', parley.udp)]);
  assert.equal((await bob.register()).status, 200);
  assert.equal((await carol.register()).status, 200);
  assert.equal((await carol.register(0)).status, 200);
  return { alice, bob, carol };
}

function assertStoreUnavailable(response: SipMessage, what: string): void {
  assert.equal(response.status, 503, `${what}: ${response.status} ${response.reason}`);
  assert.match(response.reason, /store unavailable/, what);
  const retryAfter = Number(response.get('retry-after'));
  assert.ok(retryAfter > 0 && retryAfter <= 10, `${what}: Retry-After ${response.get('retry-after')}`);
}

function outagesLogged(parley: ParleyProcess): { unavailable: string[]; available: number } {
  const messages = parley.entries().map((entry) => String(entry.msg));
  return {
    unavailable: messages.filter((msg) => msg.startsWith('store unavailable: ')),
    available: messages.filter((msg) => msg === 'store available again').length,
  };
}

describe('database faults', () => {
  test('SQLite locked by another process: 503 with Retry-After meanwhile, sweeps survive it, normal service once released', async () => {
    const dir = tempDir();
    const parley = await parleyOn(dir);
    const { alice, bob, carol } = await users(parley);
    const created = bob.waitForRequest((m) => m.body.toString().startsWith('created room'));
    assert.equal((await bob.message('sip:chat-manager@localhost', '#create chat-posts')).status, 200);
    await created;
    const joined = bob.waitForRequest((m) => m.body.toString().includes('has joined'));
    assert.equal((await alice.message('sip:chat-posts@localhost', '#join')).status, 200);
    await joined;

    const lock = new SqliteDatabase(join(dir, 'parley.db'));
    lock.pragma('busy_timeout = 5000');
    lock.exec('BEGIN EXCLUSIVE');
    try {
      assertStoreUnavailable(await alice.register(), 'REGISTER while locked');
      assertStoreUnavailable(await alice.message('sip:carol@localhost', 'refused'), 'MESSAGE to be stored while locked');
      // Reading is not writing: a message for a registered user still goes through.
      const live = bob.waitForRequest((m) => m.body.toString() === 'live');
      assert.equal((await alice.message('sip:bob@localhost', 'live')).status, 200);
      await live;
      // A room command answered 200 at once is told it was not done.
      const notDone = bob.waitForRequest((m) => m.body.toString().includes('store is unavailable'));
      assert.equal((await bob.message('sip:chat-manager@localhost', '#create chat-locked')).status, 200);
      assert.match((await notDone).body.toString(), /not done: the store is unavailable/);
      // A room post is answered only once it is in the outbox.
      assertStoreUnavailable(await bob.message('sip:chat-posts@localhost', 'posted while locked'), 'room post while locked');
      // So is a MESSAGE the XMPP gateway takes.
      assertStoreUnavailable(await bob.message('sip:romeo*xmpp.example@sip.xmpp.example', 'for XMPP while locked'), 'MESSAGE for XMPP while locked');
      // The expiry sweep (every 5 s) runs into the lock too, and is postponed.
      await parley.waitForLog(/"task":"expired bindings sweep".*"msg":"postponed: store unavailable"/, 15_000);
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }

    assert.equal((await alice.register()).status, 200);
    assert.equal((await alice.message('sip:carol@localhost', 'stored')).status, 202);
    await parley.waitForLog('store available again');
    assert.ok(parley.alive, 'the process ended');
    const logged = outagesLogged(parley);
    assert.deepEqual(logged.unavailable, ['store unavailable: database is locked, retrying'], 'logged once per outage, with its reason');
    assert.equal(logged.available, 1);

    const delivered = carol.waitForRequest((m) => m.method === 'MESSAGE');
    assert.equal((await carol.register()).status, 200);
    assert.equal((await delivered).body.toString(), 'stored');
    assert.equal(await parley.stop().then((status) => status.code), 0);
  });

  test('PostgreSQL stopped and started again under traffic: 503 meanwhile, every 202 delivered, service resumes by itself', async () => {
    postgres ??= await startPostgres();
    const db = await postgres.createDatabase('parley_faults');
    const parley = await parleyOn(tempDir(), db);
    const { alice, bob, carol } = await users(parley);

    // Messages to carol need the store: each is acknowledged 202 (stored) or refused 503.
    const answered = new Map<string, number>();
    let sending = true;
    const traffic = (async () => {
      for (let n = 0; sending; n++) {
        const body = `m${n}`;
        answered.set(body, (await alice.message('sip:carol@localhost', body)).status);
        await sleep(10);
      }
    })();
    try {
      await eventually(() => answered.size >= 5, 'messages stored before the stop');
      await postgres.halt();
      assertStoreUnavailable(await alice.register(), 'REGISTER while PostgreSQL is down');
      await eventually(() => [...answered.values()].includes(503), 'a MESSAGE refused with 503 while PostgreSQL is down');
      await postgres.resume();
      await eventually(async () => (await alice.register()).status === 200, 'REGISTER accepted again', 20_000);
      const stored = answered.size;
      await eventually(() => answered.size >= stored + 5, 'messages stored after the restart');
    } finally {
      sending = false;
      await traffic;
    }

    assert.deepEqual(new Set(answered.values()), new Set([202, 503]), 'every MESSAGE was stored or refused with 503');
    const relayed = bob.waitForRequest((m) => m.body.toString() === 'after the restart');
    assert.equal((await alice.message('sip:bob@localhost', 'after the restart')).status, 200);
    await relayed;
    await parley.waitForLog('store available again');
    assert.ok(parley.alive, 'the process ended');
    const logged = outagesLogged(parley);
    assert.equal(logged.unavailable.length, 1, `logged once per outage: ${logged.unavailable.join(' | ')}`);
    assert.equal(logged.available, 1);

    // Nothing acknowledged was lost: carol gets exactly the messages answered 202, in order.
    const acknowledged = [...answered].filter(([, status]) => status === 202).map(([body]) => body);
    const last = carol.waitForRequest((m) => m.body.toString() === acknowledged.at(-1), 30_000);
    assert.equal((await carol.register()).status, 200);
    await last;
    assert.deepEqual(carol.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString()), acknowledged);
    assert.equal(await parley.stop().then((status) => status.code), 0);
  });

  test('PostgreSQL hung (every process stopped): requests get 503 after database_timeout instead of waiting forever, service resumes when it goes on', async () => {
    postgres ??= await startPostgres();
    const db = await postgres.createDatabase('parley_hung');
    const parley = await parleyOn(tempDir(), db, 'database_timeout: 1\n');
    const { alice, bob, carol } = await users(parley);

    postgres.freeze();
    try {
      assertStoreUnavailable(await alice.register(), 'REGISTER while PostgreSQL hangs');
      assertStoreUnavailable(await alice.message('sip:carol@localhost', 'refused'), 'MESSAGE to be stored while PostgreSQL hangs');
      // The connections whose statements timed out are not lent again: the next requests are answered as soon.
      assertStoreUnavailable(await alice.register(), 'REGISTER again while PostgreSQL hangs');
    } finally {
      postgres.thaw();
    }

    await eventually(async () => (await alice.register()).status === 200, 'REGISTER accepted again', 20_000);
    assert.equal((await alice.message('sip:carol@localhost', 'stored')).status, 202);
    const relayed = bob.waitForRequest((m) => m.body.toString() === 'after the hang');
    assert.equal((await alice.message('sip:bob@localhost', 'after the hang')).status, 200);
    await relayed;
    await parley.waitForLog('store available again');
    const logged = outagesLogged(parley);
    assert.equal(logged.unavailable.length, 1, `logged once per outage: ${logged.unavailable.join(' | ')}`);
    assert.equal(logged.available, 1);

    const delivered = carol.waitForRequest((m) => m.method === 'MESSAGE');
    assert.equal((await carol.register()).status, 200);
    assert.equal((await delivered).body.toString(), 'stored');
    assert.ok(parley.alive, 'the process ended');
    assert.equal(await parley.stop().then((status) => status.code), 0);
  });
});
