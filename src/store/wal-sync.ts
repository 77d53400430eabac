// SQLite commits made durable off the event loop. better-sqlite3 runs every statement on the
// calling thread: with `synchronous = FULL` each commit also waits there for the disk to sync the
// write-ahead log (milliseconds; hundreds on a busy disk), and every transport and timer of the
// process waits with it, so a flood of REGISTERs (a commit each few of them) stalled the relay of
// everyone else and overflowed the UDP receive buffer. Instead the connection commits with
// `synchronous = NORMAL` (the WAL written, not yet synced) and the WAL file is synced on libuv's
// thread pool before the statement resolves and before the connection goes to the next caller:
// what is acknowledged is on disk as with FULL, no one reads through Parley what is not yet, and the
// process serves the network meanwhile. Checkpoints sync WAL and database themselves (NORMAL does).
import { open, type FileHandle } from 'node:fs/promises';
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely';

/** What the connection wrapper needs of the database: its statements' read-only flag, and whether a transaction is open. */
export interface SyncedDatabase {
  prepare(sql: string): { readonly: boolean };
  readonly inTransaction: boolean;
}

/**
 * The dialect of a SQLite file in WAL mode with `synchronous = NORMAL`, each write durable before it
 * resolves: once a statement that wrote has run and no transaction is open, the WAL is synced while
 * the connection is still held. `wal` is closed before the database.
 */
export function walSyncedDialect(dialect: Dialect, database: SyncedDatabase, wal: Pick<WalFile, 'sync' | 'close'>): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: () => new WalSyncedDriver(dialect.createDriver(), new WalSync(database, () => wal.sync()), wal),
  };
}

/**
 * The WAL file, kept open to be synced rather than opened and closed for each commit. SQLite deletes
 * a WAL only when its last connection closes, and Parley's stays open until the store is closed; were
 * it deleted all the same (its data then checkpointed and synced), the file is opened anew. A failure
 * is SQLite's own (SQLITE_IOERR_FSYNC), which the store takes as "unavailable".
 */
export class WalFile {
  private file: FileHandle | undefined;

  constructor(private readonly path: string) {}

  async sync(): Promise<void> {
    try {
      let file = (this.file ??= await open(this.path, 'r'));
      if ((await file.stat()).nlink === 0) {
        this.file = undefined;
        await file.close();
        file = this.file = await open(this.path, 'r');
      }
      await file.datasync();
    } catch (error) {
      // No WAL: everything was checkpointed into the database file, which the checkpoint synced.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw syncFailure(error);
    }
  }

  async close(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.close();
  }
}

function syncFailure(error: unknown): Error {
  return Object.assign(new Error(`syncing the write-ahead log failed: ${(error as Error).message}`, { cause: error }), { code: 'SQLITE_IOERR_FSYNC' });
}

/** Tracks whether something was written since the WAL was last synced. */
class WalSync {
  private unsynced = false;

  constructor(
    private readonly database: SyncedDatabase,
    private readonly sync: () => Promise<void>,
  ) {}

  /** Notes a statement about to run; BEGIN and COMMIT count as read-only, the writes in between do not. */
  before(sql: string): void {
    if (!this.unsynced && !this.database.prepare(sql).readonly) this.unsynced = true;
  }

  /** Once no transaction is open, syncs what the statements wrote. */
  after(): Promise<void> | undefined {
    if (!this.unsynced || this.database.inTransaction) return undefined;
    this.unsynced = false;
    return this.sync();
  }
}

class WalSyncedConnection implements DatabaseConnection {
  constructor(
    private readonly inner: DatabaseConnection,
    private readonly wal: WalSync,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    this.wal.before(query.sql);
    const result = await this.inner.executeQuery<R>(query);
    await this.wal.after();
    return result;
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

/** kysely's SQLite driver with its one connection wrapped; BEGIN and COMMIT go through the wrapper too. */
class WalSyncedDriver implements Driver {
  private readonly wrapped = new WeakMap<DatabaseConnection, WalSyncedConnection>();

  constructor(
    private readonly driver: Driver,
    private readonly wal: WalSync,
    private readonly file: Pick<WalFile, 'close'>,
  ) {}

  init(): Promise<void> {
    return this.driver.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await this.driver.acquireConnection();
    let connection = this.wrapped.get(inner);
    if (!connection) this.wrapped.set(inner, (connection = new WalSyncedConnection(inner, this.wal)));
    return connection;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.driver.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.driver.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.driver.rollbackTransaction(connection);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.driver.releaseConnection(connection);
  }

  async destroy(): Promise<void> {
    await this.file.close();
    await this.driver.destroy();
  }
}
