import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { openStore, StoreError, type Binding, type Store, type StoredMessage, type StoredSubscription, type StoreDriver } from '../../src/store/index.js';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { migrations } from '../../src/store/migrations/index.js';
import { eventually } from '../support/eventually.js';
import { freePort, startPostgres, type PostgresServer } from '../support/postgres.js';

/** Well past 2^32 ms, so a column too narrow for real timestamps would show. */
const NOW = 1_750_000_000_000;
const MINUTE = 60_000;

interface Backend {
  start(): Promise<void>;
  /** URL of a database no other test uses. */
  freshUrl(): Promise<string>;
  stop(): Promise<void>;
}

function sqliteBackend(): Backend {
  let dir = '';
  let files = 0;
  return {
    async start() {
      dir = await mkdtemp(join(tmpdir(), 'parley-store-'));
    },
    async freshUrl() {
      files += 1;
      return `sqlite:${join(dir, `store-${files}.db`)}`;
    },
    async stop() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function postgresBackend(): Backend {
  let server: PostgresServer | undefined;
  let databases = 0;
  return {
    async start() {
      server = await startPostgres();
    },
    async freshUrl() {
      databases += 1;
      return server!.createDatabase(`parley_test_${databases}`);
    },
    async stop() {
      await server?.stop();
    },
  };
}

function binding(aor: string, contact: string, overrides: Partial<Binding> = {}): Binding {
  return {
    aor,
    contact,
    expiresAt: NOW + 60 * MINUTE,
    q: 1,
    callId: `call-${contact}`,
    cseq: 1,
    source: { proto: 'udp', host: '192.0.2.10', port: 5060 },
    updatedAt: NOW,
    ...overrides,
  };
}

function message(aor: string, overrides: Partial<Omit<StoredMessage, 'id'>> = {}): Omit<StoredMessage, 'id'> {
  return {
    aor,
    fromHeader: '"Alice" <sip:alice@example.com>',
    toHeader: `<sip:${aor}>`,
    contentType: 'text/plain;charset=utf-8',
    body: Buffer.from('hello'),
    receivedAt: NOW,
    expiresAt: NOW + 60 * MINUTE,
    ...overrides,
  };
}

/** A database at the URL without Parley's store around it, to set up an older schema. */
function rawDatabase(driver: StoreDriver, url: string): Kysely<any> {
  if (driver === 'sqlite') return new Kysely({ dialect: new SqliteDialect({ database: new SqliteDatabase(url.slice('sqlite:'.length)) }) });
  return new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }) });
}

const backends: Record<StoreDriver, () => Backend> = { sqlite: sqliteBackend, postgres: postgresBackend };

for (const [driver, createBackend] of Object.entries(backends)) {
  describe(`store on ${driver}`, () => {
    const backend = createBackend();
    let url = '';
    let store: Store;

    before(() => backend.start());
    after(() => backend.stop());
    beforeEach(async () => {
      url = await backend.freshUrl();
      store = await openStore(url);
    });
    afterEach(() => store.close());

    /** A new database with only the migrations before `first`, as an earlier Parley left it, open without the store. */
    async function migratedBefore(first: string): Promise<{ url: string; old: Kysely<any> }> {
      const earlier = await backend.freshUrl();
      const old = rawDatabase(driver as StoreDriver, earlier);
      const before = Object.entries(migrations).filter(([name]) => name < first);
      const provider = { getMigrations: async () => Object.fromEntries(before.map(([name, m]) => [name, { up: (db: Kysely<any>) => m.up(db, driver as StoreDriver) }])) };
      assert.equal((await new Migrator({ db: old, provider }).migrateToLatest()).error, undefined);
      return { url: earlier, old };
    }

    test('reports its driver', () => {
      assert.equal(store.driver, driver);
    });

    describe('users', () => {
      const alice = { username: 'alice', domain: 'a.example', ha1Md5: 'md5-1', ha1Sha256: 'sha-1' };

      test('put then get returns the credentials and a creation time', async () => {
        const startedAt = Date.now();
        await store.users.put(alice);
        const stored = await store.users.get('alice', 'a.example');
        assert.ok(stored);
        assert.deepEqual({ ...stored, createdAt: 0 }, { ...alice, createdAt: 0 });
        assert.equal(typeof stored.createdAt, 'number');
        assert.ok(stored.createdAt >= startedAt && stored.createdAt <= Date.now());
        assert.equal(await store.users.get('alice', 'b.example'), undefined);
        assert.equal(await store.users.get('bob', 'a.example'), undefined);
      });

      test('put again replaces the credentials and keeps the creation time', async () => {
        await store.users.put(alice);
        const first = await store.users.get('alice', 'a.example');
        await store.users.put({ ...alice, ha1Md5: 'md5-2', ha1Sha256: 'sha-2' });
        const replaced = await store.users.get('alice', 'a.example');
        assert.deepEqual(replaced, { ...alice, ha1Md5: 'md5-2', ha1Sha256: 'sha-2', createdAt: first!.createdAt });
        assert.equal((await store.users.list()).length, 1);
      });

      test('remove reports whether a user was there', async () => {
        await store.users.put(alice);
        assert.equal(await store.users.remove('alice', 'a.example'), true);
        assert.equal(await store.users.get('alice', 'a.example'), undefined);
        assert.equal(await store.users.remove('alice', 'a.example'), false);
      });

      test('list orders by domain then username and filters by domain', async () => {
        for (const [username, domain] of [['zed', 'a.example'], ['bob', 'b.example'], ['amy', 'a.example']]) {
          await store.users.put({ username: username!, domain: domain!, ha1Md5: 'm', ha1Sha256: 's' });
        }
        const names = (users: { username: string; domain: string }[]) => users.map((u) => `${u.username}@${u.domain}`);
        assert.deepEqual(names(await store.users.list()), ['amy@a.example', 'zed@a.example', 'bob@b.example']);
        assert.deepEqual(names(await store.users.list('b.example')), ['bob@b.example']);
        assert.deepEqual(await store.users.list('c.example'), []);
      });
    });

    describe('locations', () => {
      const aor = 'alice@a.example';

      test('replace stores bindings with every field, optional ones absent when not given', async () => {
        const full = binding(aor, '<sip:alice@192.0.2.10:5060;transport=tcp>', {
          q: 0.7,
          cseq: 42,
          connectionId: 'conn-7',
          instance: '<urn:uuid:00000000-0000-1000-8000-000a95a0e128>',
          regId: 1,
          userAgent: 'baresip',
          path: '<sip:edge1.example;lr>, <sip:edge2.example;lr>',
        });
        const bare = binding(aor, 'sip:alice@198.51.100.7');
        await store.locations.replace(aor, [full, bare]);
        const listed = await store.locations.listAll();
        assert.deepEqual(listed, [full, bare]);
        assert.equal('connectionId' in listed[1]!, false);
      });

      test('replace swaps the whole set of an AOR and leaves other AORs alone', async () => {
        const bob = binding('bob@a.example', 'sip:bob@192.0.2.20');
        await store.locations.replace('bob@a.example', [bob]);
        await store.locations.replace(aor, [binding(aor, 'sip:alice@192.0.2.1'), binding(aor, 'sip:alice@192.0.2.2')]);
        const changed = binding(aor, 'sip:alice@192.0.2.2', { cseq: 2, expiresAt: NOW + 2 * MINUTE });
        await store.locations.replace(aor, [changed, binding(aor, 'sip:alice@192.0.2.3')]);
        assert.deepEqual(await store.locations.listAll(), [changed, binding(aor, 'sip:alice@192.0.2.3'), bob]);
      });

      test('the address a binding was registered from comes back as the same address, IPv6 and WebSocket ones too', async () => {
        const sources = [
          { proto: 'tls', host: '2001:db8::7', port: 5061 },
          { proto: 'ws', host: '192.0.2.30', port: 49152 },
        ] as const;
        const bindings = sources.map((source, i) => binding(aor, `sip:alice@192.0.2.${i + 1}`, { source: { ...source } }));
        await store.locations.replace(aor, bindings);
        assert.deepEqual((await store.locations.listAll()).map((b) => b.source), sources);
      });

      test('replace with no bindings removes them but the AOR stays known', async () => {
        assert.equal(await store.locations.isKnown(aor), false);
        await store.locations.replace(aor, [binding(aor, 'sip:alice@192.0.2.1')]);
        await store.locations.replace(aor, []);
        assert.deepEqual(await store.locations.listAll(), []);
        assert.equal(await store.locations.isKnown(aor), true);
        assert.equal(await store.locations.isKnown('bob@a.example'), false);
      });

      test('replace is all or nothing', async () => {
        const original = binding(aor, 'sip:alice@192.0.2.1');
        await store.locations.replace(aor, [original]);
        // A binding without a Call-ID, which the store refuses: neither the binding before it, nor the removal of the original, is kept.
        const refused = { ...binding(aor, 'sip:alice@192.0.2.9'), callId: null as unknown as string };
        await assert.rejects(store.locations.replace(aor, [binding(aor, 'sip:alice@192.0.2.8'), refused]));
        assert.deepEqual(await store.locations.listAll(), [original]);
      });

      test('removeExpired removes bindings expiring at or before now', async () => {
        await store.locations.replace(aor, [
          binding(aor, 'sip:alice@192.0.2.1', { expiresAt: NOW - 1 }),
          binding(aor, 'sip:alice@192.0.2.2', { expiresAt: NOW }),
          binding(aor, 'sip:alice@192.0.2.3', { expiresAt: NOW + 1 }),
        ]);
        assert.equal(await store.locations.removeExpired(NOW), 2);
        assert.deepEqual(
          (await store.locations.listAll()).map((b) => b.contact),
          ['sip:alice@192.0.2.3'],
        );
        assert.equal(await store.locations.removeExpired(NOW), 0);
      });
    });

    describe('offline messages', () => {
      const aor = 'bob@a.example';

      const everything = { afterId: 0, limit: 1000 };

      test('listFor returns the AOR\'s unexpired messages oldest first', async () => {
        const first = await store.offline.add(message(aor, { body: Buffer.from('one') }), 10);
        await store.offline.add(message('carol@a.example'), 10);
        const expired = await store.offline.add(message(aor, { expiresAt: NOW + MINUTE }), 10);
        const third = await store.offline.add(message(aor, { body: Buffer.from('three'), receivedAt: NOW + 5 }), 10);
        assert.equal(typeof first, 'number');
        assert.ok((expired as number) > (first as number) && (third as number) > (expired as number));

        const listed = await store.offline.listFor(aor, NOW + MINUTE, everything);
        assert.deepEqual(listed, [
          { id: first, ...message(aor, { body: Buffer.from('one') }) },
          { id: third, ...message(aor, { body: Buffer.from('three'), receivedAt: NOW + 5 }) },
        ]);
        assert.deepEqual(await store.offline.listFor('nobody@a.example', NOW, everything), []);
      });

      test('listFor returns a page: at most limit messages after the id given', async () => {
        const ids: number[] = [];
        for (let i = 0; i < 5; i++) ids.push((await store.offline.add(message(aor, { body: Buffer.from(`m${i}`) }), 10)) as number);
        const first = await store.offline.listFor(aor, NOW, { afterId: 0, limit: 2 });
        assert.deepEqual(first.map((m) => m.id), ids.slice(0, 2));
        const second = await store.offline.listFor(aor, NOW, { afterId: ids[1]!, limit: 2 });
        assert.deepEqual(second.map((m) => m.body.toString()), ['m2', 'm3']);
        const last = await store.offline.listFor(aor, NOW, { afterId: ids[3]!, limit: 2 });
        assert.deepEqual(last.map((m) => m.id), ids.slice(4));
      });

      test('the sender\'s Date is kept apart from the receive time', async () => {
        const sentAt = Date.UTC(9999, 0, 1);
        await store.offline.add(message(aor, { sentAt }), 10);
        const [stored] = await store.offline.listFor(aor, NOW, everything);
        assert.equal(stored!.sentAt, sentAt);
        assert.equal(stored!.receivedAt, NOW);
      });

      test('add refuses with full at the per-user limit, counting only that AOR', async () => {
        await store.offline.add(message('carol@a.example'), 2);
        const first = await store.offline.add(message(aor), 2);
        await store.offline.add(message(aor), 2);
        assert.equal(await store.offline.add(message(aor), 2), 'full');
        assert.equal(await store.offline.count(aor), 2);

        await store.offline.remove(first as number);
        assert.equal(await store.offline.count(aor), 1);
        assert.equal(typeof (await store.offline.add(message(aor), 2)), 'number');
        assert.equal(await store.offline.count(aor), 2);
      });

      test('messages already expired do not count against the limit', async () => {
        await store.offline.add(message(aor, { expiresAt: NOW + MINUTE }), 1);
        const later = message(aor, { receivedAt: NOW + MINUTE, expiresAt: NOW + 2 * MINUTE });
        assert.equal(typeof (await store.offline.add(later, 1)), 'number');
        assert.equal(await store.offline.add(later, 1), 'full');
      });

      test('a binary body comes back byte for byte as a Buffer', async () => {
        const body = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0a, 0x00]);
        await store.offline.add(message(aor, { contentType: 'application/octet-stream', body }), 10);
        const [stored] = await store.offline.listFor(aor, NOW, everything);
        assert.ok(Buffer.isBuffer(stored!.body));
        assert.deepEqual([...stored!.body], [...body]);
      });

      test('removeExpired removes messages expiring at or before now and count follows', async () => {
        await store.offline.add(message(aor, { expiresAt: NOW }), 10);
        await store.offline.add(message(aor, { expiresAt: NOW + 1 }), 10);
        await store.offline.add(message('carol@a.example', { expiresAt: NOW - 1 }), 10);
        assert.equal(await store.offline.count(aor), 2);
        assert.equal(await store.offline.removeExpired(NOW), 2);
        assert.equal(await store.offline.count(aor), 1);
        assert.equal(await store.offline.count('carol@a.example'), 0);
      });

      test('remove of an unknown id does nothing', async () => {
        const id = await store.offline.add(message(aor), 10);
        await store.offline.remove((id as number) + 1000);
        assert.equal(await store.offline.count(aor), 1);
      });
    });

    describe('presence', () => {
      const dialog = { callId: 'a84b4c76e66710@pc33', localTag: 'p1', remoteTag: '1928301774' };
      const subscription = (overrides: Partial<StoredSubscription> = {}): StoredSubscription => ({
        ...dialog,
        presentity: 'bob@b.example',
        watcher: 'alice@a.example',
        localHeader: '<sip:bob@b.example>;tag=p1',
        remoteHeader: '"Alice" <sip:alice@a.example>;tag=1928301774',
        event: 'presence;id=7',
        routeSet: ['<sip:p1.example;lr>', '<sip:p2.example;lr>, <sip:p3.example;lr>'],
        contact: '<sip:bob@192.0.2.1:5060>',
        remoteTarget: 'sip:alice@198.51.100.7:5062;transport=tcp',
        source: 'tcp:198.51.100.7:40112',
        remoteCSeq: 2_147_483_647,
        localCSeq: 100,
        expiresAt: NOW + 10 * MINUTE,
        ...overrides,
      });

      test('publications come back in the order they were first made, changed and removed as written; expired ones are deleted', async () => {
        const document = '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@b.example"/>';
        const first = await store.presence.addPublication({ presentity: 'bob@b.example', etag: 'e1', document, expiresAt: NOW + MINUTE });
        const second = await store.presence.addPublication({ presentity: 'bob@b.example', etag: 'e2', document, expiresAt: NOW + MINUTE });
        const removed = await store.presence.addPublication({ presentity: 'carol@b.example', etag: 'e3', document, expiresAt: NOW + MINUTE });
        await store.presence.addPublication({ presentity: 'dave@b.example', etag: 'e4', document, expiresAt: NOW });
        await store.presence.updatePublication(first, { etag: 'e5', document: `${document} `, expiresAt: NOW + 2 * MINUTE });
        await store.presence.removePublication(removed);
        const { publications } = await store.presence.loadPresence(NOW);
        assert.deepEqual(publications, [
          { id: first, presentity: 'bob@b.example', etag: 'e5', document: `${document} `, expiresAt: NOW + 2 * MINUTE },
          { id: second, presentity: 'bob@b.example', etag: 'e2', document, expiresAt: NOW + MINUTE },
        ]);
        assert.ok(second > first);
        assert.equal((await store.presence.loadPresence(NOW - MINUTE)).publications.length, 2, 'the expired one was deleted');
      });

      test('a subscription comes back with every field; put again replaces it, the NOTIFY CSeq is raised, removal and expiry delete it', async () => {
        await store.presence.putSubscription(subscription());
        await store.presence.putSubscription(subscription({ callId: 'other', expiresAt: NOW }));
        assert.deepEqual((await store.presence.loadPresence(NOW)).subscriptions, [subscription()]);

        const refreshed = subscription({ remoteTarget: 'sip:alice@198.51.100.8', source: 'udp:198.51.100.8:5060', remoteCSeq: 3, expiresAt: NOW + 20 * MINUTE });
        await store.presence.putSubscription(refreshed);
        await store.presence.setNotifyCSeq(dialog, 200);
        await store.presence.setNotifyCSeq({ ...dialog, remoteTag: 'unknown' }, 300);
        assert.deepEqual((await store.presence.loadPresence(NOW)).subscriptions, [{ ...refreshed, localCSeq: 200 }]);

        await store.presence.removeSubscription(dialog);
        assert.deepEqual((await store.presence.loadPresence(NOW - MINUTE)).subscriptions, []);
      });

      test('what a gateway reported is set, replaced and removed by source and address; watchers of a network likewise', async () => {
        const away = JSON.stringify({ basic: 'open', notes: [], activities: ['away'] });
        await store.presence.putGatewayState('xmpp', 'romeo@x.example', JSON.stringify({ basic: 'open', notes: [], activities: [] }));
        await store.presence.putGatewayState('xmpp', 'romeo@x.example', away);
        await store.presence.putGatewayState('gateway', 'romeo@x.example', away);
        await store.presence.putGatewayState('gateway', 'romeo@x.example', null);
        await store.presence.putGatewayState('gateway', 'nobody@x.example', null);
        assert.deepEqual((await store.presence.loadPresence(NOW)).gatewayStates, [{ source: 'xmpp', presentity: 'romeo@x.example', state: away }]);

        const watcher = { network: 'xmpp', presentity: 'bob@b.example', watcher: 'juliet@x.example', alias: 'bob*b.example@sip.x.example' };
        await store.presence.putGatewayWatcher({ ...watcher, alias: 'old' });
        await store.presence.putGatewayWatcher(watcher);
        await store.presence.putGatewayWatcher({ ...watcher, watcher: 'nurse@x.example' });
        await store.presence.removeGatewayWatcher({ network: 'xmpp', presentity: 'bob@b.example', watcher: 'nurse@x.example' });
        assert.deepEqual(await store.presence.loadGatewayWatchers('xmpp'), [watcher]);
        assert.deepEqual(await store.presence.loadGatewayWatchers('irc'), []);
      });
    });

    describe('outbox', () => {
      const record = (kind: string, recipients: string[], text: string) => ({ kind, recipients, payload: Buffer.from(text), createdAt: 1000 });

      test('adds made together get ids in the order asked, and come back pending, per kind, oldest first', async () => {
        const ids = await Promise.all(['a', 'b', 'c'].map((text) => store.outbox.add(record('room', ['x@h', 'y@h'], text))));
        const other = await store.outbox.add(record('xmpp', ['xmpp'], 'd'));
        assert.deepEqual([...ids].sort((p, q) => p - q), ids);
        assert.ok(other > ids[2]!);
        const { records, cursors } = await store.outbox.pending('room');
        assert.deepEqual(records.map((r) => [r.id, r.recipients, r.payload.toString(), r.createdAt]), ids.map((id, i) => [id, ['x@h', 'y@h'], 'abc'[i], 1000]));
        assert.equal(cursors.size, 0);
      });

      test('progress deletes finished rows and keeps the cursors of recipients done with rows still pending', async () => {
        const [first, second] = await Promise.all(['a', 'b'].map((text) => store.outbox.add(record('room', ['x@h', 'y@h'], text))));
        await store.outbox.record({ finished: [], cursors: [{ kind: 'room', recipient: 'x@h', doneId: first! }] });
        await store.outbox.record({ finished: [first!], cursors: [{ kind: 'room', recipient: 'x@h', doneId: second! }] });
        const { records, cursors } = await store.outbox.pending('room');
        assert.deepEqual(records.map((r) => r.id), [second]);
        assert.deepEqual([...cursors], [['x@h', second]]);
        await store.outbox.record({ finished: [second!], cursors: [] });
        const after = await store.outbox.pending('room');
        assert.deepEqual(after.records, []);
        assert.equal(after.cursors.size, 0, 'cursors below every pending row are gone');
      });
    });

    if (driver === 'postgres') {
      test('a connection lost mid-statement fails it as UNAVAILABLE, the process goes on and a new connection serves the next', async () => {
        await store.users.put({ username: 'alice', domain: 'a.example', ha1Md5: 'm', ha1Sha256: 's' });
        const admin = new pg.Client({ connectionString: url });
        await admin.connect();
        try {
          // The read waits on the lock, so its server process can be killed while the statement is under way.
          await admin.query('begin');
          await admin.query('lock table users in access exclusive mode');
          const blocked = store.users.get('alice', 'a.example').then(
            () => assert.fail('the statement survived its connection'),
            (error: unknown) => error,
          );
          const waiting = await eventually(async () => {
            const { rows } = await admin.query<{ pid: number }>("select pid from pg_stat_activity where wait_event_type = 'Lock' and query like '%users%'");
            return rows[0]?.pid;
          }, 'the read waiting on the lock');
          process.kill(waiting, 'SIGKILL');
          const failed = await blocked;
          assert.ok(failed instanceof StoreError, `expected a StoreError, got ${String(failed)}`);
          assert.equal(failed.code, 'UNAVAILABLE');
        } finally {
          await admin.end().catch(() => {});
        }
        // The server restarts its processes after one was killed; the pool dropped the dead connection.
        const user = await eventually(() => store.users.get('alice', 'a.example').catch(() => undefined), 'a read through a new connection', 20_000);
        assert.equal(user.ha1Md5, 'm');
      });
    }

    test('messages stored before receive times were kept apart still show the Date they showed', async () => {
      const aor = 'bob@a.example';
      const { url: earlier, old } = await migratedBefore('004');
      const sendersDate = Date.UTC(2001, 0, 1);
      await old.insertInto('offline_messages')
        .values({ aor, from_header: '<sip:alice@a.example>', to_header: `<sip:${aor}>`, content_type: 'text/plain', body: Buffer.from('old'), received_at: sendersDate, expires_at: NOW + MINUTE })
        .execute();
      await old.destroy();

      const migrated = await openStore(earlier);
      try {
        const [stored] = await migrated.offline.listFor(aor, NOW, { afterId: 0, limit: 10 });
        assert.equal(stored!.sentAt, sendersDate);
      } finally {
        await migrated.close();
      }
    });

    test('messages stored before per-device delivery stay, for whichever device of the user registers next', async () => {
      const aor = 'bob@a.example';
      const { url: earlier, old } = await migratedBefore('010');
      await old.insertInto('offline_messages')
        .values({ aor, from_header: '<sip:alice@a.example>', to_header: `<sip:${aor}>`, content_type: 'text/plain', body: Buffer.from('old'), received_at: NOW, sent_at: null, expires_at: NOW + MINUTE })
        .execute();
      await old.destroy();

      const migrated = await openStore(earlier);
      try {
        const stored = await migrated.offline.listFor(aor, NOW, { afterId: 0, limit: 10, anyDevice: true });
        assert.deepEqual(stored.map((m) => m.body.toString()), ['old']);
        assert.deepEqual(await migrated.deliveries.pendingCounts(aor), []);
      } finally {
        await migrated.close();
      }
    });

    test('devices without +sip.instance kept under their whole contact move to its address: two contacts of one address are one device, what waited for either waits once', async () => {
      const aor = 'zoe@a.example';
      const { url: earlier, old } = await migratedBefore('014');
      const ids: number[] = [];
      for (const body of ['one', 'two']) {
        const row = { aor, from_header: '<sip:alice@a.example>', to_header: `<sip:${aor}>`, content_type: 'text/plain', body: Buffer.from(body), received_at: NOW, sent_at: null, expires_at: NOW + MINUTE, per_device: 1 };
        ids.push(Number((await old.insertInto('offline_messages').values(row).returning('id').executeTakeFirstOrThrow()).id));
      }
      const first = 'sip:zoe@192.0.2.5:5060;rinstance=a';
      const second = 'sip:zoe@192.0.2.5:5060;rinstance=b;transport=udp';
      const devices = [[first, NOW - 2 * MINUTE], [second, NOW - MINUTE], ['urn:uuid:z-1', NOW - 3 * MINUTE], ['sip:zoe@192.0.2.6:5070', NOW - 5 * MINUTE]] as const;
      for (const [device, lastSeen] of devices) await old.insertInto('devices').values({ aor, device, contact: device.startsWith('urn:') ? 'sip:zoe@192.0.2.7' : device, user_agent: null, last_seen: lastSeen }).execute();
      for (const [id, device] of [[ids[0], first], [ids[0], second], [ids[0], 'urn:uuid:z-1'], [ids[1], second]] as const) {
        await old.insertInto('message_deliveries').values({ message_id: id, aor, device, priority: 0 }).execute();
      }
      await old.destroy();

      const migrated = await openStore(earlier);
      try {
        const remembered = await migrated.deliveries.devicesOf(aor, 0);
        assert.deepEqual(remembered.map((d) => [d.device, d.contact, d.lastSeen]), [
          ['sip:zoe@192.0.2.5:5060', second, NOW - MINUTE], ['sip:zoe@192.0.2.6:5070', 'sip:zoe@192.0.2.6:5070', NOW - 5 * MINUTE], ['urn:uuid:z-1', 'sip:zoe@192.0.2.7', NOW - 3 * MINUTE],
        ]);
        const queue = await migrated.deliveries.pendingFor(aor, 'sip:zoe@192.0.2.5:5060', NOW, undefined, 10);
        assert.deepEqual(queue.map(({ message }) => message.body.toString()), ['one', 'two']);
        assert.deepEqual((await migrated.deliveries.pendingCounts(aor)).map((c) => [c.device, c.pending]).sort(), [['sip:zoe@192.0.2.5:5060', 2], ['urn:uuid:z-1', 1]]);
      } finally {
        await migrated.close();
      }
    });

    test('bindings, known users and remembered devices written before known users lost their rowid are all kept, and REGISTERs go on replacing them', async () => {
      const { url: earlier, old } = await migratedBefore('015');
      const bob = 'bob@a.example';
      const carol = 'carol@a.example';
      const location = (aor: string, contact: string, instance: string | null) => ({
        aor, contact, expires_at: NOW + MINUTE, q: 0.5, call_id: `call-${contact}`, cseq: 7, source: 'udp:192.0.2.10:5060',
        connection_id: null, instance, reg_id: instance ? 1 : null, user_agent: 'Phone/1', path: null, updated_at: NOW - MINUTE,
      });
      await old.insertInto('locations').values([
        location(bob, 'sip:bob@192.0.2.10:5060', '<urn:uuid:b-1>'), location(bob, 'sip:bob@192.0.2.11:5060', null), location(carol, 'sip:carol@192.0.2.12:5060', null),
      ]).execute();
      await old.insertInto('known_aors').values([{ aor: bob, first_seen: NOW - 9 * MINUTE }, { aor: carol, first_seen: NOW - 8 * MINUTE }, { aor: 'dave@a.example', first_seen: NOW - 7 * MINUTE }]).execute();
      await old.insertInto('devices').values([
        { aor: bob, device: 'urn:uuid:b-1', contact: 'sip:bob@192.0.2.10:5060', user_agent: 'Phone/1', last_seen: NOW - MINUTE },
        { aor: bob, device: 'sip:bob@192.0.2.11:5060', contact: 'sip:bob@192.0.2.11:5060', user_agent: null, last_seen: NOW - 2 * MINUTE },
        { aor: 'dave@a.example', device: 'sip:dave@192.0.2.13', contact: 'sip:dave@192.0.2.13', user_agent: null, last_seen: NOW - 3 * MINUTE },
      ]).execute();
      await old.destroy();

      const migrated = await openStore(earlier);
      try {
        const bindings = await migrated.locations.listAll();
        assert.deepEqual(bindings.map((b) => [b.aor, b.contact, b.instance, b.q, b.cseq, b.userAgent, b.updatedAt]), [
          [bob, 'sip:bob@192.0.2.10:5060', '<urn:uuid:b-1>', 0.5, 7, 'Phone/1', NOW - MINUTE],
          [bob, 'sip:bob@192.0.2.11:5060', undefined, 0.5, 7, 'Phone/1', NOW - MINUTE],
          [carol, 'sip:carol@192.0.2.12:5060', undefined, 0.5, 7, 'Phone/1', NOW - MINUTE],
        ]);
        for (const aor of [bob, carol, 'dave@a.example']) assert.equal(await migrated.locations.isKnown(aor), true, aor);
        assert.equal(await migrated.locations.isKnown('eve@a.example'), false);
        assert.deepEqual((await migrated.deliveries.devicesOf(bob, 0)).map((d) => [d.device, d.contact, d.lastSeen]), [
          ['sip:bob@192.0.2.11:5060', 'sip:bob@192.0.2.11:5060', NOW - 2 * MINUTE], ['urn:uuid:b-1', 'sip:bob@192.0.2.10:5060', NOW - MINUTE],
        ]);
        assert.deepEqual(await migrated.deliveries.aorsWithDevices(NOW - 2 * MINUTE), [bob]);

        await migrated.locations.replace(carol, [binding(carol, 'sip:carol@192.0.2.14:5060')]);
        assert.deepEqual((await migrated.locations.listAll()).filter((b) => b.aor === carol).map((b) => b.contact), ['sip:carol@192.0.2.14:5060']);
        assert.deepEqual((await migrated.deliveries.devicesOf(carol, 0)).map((d) => [d.device, d.lastSeen]), [['sip:carol@192.0.2.14:5060', NOW]]);
      } finally {
        await migrated.close();
      }
      if (driver === 'sqlite') {
        // Each known user stored once, in its primary key's B-tree: SQLite reads no rowid of it.
        const file = new SqliteDatabase(earlier.slice('sqlite:'.length), { readonly: true });
        try {
          assert.throws(() => file.prepare('select rowid from known_aors'), /no such column: rowid/);
          assert.deepEqual(file.prepare(`select name from sqlite_master where type = 'index' and tbl_name = 'known_aors'`).pluck().all(), []);
        } finally {
          file.close();
        }
      }
    });

    test('the request a message came in as is kept in typed columns; strings stored before are moved into them', async () => {
      const aor = 'bob@a.example';
      const { url: earlier, old } = await migratedBefore('011');
      const row = { aor, from_header: '<sip:alice@a.example>', to_header: `<sip:${aor}>`, content_type: 'text/plain', received_at: NOW, sent_at: null, expires_at: NOW + MINUTE };
      for (const [body, origin] of [['kept', 'a1b2@host.example|tag-9|42'], ['unreadable', 'no separators'], ['none', null]] as const) {
        await old.insertInto('offline_messages').values({ ...row, body: Buffer.from(body), origin }).execute();
      }
      await old.destroy();

      const migrated = await openStore(earlier);
      try {
        const stored = await migrated.offline.listFor(aor, NOW, { afterId: 0, limit: 10 });
        assert.deepEqual(stored.map((m) => [m.body.toString(), m.origin]), [
          ['kept', { callId: 'a1b2@host.example', fromTag: 'tag-9', cseq: 42 }], ['unreadable', undefined], ['none', undefined],
        ]);
        const origin = { callId: 'x|y@z', fromTag: '', cseq: 2 ** 31 - 1 };
        const id = await migrated.offline.add(message(aor, { origin }), 10);
        assert.deepEqual((await migrated.offline.listFor(aor, NOW, { afterId: id as number - 1, limit: 1 }))[0]!.origin, origin);
      } finally {
        await migrated.close();
      }
    });

    test('a server key is drawn once and kept: the same for every caller and after reopening', async () => {
      const key = await store.locations.serverKey('temporary-gruu');
      assert.equal(key.length, 32);
      assert.deepEqual(await store.locations.serverKey('temporary-gruu'), key);
      assert.notDeepEqual(await store.locations.serverKey('another'), key);
      await store.close();
      store = await openStore(url);
      assert.deepEqual(await store.locations.serverKey('temporary-gruu'), key);
    });

    test('per-device deliveries: devices remembered from their bindings, queues by priority then age, a message gone with its last delivery', async () => {
      const aor = 'carol@a.example';
      const phone = { ...binding(aor, 'sip:carol@192.0.2.7'), instance: '"<urn:uuid:AB-1>"', updatedAt: NOW };
      await store.locations.replace(aor, [phone, { ...binding(aor, 'sip:carol@192.0.2.8'), updatedAt: NOW - 5 * MINUTE }]);
      await store.locations.replace(aor, []);
      const devices = await store.deliveries.devicesOf(aor, NOW - MINUTE);
      assert.deepEqual(devices.map((d) => [d.device, d.contact, d.lastSeen]), [['urn:uuid:ab-1', 'sip:carol@192.0.2.7', NOW]], 'kept after unregistering; the older one is out of the window');

      const urgent = await store.deliveries.add(message(aor, { body: Buffer.from('normal') }), ['urn:uuid:ab-1', 'laptop'], 0, 10);
      const receipt = await store.deliveries.add(message(aor, { body: Buffer.from('receipt') }), ['urn:uuid:ab-1'], 1, 10);
      const later = await store.deliveries.add(message(aor, { body: Buffer.from('later') }), ['urn:uuid:ab-1'], 0, 10);
      const queue = await store.deliveries.pendingFor(aor, 'urn:uuid:ab-1', NOW, undefined, 10);
      assert.deepEqual(queue.map((d) => d.message.body.toString()), ['normal', 'later', 'receipt']);
      const page = await store.deliveries.pendingFor(aor, 'urn:uuid:ab-1', NOW, { priority: 0, messageId: later as number }, 10);
      assert.deepEqual(page.map((d) => d.message.id), [receipt]);
      assert.deepEqual(await store.offline.listFor(aor, NOW, { afterId: 0, limit: 10, anyDevice: true }), [], 'not for whichever device comes next');

      await store.deliveries.done([urgent as number], 'urn:uuid:ab-1');
      assert.equal(await store.offline.count(aor), 3, 'the laptop has still to take it');
      await store.deliveries.done([urgent as number], 'laptop');
      assert.equal(await store.offline.count(aor), 2);
      const dan = 'dan@a.example';
      await store.locations.replace(dan, [
        { ...binding(dan, 'sip:dan@192.0.2.9'), instance: '"<urn:uuid:DA-1>"', updatedAt: NOW - 5 * MINUTE },
        { ...binding(dan, 'sip:dan@192.0.2.10'), instance: '"<urn:uuid:DA-2>"', updatedAt: NOW + 2 * MINUTE },
      ]);
      assert.deepEqual(await store.deliveries.removeStale(NOW + MINUTE), [aor], 'the users left without a device');
      assert.deepEqual(await store.deliveries.devicesOf(aor, 0), []);
      assert.deepEqual((await store.deliveries.devicesOf(dan, 0)).map((d) => d.device), ['urn:uuid:da-2']);
      assert.equal(await store.offline.count(aor), 0, 'what only forgotten devices had to take goes with them');
    });

    test('per-device deliveries: a device may have some waiting once something was stored for it, until a read of its queue found none', async () => {
      const aor = 'fred@a.example';
      const device = 'sip:fred@192.0.2.11';
      await eventually(() => !store.deliveries.mayHaveWaiting(aor, device) || undefined, 'what waits read at start: nothing for fred');
      const id = await store.deliveries.add(message(aor), [device, 'urn:uuid:f-1'], 0, 10);
      assert.equal(store.deliveries.mayHaveWaiting(aor, device), true);
      await store.deliveries.done([id as number], device);
      assert.equal(store.deliveries.mayHaveWaiting(aor, device), true, 'not known to be empty until read');
      assert.deepEqual(await store.deliveries.pendingFor(aor, device, NOW, undefined, 10), []);
      assert.equal(store.deliveries.mayHaveWaiting(aor, device), false);
      assert.equal(store.deliveries.mayHaveWaiting(aor, 'urn:uuid:f-1'), true, 'the other device has still to take it');
    });

    test('per-device deliveries: a device recognised as others takes over their rows (a message waiting for two of them once, in queue order) and the latest one\'s remembered row', async () => {
      const aor = 'ida@a.example';
      const [first, second, now] = ['sip:ida@192.0.2.20:5060', 'sip:ida@192.0.2.20:5070', 'sip:ida@192.0.2.20:5080'];
      await store.locations.replace(aor, [
        binding(aor, `${first};transport=tcp`, { updatedAt: NOW - 2 * MINUTE, userAgent: 'Z 5.6' }),
        binding(aor, `${second};transport=tcp`, { updatedAt: NOW - MINUTE, userAgent: 'Z 5.6' }),
      ]);
      await store.locations.replace(aor, []);
      const both = await store.deliveries.add(message(aor), [first, second], 0, 10);
      const later = await store.deliveries.add(message(aor), [second], 1, 10);
      const last = await store.deliveries.add(message(aor), [first], 0, 10);
      await store.deliveries.takeOver(aor, now, [first, second]);
      assert.deepEqual((await store.deliveries.pendingFor(aor, now, NOW, undefined, 10)).map((d) => d.message.id), [both, last, later]);
      assert.deepEqual(await store.deliveries.pendingCounts(aor), [{ aor, device: now, pending: 3 }]);
      assert.deepEqual((await store.deliveries.devicesOf(aor, 0)).map((d) => [d.device, d.contact, d.lastSeen, d.userAgent]), [[now, `${second};transport=tcp`, NOW - MINUTE, 'Z 5.6']]);
      assert.equal(store.deliveries.mayHaveWaiting(aor, now), true);
    });

    test('per-device deliveries: a takeover asked right after a store (counted against the limit) and a delivery done moves the one, not the other; a store asked after it for the device taking over comes after what moved', async () => {
      const aor = 'ivy@a.example';
      const [old, now] = ['sip:ivy@192.0.2.21:5060', 'sip:ivy@192.0.2.21:5070'];
      await store.locations.replace(aor, [binding(aor, `${old};transport=tcp`, { updatedAt: NOW - MINUTE })]);
      await store.locations.replace(aor, []);
      const taken = await store.deliveries.add(message(aor, { body: Buffer.from('taken') }), [old], 0, 10);
      // A copy of what ivy sent is the first of its quota: counted in the store before it is stored.
      await Promise.all([
        store.deliveries.add(message(aor, { body: Buffer.from('waiting'), sentCopy: true }), [old], 0, 10),
        store.deliveries.done([taken as number], old),
        store.deliveries.takeOver(aor, now, [old]),
        store.deliveries.add(message(aor, { body: Buffer.from('after') }), [now], 0, 10),
      ]);
      assert.deepEqual((await store.deliveries.pendingFor(aor, now, NOW, undefined, 10)).map((d) => d.message.body.toString()), ['waiting', 'after']);
      assert.deepEqual(await store.deliveries.pendingCounts(aor), [{ aor, device: now, pending: 2 }]);
      assert.equal(await store.offline.count(aor), 2, 'the message taken is gone');
      assert.deepEqual((await store.deliveries.devicesOf(aor, 0)).map((d) => [d.device, d.lastSeen]), [[now, NOW - MINUTE]]);
    });

    test('a second writer of the store (another Parley): who has messages waiting and how many is read again at each sweep, so what it stored is delivered and counted', async () => {
      const other = await openStore(url);
      try {
        const aor = 'gus@a.example';
        const device = 'sip:gus@192.0.2.12';
        await eventually(() => !store.offline.mayHaveWaiting(aor) || undefined, 'read at start: nothing for gus');
        await eventually(() => !store.deliveries.mayHaveWaiting(aor, device) || undefined, 'read at start: nothing for his phone');
        await other.offline.add(message(aor), 10);
        await other.deliveries.add(message(aor), [device], 0, 10);
        await store.offline.rereadWaiting();
        assert.equal(store.offline.mayHaveWaiting(aor), true, 'his next registration reads what waits');
        await store.deliveries.pendingCounts();
        assert.equal(store.deliveries.mayHaveWaiting(aor, device), true, 'his phone\'s next registration reads its queue');

        const hal = 'hal@a.example';
        assert.equal(typeof (await store.offline.add(message(hal), 2)), 'number');
        assert.equal(typeof (await other.offline.add(message(hal), 2)), 'number');
        await store.offline.rereadWaiting();
        assert.equal(await store.offline.add(message(hal), 2), 'full', 'the other writer\'s message counted');
        assert.equal(await store.offline.count(hal), 2);
      } finally {
        await other.close();
      }
    });

    test('per-device deliveries: a page a device took goes in one call, each message with its last row; the per-user limit holds past it and for both stores', async () => {
      const aor = 'erin@a.example';
      const devices = ['urn:uuid:e-1', 'urn:uuid:e-2'];
      const ids: number[] = [];
      for (const body of ['one', 'two', 'three']) ids.push((await store.deliveries.add(message(aor, { body: Buffer.from(body) }), devices, 0, 5)) as number);
      assert.equal(await store.deliveries.add(message(aor), devices, 0, 2), 'full', 'more waiting than a lower limit allows');
      assert.equal(await store.deliveries.add(message(aor), devices, 0, 3), 'full');

      await store.deliveries.done(ids, 'urn:uuid:e-1');
      assert.deepEqual(await store.deliveries.pendingFor(aor, 'urn:uuid:e-1', NOW, undefined, 10), []);
      assert.equal(await store.offline.count(aor), 3, 'the other device has still to take them');
      await store.deliveries.done(ids.slice(0, 2), 'urn:uuid:e-2');
      assert.deepEqual((await store.deliveries.pendingFor(aor, 'urn:uuid:e-2', NOW, undefined, 10)).map((d) => d.message.body.toString()), ['three']);
      assert.equal(await store.offline.count(aor), 1);
      assert.equal(typeof (await store.deliveries.add(message(aor), devices, 0, 2)), 'number');
      assert.equal(await store.offline.add(message(aor), 2), 'full', 'one limit for the messages kept per device and the others');
      assert.equal(typeof (await store.offline.add(message(aor), 10)), 'number');
      assert.equal(await store.deliveries.add(message(aor), devices, 0, 3), 'full');
    });

    test('per-device deliveries: messages asked for together, the first of them counted against the limit, are stored in the order asked, each device\'s rows with its message, up to the limit', async () => {
      const aor = 'fay@a.example';
      const devices = ['urn:uuid:f-1', 'urn:uuid:f-2', 'urn:uuid:f-3'];
      const inserted: number[] = [];
      const outcomes = await Promise.all(['one', 'two', 'three', 'four'].map((body) => store.deliveries.add(message(aor, { body: Buffer.from(body) }), devices, 0, 3, (id) => inserted.push(id))));
      assert.equal(outcomes[3], 'full', 'the fourth is past the limit');
      const ids = outcomes.slice(0, 3) as number[];
      assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'ids in the order asked');
      assert.deepEqual([...inserted].sort((a, b) => a - b), ids, 'each id told as inserted');
      for (const device of devices) {
        const queue = await store.deliveries.pendingFor(aor, device, NOW, undefined, 10);
        assert.deepEqual(queue.map((d) => [d.message.id, d.message.body.toString()]), [[ids[0], 'one'], [ids[1], 'two'], [ids[2], 'three']], device);
      }
    });

    describe('receipt ids', () => {
      const receipt = (messageId: string, owner: string, createdAt: number) => ({ direction: 'xmpp-stanza', messageId, owner, entry: `{"id":"${messageId}"}`, createdAt });

      test('are found by direction and id, replaced, changed and removed', async () => {
        await store.receiptIds.put(receipt('m1', 'sip:alice@a.example', NOW), 10);
        assert.equal((await store.receiptIds.get('xmpp-stanza', 'm1', NOW - MINUTE))?.entry, '{"id":"m1"}');
        assert.equal(await store.receiptIds.get('xmpp-imdn', 'm1', NOW - MINUTE), undefined, 'another direction');
        await store.receiptIds.update('xmpp-stanza', 'm1', '{"changed":true}');
        assert.deepEqual(await store.receiptIds.get('xmpp-stanza', 'm1', NOW), { ...receipt('m1', 'sip:alice@a.example', NOW), entry: '{"changed":true}' });
        await store.receiptIds.put(receipt('m1', 'sip:alice@a.example', NOW + 1), 10);
        assert.equal((await store.receiptIds.get('xmpp-stanza', 'm1', NOW))?.createdAt, NOW + 1, 'replaced');
        await store.receiptIds.remove('xmpp-stanza', 'm1');
        assert.equal(await store.receiptIds.get('xmpp-stanza', 'm1', 0), undefined);
      });

      test('are bounded per user (the oldest go) and in time', async () => {
        for (let i = 1; i <= 5; i++) await store.receiptIds.put(receipt(`a${i}`, 'sip:alice@a.example', NOW + i), 3);
        await store.receiptIds.put(receipt('b1', 'sip:bob@a.example', NOW), 3);
        const kept = async (ids: string[]) => (await Promise.all(ids.map((id) => store.receiptIds.get('xmpp-stanza', id, 0)))).map((row) => row?.messageId);
        assert.deepEqual(await kept(['a1', 'a2', 'a3', 'a4', 'a5', 'b1']), [undefined, undefined, 'a3', 'a4', 'a5', 'b1']);
        assert.equal(await store.receiptIds.get('xmpp-stanza', 'a3', NOW + 4), undefined, 'older than asked for');
        assert.equal(await store.receiptIds.expire(NOW + 4), 2);
        assert.deepEqual(await kept(['a3', 'a4', 'a5', 'b1']), [undefined, 'a4', 'a5', undefined]);
      });
    });

    test('reopening runs migrations again without touching the data', async () => {
      await store.users.put({ username: 'alice', domain: 'a.example', ha1Md5: 'm', ha1Sha256: 's' });
      await store.locations.replace('alice@a.example', [binding('alice@a.example', 'sip:alice@192.0.2.1')]);
      await store.close();
      store = await openStore(url);
      await store.close();
      store = await openStore(url);
      assert.equal((await store.users.get('alice', 'a.example'))?.ha1Md5, 'm');
      assert.equal((await store.locations.listAll()).length, 1);
      assert.equal(await store.locations.isKnown('alice@a.example'), true);
    });
  });
}

describe('openStore', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-open-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function assertStoreError(opening: Promise<Store>, code: StoreError['code']): Promise<StoreError> {
    const error = await opening.then(
      () => assert.fail('openStore should have failed'),
      (error: unknown) => error,
    );
    assert.ok(error instanceof StoreError, `expected a StoreError, got ${String(error)}`);
    assert.equal(error.code, code);
    return error;
  }

  test('a sqlite file locked by another process: writes fail as UNAVAILABLE, reads go on, writes work once released', async () => {
    const file = join(dir, 'locked.db');
    const store = await openStore(`sqlite:${file}`);
    const lock = new SqliteDatabase(file);
    try {
      await store.users.put({ username: 'alice', domain: 'a.example', ha1Md5: 'm', ha1Sha256: 's' });
      lock.exec('BEGIN EXCLUSIVE');
      const refused = await store.users.put({ username: 'bob', domain: 'a.example', ha1Md5: 'm', ha1Sha256: 's' }).then(
        () => assert.fail('a write went through a held lock'),
        (error: unknown) => error,
      );
      assert.ok(refused instanceof StoreError, `expected a StoreError, got ${String(refused)}`);
      assert.equal(refused.code, 'UNAVAILABLE');
      assert.match(refused.message, /database is locked/);
      assert.equal((await store.users.get('alice', 'a.example'))?.ha1Md5, 'm');
      lock.exec('ROLLBACK');
      await store.users.put({ username: 'bob', domain: 'a.example', ha1Md5: 'm', ha1Sha256: 's' });
      assert.deepEqual((await store.users.list('a.example')).map((u) => u.username), ['alice', 'bob']);
    } finally {
      lock.close();
      await store.close();
    }
  });

  test('creates the parent directories of a relative sqlite path and uses WAL', async () => {
    const file = join(dir, 'nested', 'deeper', 'parley.db');
    const store = await openStore(`sqlite:${relative(process.cwd(), file)}`);
    await store.users.put({ username: 'alice', domain: 'a.example', ha1Md5: 'm', ha1Sha256: 's' });
    await store.close();
    const raw = new SqliteDatabase(file, { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(raw.prepare('select username from users').all(), [{ username: 'alice' }]);
    } finally {
      raw.close();
    }
  });

  test('opens an in-memory sqlite store', async () => {
    const store = await openStore('sqlite::memory:');
    try {
      await store.locations.replace('alice@a.example', []);
      assert.equal(await store.locations.isKnown('alice@a.example'), true);
    } finally {
      await store.close();
    }
  });

  test('rejects an unsupported scheme with BAD_URL naming it and the accepted forms', async () => {
    const error = await assertStoreError(openStore('mysql://parley:hunter2@db.example/parley'), 'BAD_URL');
    assert.match(error.message, /"mysql:"/);
    assert.match(error.message, /sqlite:PATH/);
    assert.match(error.message, /postgres:\/\//);
    assert.doesNotMatch(error.message, /hunter2/);
  });

  test('rejects a URL without a scheme and an empty sqlite path with BAD_URL', async () => {
    await assertStoreError(openStore('parley.db'), 'BAD_URL');
    await assertStoreError(openStore('sqlite:'), 'BAD_URL');
  });

  test('an unreachable postgres gives CONNECT_FAILED without the password', async () => {
    const port = await freePort();
    const error = await assertStoreError(openStore(`postgres://parley:s3cret-Pa55@127.0.0.1:${port}/parley`), 'CONNECT_FAILED');
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(error.message, /s3cret-Pa55/);
  });

  test('a postgres URL that does not parse gives BAD_URL without the password', async () => {
    const error = await assertStoreError(openStore('postgres://parley:s3cret-%zz@[db/parley'), 'BAD_URL');
    assert.doesNotMatch(error.message, /s3cret/);
  });

  test('a sqlite path that cannot be opened gives CONNECT_FAILED', async () => {
    await writeFile(join(dir, 'not-a-dir'), '');
    await assertStoreError(openStore(`sqlite:${join(dir, 'not-a-dir', 'parley.db')}`), 'CONNECT_FAILED');
    await writeFile(join(dir, 'not-a-database'), 'plain text, not SQLite');
    await assertStoreError(openStore(`sqlite:${join(dir, 'not-a-database')}`), 'CONNECT_FAILED');
  });

  test('a schema that conflicts with a migration gives MIGRATION_FAILED naming it', async () => {
    const file = join(dir, 'conflicting.db');
    const raw = new SqliteDatabase(file);
    raw.exec('create table users (something_else text)');
    raw.close();
    const error = await assertStoreError(openStore(`sqlite:${file}`), 'MIGRATION_FAILED');
    assert.match(error.message, /001_core/);
  });
});
