// Opens the database named by a store URL, brings its schema up to date and wires the repositories.
import { closeSync, fsync, mkdirSync, open as openFile } from 'node:fs';
import { promisify } from 'node:util';
import { dirname, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import {
  Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type MigrationProvider, type PostgresPool, type PostgresPoolClient,
  type SqliteDatabase as KyselySqliteDatabase,
} from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { StoreAvailability, isQueryTimeout, watchedDialect } from './availability.js';
import { GatewayAccountRepository, GatewayRoomRepository } from './accounts.js';
import type { DeferredSync } from './group-commit.js';
import { LocationRepository } from './locations.js';
import { migrations } from './migrations/index.js';
import { OfflineRepository, StoredMessageWriter, WaitingBounds } from './offline.js';
import { DeliveryRepository } from './deliveries.js';
import { PresenceRepository } from './presence.js';
import { ReceiptIdRepository } from './receipt-ids.js';
import { OutboxRepository } from './outbox.js';
import { queuedDialect } from './queued.js';
import { RoomRepository } from './rooms.js';
import type { Database } from './schema.js';
import { SqliteWriter, type StatementWriter } from './sqlite-writer.js';
import { StoreError, type Store, type StoreErrorCode } from './types.js';
import { UserRepository, type CredentialsCacheOptions } from './users.js';

const ACCEPTED_FORMS = 'sqlite:PATH, sqlite::memory: or postgres://user:password@host:port/database';
/**
 * How long a statement waits for another process's lock on the SQLite file. better-sqlite3 is
 * synchronous: the wait blocks the whole process, every transport and timer, so it is kept short;
 * past it the statement fails as "store unavailable" and the request gets 503 with Retry-After.
 * Commits of other Parley processes (the CLI) take milliseconds, far below it. Once a lock has
 * outlasted it, statements do not wait at all until one gets through again, so a lock held for
 * long does not stall the process 200 ms per request.
 */
const SQLITE_BUSY_TIMEOUT_MS = 200;
/** How long a PostgreSQL statement, or getting a connection for it, may take unless told otherwise. */
const DEFAULT_QUERY_TIMEOUT_SECONDS = 5;
const PG_INT8_OID = 20;

type SqliteTarget = { driver: 'sqlite'; path: string };
type PostgresTarget = { driver: 'postgres'; url: string; redactedUrl: string; password: string };
type StoreTarget = SqliteTarget | PostgresTarget;

/**
 * A new repository is one line here plus its field in the Store interface. Those that group-commit
 * are given the store's `deferredSync`, if it has one; the writes of every REGISTER and relayed
 * MESSAGE (bindings, messages stored per device, outbox rows) go to the store's `writer` (a thread
 * of their own) when it has one.
 */
function createRepositories(db: Kysely<Database>, deferredSync: DeferredSync | undefined, writer: StatementWriter | undefined, credentialsCache?: CredentialsCacheOptions) {
  const waiting = new WaitingBounds();
  const writes = writer && { statements: writer, messages: new StoredMessageWriter(db, writer, waiting) };
  return {
    users: new UserRepository(db, credentialsCache),
    locations: new LocationRepository(db, deferredSync, writer),
    offline: new OfflineRepository(db, waiting, writes?.messages),
    deliveries: new DeliveryRepository(db, waiting, deferredSync, writes),
    presence: new PresenceRepository(db, deferredSync),
    outbox: new OutboxRepository(db, deferredSync, writer),
    gatewayAccounts: new GatewayAccountRepository(db),
    gatewayRooms: new GatewayRoomRepository(db),
    receiptIds: new ReceiptIdRepository(db, deferredSync),
  };
}

export interface OpenStoreOptions {
  /** Where outages are reported: once when the store becomes unavailable, once when it is back. */
  log?: Logger;
  /**
   * Seconds a PostgreSQL statement, or getting a connection for it, may take; past it the statement
   * fails as "store unavailable", so a server that hangs (stopped, overloaded, cut off) holds no request forever.
   */
  queryTimeout?: number;
  /**
   * Whether a SQLite file's registrar bindings are committed on a thread of their own (default
   * true, see sqlite-writer.ts); a command that does not serve REGISTERs need not start one.
   */
  writerThread?: boolean;
  /** How long users read for digest authentication are kept in memory (default: not at all). */
  credentialsCache?: CredentialsCacheOptions;
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const target = parseStoreUrl(url);
  const queryTimeoutMs = (options.queryTimeout ?? DEFAULT_QUERY_TIMEOUT_SECONDS) * 1000;
  const { db, availability, deferredSync } = target.driver === 'sqlite' ? openSqlite(target, 'read-write') : await openPostgres(target, queryTimeoutMs);
  await migrateToLatest(db, target);
  const writer = target.driver === 'sqlite' && target.path !== ':memory:' && options.writerThread !== false ? await openWriter(db, target) : undefined;
  // Only now: a store unavailable while opening fails the start rather than being retried.
  if (options.log) availability.reportTo(options.log);
  const statementWriter: StatementWriter | undefined = writer && {
    // Its failures are the store's as those of any statement: an outage is told apart and logged once.
    write: (statements) => availability.run(() => writer.write(statements), true),
    insert: (statements) => availability.run(() => writer.insert(statements), true),
    writeGroup: (write) => availability.run(() => writer.writeGroup(write), true),
  };
  const repositories = createRepositories(db, deferredSync, statementWriter, options.credentialsCache);
  const accountMaps = new Map<string, Promise<GatewayAccountRepository>>([['purplemap', Promise.resolve(repositories.gatewayAccounts)]]);
  return {
    driver: target.driver,
    ...repositories,
    gatewayAccountsIn(table) {
      let map = accountMaps.get(table);
      if (!map) {
        const repository = new GatewayAccountRepository(db, table);
        map = repository.ensureTable(target.driver).then(() => repository);
        accountMaps.set(table, map);
        // A failure is the caller's to report; the next call tries again.
        map.catch(() => accountMaps.delete(table));
      }
      return map;
    },
    async rooms(tables) {
      const repository = new RoomRepository(db, tables, deferredSync, statementWriter);
      await repository.ensureTables(target.driver);
      return repository;
    },
    outage: () => availability.current,
    writerStats: () => writer?.stats() ?? Promise.resolve(undefined),
    async close() {
      await writer?.close();
      await db.destroy();
    },
  };
}

/** The writer thread of a SQLite file, after the migrations: it writes into the tables they made. */
async function openWriter(db: Kysely<Database>, target: SqliteTarget): Promise<SqliteWriter> {
  try {
    return await SqliteWriter.open(target.path, SQLITE_BUSY_TIMEOUT_MS);
  } catch (error) {
    await db.destroy();
    throw storeFailure('CONNECT_FAILED', 'Cannot open', target, error);
  }
}

/**
 * A connection to another program's database (e.g. Kamailio's, to import from), named by a URL of
 * the same forms: no migrations, and a SQLite file is opened read-only, so it is neither created
 * nor changed.
 */
export async function openForeignDatabase(url: string): Promise<Kysely<Database>> {
  const target = parseStoreUrl(url);
  return (target.driver === 'sqlite' ? openSqlite(target, 'read-only') : await openPostgres(target, DEFAULT_QUERY_TIMEOUT_SECONDS * 1000)).db;
}

function parseStoreUrl(url: string): StoreTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'sqlite') {
    const path = url.slice('sqlite:'.length);
    if (path === '') throw new StoreError('BAD_URL', `Store URL "sqlite:" names no file; expected ${ACCEPTED_FORMS}`);
    return { driver: 'sqlite', path: path === ':memory:' ? path : resolve(path) };
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    try {
      const parsed = new URL(url);
      const password = decodeURIComponent(parsed.password);
      if (parsed.password) parsed.password = '***';
      return { driver: 'postgres', url, redactedUrl: parsed.toString(), password };
    } catch {
      // The URL itself is left out of the message: it may carry a password.
      throw new StoreError('BAD_URL', `Store URL with scheme "${scheme}:" is not a valid URL; expected ${ACCEPTED_FORMS}`);
    }
  }
  const named = scheme === undefined ? 'has no scheme' : `has unsupported scheme "${scheme}:"`;
  throw new StoreError('BAD_URL', `Store URL ${named}; expected ${ACCEPTED_FORMS}`);
}

/** A database opened, with what watches its availability. */
interface OpenDatabase {
  db: Kysely<Database>;
  availability: StoreAvailability;
  /** How its group commits are made durable, where not by the commit itself. */
  deferredSync?: DeferredSync;
}

function openSqlite(target: SqliteTarget, mode: 'read-write' | 'read-only'): OpenDatabase {
  const { path } = target;
  let database: SqliteDatabase.Database | undefined;
  try {
    if (mode === 'read-only') {
      database = new SqliteDatabase(path, { readonly: true, fileMustExist: true });
    } else {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      database = new SqliteDatabase(path);
      database.pragma('journal_mode = WAL');
      // FULL makes every commit durable before the write resolves; NORMAL in WAL mode could lose the last ones on power loss.
      database.pragma('synchronous = FULL');
    }
    database.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    const opened = database;
    const availability = new StoreAvailability('sqlite', (error) => reasonOf(target, error), (available) =>
      opened.pragma(`busy_timeout = ${available ? SQLITE_BUSY_TIMEOUT_MS : 0}`),
    );
    const wal = mode === 'read-write' && path !== ':memory:' ? walSync(database, path) : undefined;
    const dialect = queuedDialect(watchedDialect(new SqliteDialect({ database: preparingOnce(database, wal) }), availability));
    return { db: new Kysely<Database>({ dialect }), availability, deferredSync: wal };
  } catch (error) {
    database?.close();
    throw storeFailure('CONNECT_FAILED', 'Cannot open', target, error);
  }
}

/** Made once: a commit of every room post or registration syncs the log, and promisify is not free. */
const openAsync = promisify(openFile);
const fsyncAsync = promisify(fsync);

/**
 * Group commits of a SQLite file: committed with synchronous = NORMAL, which writes the transaction
 * to the write-ahead log without syncing it, then the log synced on libuv's thread pool. What a batch
 * acknowledges is on disk as with FULL, but the disk sync no longer stops every request of the
 * process. Other writes keep FULL. One sync runs at a time: batches committed meanwhile share the
 * next one. The log is opened once: SQLite keeps the same file while Parley's connection is open.
 */
function walSync(database: SqliteDatabase.Database, path: string): DeferredSync & { close(): void } {
  let log: number | undefined;
  const syncLog = async () => {
    log ??= await openAsync(`${path}-wal`, 'r');
    await fsyncAsync(log);
  };
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const sync = (): Promise<void> => {
    if (!running) return (running = syncLog().finally(() => (running = undefined)));
    // What was committed after the running sync began is on the next one.
    return (queued ??= running.catch(() => {}).then(() => {
      queued = undefined;
      return sync();
    }));
  };
  return {
    async unsynced(commit) {
      // Outside the transaction (SQLite does not change its safety level inside one), while the
      // group commit holds the one connection. exec, not pragma(): a third of the cost, with no rows
      // to read back; and not a statement prepared once, as SQLite applies this pragma when preparing it.
      database.exec('PRAGMA synchronous = NORMAL');
      try {
        return await commit();
      } finally {
        database.exec('PRAGMA synchronous = FULL');
      }
    },
    sync,
    close() {
      if (log !== undefined) closeSync(log);
    },
  };
}

/** Most SQL texts whose statements are kept prepared; past it the oldest is let go. */
const MAX_PREPARED_STATEMENTS = 200;

/**
 * The database as kysely sees it, each SQL text prepared once: kysely prepares a statement for every
 * query it runs, which cost a REGISTER more CPU than running its queries. Reusing one is safe as
 * kysely runs one query at a time on its one connection. Closing it also closes the write-ahead
 * log `wal` keeps open for group commits.
 */
function preparingOnce(database: SqliteDatabase.Database, wal?: { close(): void }): KyselySqliteDatabase {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => {
      database.close();
      wal?.close();
    },
    prepare(text: string) {
      let statement = statements.get(text);
      if (statement === undefined) {
        statement = database.prepare(text);
        if (statements.size >= MAX_PREPARED_STATEMENTS) statements.delete(statements.keys().next().value!);
        statements.set(text, statement);
      }
      return statement;
    },
  };
}

async function openPostgres(target: PostgresTarget, queryTimeoutMs: number): Promise<OpenDatabase> {
  // Timestamps and ids are bigint columns; as ms since the epoch they stay far below 2^53, so a JS number holds them exactly.
  const types = new pg.TypeOverrides();
  types.setTypeParser(PG_INT8_OID, Number);
  const pool = new pg.Pool({
    connectionString: target.url,
    connectionTimeoutMillis: queryTimeoutMs,
    // Both: the server cancels a statement that runs too long (and frees its locks); the client stops
    // waiting for a server that does not answer at all.
    statement_timeout: queryTimeoutMs,
    query_timeout: queryTimeoutMs,
    types,
  });
  // A client losing its connection (server restart) must not crash the process: idle, the pool
  // reports it here and drops it; checked out, the client itself emits 'error' (the statement under
  // way fails on its own) and the pool drops it when it is released, as it is no longer queryable.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const availability = new StoreAvailability('postgres', (error) => reasonOf(target, error));
  const db = new Kysely<Database>({ dialect: watchedDialect(new PostgresDialect({ pool: discardingTimedOut(pool) }), availability) });
  try {
    await sql`select 1`.execute(db);
    return { db, availability };
  } catch (error) {
    await db.destroy();
    throw storeFailure('CONNECT_FAILED', 'Cannot connect to', target, error);
  }
}

/**
 * The pool as kysely takes it, where a client whose statement timed out goes back as broken: the pool
 * closes it rather than lending it again with that statement still pending on a server that may never answer.
 */
function discardingTimedOut(pool: pg.Pool): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      let timedOut: Error | undefined;
      // Only statements: kysely passes a cursor for streamed results, which Parley never asks for.
      const query = async (text: string, parameters: unknown[]) => {
        try {
          return await client.query(text, parameters);
        } catch (error) {
          if (isQueryTimeout(error)) timedOut = error;
          throw error;
        }
      };
      return { query: query as unknown as PostgresPoolClient['query'], release: () => client.release(timedOut) };
    },
    end: () => pool.end(),
  };
}

async function migrateToLatest(db: Kysely<Database>, target: StoreTarget): Promise<void> {
  const provider: MigrationProvider = {
    getMigrations() {
      return Promise.resolve(Object.fromEntries(
        Object.entries(migrations).map(([name, migration]) => [name, { up: (schemaDb) => migration.up(schemaDb, target.driver) }]),
      ));
    },
  };
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error === undefined) return;

  await db.destroy();
  const failed = results?.find((result) => result.status === 'Error')?.migrationName;
  throw storeFailure('MIGRATION_FAILED', failed ? `Migration ${failed} failed on` : 'Migrating', target, error);
}

/** The message names the database and the reason, with a postgres password masked wherever it would appear. */
function storeFailure(code: StoreErrorCode, summary: string, target: StoreTarget, error: unknown): StoreError {
  const where = target.driver === 'sqlite' ? `SQLite database ${target.path}` : target.redactedUrl;
  return new StoreError(code, `${summary} ${where}: ${reasonOf(target, error)}`, { cause: error });
}

function reasonOf(target: StoreTarget, error: unknown): string {
  const reason = describeError(error);
  return target.driver === 'postgres' && target.password !== '' ? reason.split(target.password).join('***') : reason;
}

/** Node reports a refused connection to a name with several addresses as an AggregateError with an empty message. */
function describeError(error: unknown): string {
  if (error instanceof StoreError && error.code === 'UNAVAILABLE') return describeError(error.cause);
  if (error instanceof AggregateError && error.message === '') return error.errors.map(describeError).join('; ');
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
