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
