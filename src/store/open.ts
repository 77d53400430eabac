// Opens the database named by a store URL, brings its schema up to date and wires the repositories.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type MigrationProvider } from 'kysely';
import pg from 'pg';
import { GatewayAccountRepository } from './accounts.js';
import { LocationRepository } from './locations.js';
import { migrations } from './migrations/index.js';
import { OfflineRepository } from './offline.js';
import { RoomRepository } from './rooms.js';
import type { Database } from './schema.js';
import { StoreError, type Store, type StoreErrorCode } from './types.js';
import { UserRepository } from './users.js';

const ACCEPTED_FORMS = 'sqlite:PATH, sqlite::memory: or postgres://user:password@host:port/database';
const SQLITE_BUSY_TIMEOUT_MS = 5_000;
const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;
const PG_INT8_OID = 20;

type SqliteTarget = { driver: 'sqlite'; path: string };
type PostgresTarget = { driver: 'postgres'; url: string; redactedUrl: string; password: string };
type StoreTarget = SqliteTarget | PostgresTarget;

/** A new repository is one line here plus its field in the Store interface. */
function createRepositories(db: Kysely<Database>) {
  return {
    users: new UserRepository(db),
    locations: new LocationRepository(db),
    offline: new OfflineRepository(db),
    gatewayAccounts: new GatewayAccountRepository(db),
  };
}

export async function openStore(url: string): Promise<Store> {
  const target = parseStoreUrl(url);
  const db = target.driver === 'sqlite' ? openSqlite(target, 'read-write') : await openPostgres(target);
  await migrateToLatest(db, target);
  const repositories = createRepositories(db);
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
      const repository = new RoomRepository(db, tables);
      await repository.ensureTables(target.driver);
      return repository;
    },
    close: () => db.destroy(),
  };
}

/**
 * A connection to another program's database (e.g. Kamailio's, to import from), named by a URL of
 * the same forms: no migrations, and a SQLite file is opened read-only, so it is neither created
 * nor changed.
 */
export async function openForeignDatabase(url: string): Promise<Kysely<Database>> {
  const target = parseStoreUrl(url);
  return target.driver === 'sqlite' ? openSqlite(target, 'read-only') : openPostgres(target);
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

function openSqlite(target: SqliteTarget, mode: 'read-write' | 'read-only'): Kysely<Database> {
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
    return new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  } catch (error) {
    database?.close();
    throw storeFailure('CONNECT_FAILED', 'Cannot open', target, error);
  }
}

async function openPostgres(target: PostgresTarget): Promise<Kysely<Database>> {
  // Timestamps and ids are bigint columns; as ms since the epoch they stay far below 2^53, so a JS number holds them exactly.
  const types = new pg.TypeOverrides();
  types.setTypeParser(PG_INT8_OID, Number);
  const pool = new pg.Pool({
    connectionString: target.url,
    connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
    types,
  });
  // An idle client losing its connection (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
    return db;
  } catch (error) {
    await db.destroy();
    throw storeFailure('CONNECT_FAILED', 'Cannot connect to', target, error);
  }
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
  let reason = describeError(error);
  if (target.driver === 'postgres' && target.password !== '') reason = reason.split(target.password).join('***');
  return new StoreError(code, `${summary} ${where}: ${reason}`, { cause: error });
}

/** Node reports a refused connection to a name with several addresses as an AggregateError with an empty message. */
function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.message === '') return error.errors.map(describeError).join('; ');
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
