// Group commit with the disk sync deferred (SQLite): a write resolves only once the sync after its
// commit has, and a sync that fails fails the writes it was for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { GroupCommit, type DeferredSync } from '../../src/store/group-commit.js';
import type { Database } from '../../src/store/schema.js';

function database() {
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(':memory:') }) });
  const started: Array<(outcome: Error | undefined) => void> = [];
  let syncStarted: () => void = () => {};
  const nextSync = () => new Promise<void>((resolve) => (syncStarted = resolve));
  const deferred: DeferredSync = {
    unsynced: (commit) => commit(),
    sync: () =>
      new Promise<void>((resolve, reject) => {
        started.push((error) => (error ? reject(error) : resolve()));
        syncStarted();
      }),
  };
  return { db, deferred, started, nextSync };
}

const rows = async (db: Kysely<Database>) => (await sql<{ n: number }>`select n from t order by n`.execute(db)).rows.map((row) => row.n);

test('a group-committed write is visible once committed, and resolves only once the sync after its commit has', async () => {
  const { db, deferred, started, nextSync } = database();
  await sql`create table t (n integer)`.execute(db);
  const commits = new GroupCommit(db, deferred);
  let resolved = false;
  const syncing = nextSync();
  const write = commits.run(async (trx) => void (await sql`insert into t values (1)`.execute(trx))).then(() => (resolved = true));
  await syncing;
  assert.deepEqual(await rows(db), [1]);
  assert.equal(resolved, false, 'not acknowledged before its sync');
  started[0]!(undefined);
  await write;
  assert.equal(resolved, true);
  await db.destroy();
});

test('a sync that fails fails the writes of its batch', async () => {
  const { db, deferred, started, nextSync } = database();
  await sql`create table t (n integer)`.execute(db);
  const commits = new GroupCommit(db, deferred);
  const syncing = nextSync();
  const write = commits.run(async (trx) => void (await sql`insert into t values (2)`.execute(trx)));
  await syncing;
  started[0]!(new Error('EIO: i/o error, fsync'));
  await assert.rejects(write, /EIO/);
  await db.destroy();
});

test('a write is told committed before its sync; a caller failing on that news fails its own write only', async () => {
  const { db, deferred, started, nextSync } = database();
  await sql`create table t (n integer)`.execute(db);
  const commits = new GroupCommit(db, deferred);
  const told: number[] = [];
  const syncing = nextSync();
  const insert = (n: number) => commits.run(async (trx) => (await sql`insert into t values (${n})`.execute(trx), n), (result) => {
    if (result === 4) throw new Error('caller failed');
    told.push(result);
  });
  const writes = [insert(3), insert(4), insert(5)];
  await syncing;
  assert.deepEqual(told, [3, 5], 'told before the sync');
  await assert.rejects(writes[1]!, /caller failed/);
  started[0]!(undefined);
  assert.deepEqual(await Promise.all([writes[0], writes[2]]), [3, 5]);
  await db.destroy();
});

test('a write asked for while the sync of the batch before runs is committed at once, and resolves after the sync that follows its commit', async () => {
  const { db, deferred, started, nextSync } = database();
  await sql`create table t (n integer)`.execute(db);
  const commits = new GroupCommit(db, deferred);
  const settled: string[] = [];
  const firstSyncing = nextSync();
  const first = commits.run(async (trx) => void (await sql`insert into t values (6)`.execute(trx))).then(() => settled.push('first'));
  await firstSyncing;
  const secondSyncing = nextSync();
  let told: () => void = () => {};
  const secondCommitted = new Promise<void>((resolve) => (told = resolve));
  const second = commits.run(async (trx) => void (await sql`insert into t values (7)`.execute(trx)), () => told()).then(() => settled.push('second'));
  // A handful of turns of the event loop: far more than a commit on :memory: takes, and no sync ends meanwhile.
  const turns = (async () => {
    for (let i = 0; i < 20; i++) await new Promise(setImmediate);
    return 'still waiting';
  })();
  assert.equal(await Promise.race([secondCommitted.then(() => 'committed'), turns]), 'committed', 'committed while the first sync runs');
  await secondSyncing;
  assert.deepEqual(await rows(db), [6, 7]);
  assert.equal(started.length, 2, 'its own sync follows its commit');
  started[0]!(undefined);
  await first;
  assert.deepEqual(settled, ['first'], 'not acknowledged by the sync that began before its commit');
  started[1]!(undefined);
  await second;
  assert.deepEqual(settled, ['first', 'second']);
  await db.destroy();
});
