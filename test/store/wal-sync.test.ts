// The SQLite store syncs its write-ahead log off the event loop: a write resolves only once the
// WAL is synced, reads never wait for a sync, a transaction is synced once after its commit, and
// the process runs on while the sync is under way.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, type Generated } from 'kysely';
import { Checkpointer } from '../../src/store/checkpoint.js';
import { WalFile, walSyncedDialect } from '../../src/store/wal-sync.js';

interface Table {
  notes: { id: Generated<number>; text: string };
}

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'parley-wal-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A kysely over a WAL database whose syncs are held until the test lets each go. */
function heldSyncs() {
  const database = new SqliteDatabase(join(dir, `${Math.random().toString(36).slice(2)}.db`));
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.exec('create table notes (id integer primary key, text text not null)');
  const pending: Array<() => void> = [];
  const sync = () => new Promise<void>((resolve) => pending.push(resolve));
  const tracked = {
    prepare: (text: string) => database.prepare(text),
    get inTransaction() {
      return database.inTransaction;
    },
  };
  const db = new Kysely<Table>({ dialect: walSyncedDialect(new SqliteDialect({ database }), tracked, { sync, close: async () => {} }) });
  return { db, pending, close: () => db.destroy() };
}

/** Whether a promise has settled, after everything already queued has run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true), () => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('SQLite writes synced off the event loop', () => {
  it('a write resolves only once its sync is done, and the process runs on meanwhile', async () => {
    const { db, pending, close } = heldSyncs();
    try {
      const insert = db.insertInto('notes').values({ text: 'kept' }).execute();
      assert.equal(await settled(insert), false, 'the insert waits for its sync');
      assert.equal(pending.length, 1);
      pending.shift()!();
      await insert;
    } finally {
      await close();
    }
  });

  it('reads do not sync; a transaction syncs once, after its commit', async () => {
    const { db, pending, close } = heldSyncs();
    try {
      assert.deepEqual(await db.selectFrom('notes').selectAll().execute(), []);
      assert.equal(pending.length, 0, 'a read asked for no sync');
      const writes = db.transaction().execute(async (trx) => {
        await trx.insertInto('notes').values({ text: 'one' }).execute();
        await trx.insertInto('notes').values({ text: 'two' }).execute();
        assert.equal(pending.length, 0, 'nothing is synced before the commit');
      });
      assert.equal(await settled(writes), false);
      assert.equal(pending.length, 1, 'one sync for the whole transaction');
      pending.shift()!();
      await writes;
      assert.equal((await db.selectFrom('notes').select('text').execute()).length, 2);
      assert.equal(pending.length, 0);
    } finally {
      await close();
    }
  });

  it('syncing a WAL that is not there (checkpointed away) succeeds, and a failure is SQLite\'s SQLITE_IOERR_FSYNC', async () => {
    await new WalFile(join(dir, 'absent.db-wal')).sync();
    const notADirectory = join(dir, 'plain-file');
    writeFileSync(notADirectory, '');
    await assert.rejects(new WalFile(join(notADirectory, 'x.db-wal')).sync(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'SQLITE_IOERR_FSYNC');
      assert.match(error.message, /^syncing the write-ahead log failed: ENOTDIR/);
      return true;
    });
  });
});

describe('SQLite checkpoints in a worker thread', () => {
  it('a checkpoint copies every frame of the WAL into the database file beside the writing connection', async () => {
    const path = join(dir, 'checkpointed.db');
    const database = new SqliteDatabase(path);
    database.pragma('journal_mode = WAL');
    database.pragma('wal_autocheckpoint = 0');
    database.exec('create table notes (id integer primary key, text text not null)');
    for (let i = 0; i < 50; i++) database.prepare('insert into notes (text) values (?)').run(`note ${i}`);
    const fallBacks: string[] = [];
    const checkpointer = new Checkpointer(path, 3_600_000, (_pages, reason) => fallBacks.push(reason));
    try {
      const result = await checkpointer.checkpoint();
      assert.ok(result.log > 0, 'the WAL had frames');
      assert.equal(result.checkpointed, result.log, 'all of them are in the database file');
      database.prepare('insert into notes (text) values (?)').run('after the checkpoint');
      assert.equal((database.prepare('select count(*) as n from notes').get() as { n: number }).n, 51);
      assert.deepEqual(fallBacks, []);
    } finally {
      await checkpointer.close();
      database.close();
    }
  });

  it('a worker that cannot open the database hands checkpoints back to SQLite, once', async () => {
    const reasons: Array<[number, string]> = [];
    const fellBack = new Promise<void>((resolve) => {
      const checkpointer = new Checkpointer(join(dir, 'missing.db'), 3_600_000, (pages, reason) => {
        reasons.push([pages, reason]);
        resolve();
      });
      after(() => checkpointer.close());
    });
    await fellBack;
    assert.equal(reasons.length, 1);
    assert.equal(reasons[0]![0], 1000);
    assert.equal(reasons[0]![1], 'unable to open database file');
  });
});

describe('the WAL file', () => {
  it('syncs on when the file it held was deleted and created again, or deleted for good', async () => {
    const path = join(dir, 'renewed.db-wal');
    writeFileSync(path, 'first');
    const wal = new WalFile(path);
    try {
      await wal.sync();
      rmSync(path);
      writeFileSync(path, 'second');
      await wal.sync();
      rmSync(path);
      await wal.sync();
    } finally {
      await wal.close();
    }
  });
});
