// Store outages: a SQLite database locked by another process, a PostgreSQL server restarting or
// unreachable. Every statement passes through here. A driver error that means "not now" becomes a
// StoreError 'UNAVAILABLE' (requests get 503 with Retry-After, background tasks try again on their
// next tick), and the outage is logged once when it starts and once when it is over, whatever
// the number of requests and ticks in between.
import type { Logger } from 'pino';
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely';
import { StoreError, type StoreDriver, type StoreOutage } from './types.js';

/**
 * The code of the error a SQLite writer thread's write gets when the thread stopped before answering
 * it, or while a new one is started (sqlite-writer.ts): counted as unavailable, so a REGISTER gets 503
 * with Retry-After, not 500, and the outage is logged once. Here, with the other codes, rather than in
 * sqlite-writer.ts, which the writer thread, reading these codes, need not load.
 */
export const WRITER_LOST = 'SQLITE_WRITER_LOST';

/**
 * better-sqlite3 codes of a store unavailable for now (locked by another connection, disk full or
 * failing), and the writer thread's while it is started again (sqlite-writer.ts).
 */
const SQLITE_UNAVAILABLE = new RegExp(`^(SQLITE_(BUSY|LOCKED|FULL|IOERR|PROTOCOL)|${WRITER_LOST})`);
/** Node socket errors while reaching the PostgreSQL server. */
const NETWORK_UNAVAILABLE = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|EAI_AGAIN)$/;
/**
 * SQLSTATE: class 08 connection exception, class 53 insufficient resources, 57014 statement canceled
 * (past statement_timeout), 57P01-57P03 shutting down, restarting, starting up.
 */
const POSTGRES_UNAVAILABLE = /^(08[0-9A-Z]{3}|53[0-9A-Z]{3}|57014|57P0[123])$/;
/** pg's own message for a server that did not answer a statement within query_timeout. */
const POSTGRES_QUERY_TIMEOUT = 'Query read timeout';
/** pg's own errors for a connection lost or never made, or a server that does not answer, carry no code. */
const POSTGRES_CONNECTION_LOST = new RegExp(`Connection terminated|timeout exceeded when trying to connect|not queryable|${POSTGRES_QUERY_TIMEOUT}`);

/** True for pg's error of a statement the server did not answer in time: its connection is of no further use. */
export function isQueryTimeout(error: unknown): error is Error {
  return error instanceof Error && error.message === POSTGRES_QUERY_TIMEOUT;
}

/** Seconds a client (SIP or the admin endpoint's) is asked to wait before trying again while the store is unavailable. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** True when the error, or one it was caused by, says the store is unavailable for now. */
export function isStoreUnavailable(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof StoreError && cause.code === 'UNAVAILABLE') return true;
  }
  return false;
}

/**
 * The rejection handler of work nobody waits for (timers, events). An outage is logged by the store
 * once, not by each task at each tick; other failures are logged as they happen.
 */
export function logBackgroundFailure(log: Logger, task: string): (error: unknown) => void {
  return (error) => {
    if (isStoreUnavailable(error)) log.debug({ task }, 'postponed: store unavailable');
    else log.error({ err: error, task }, `${task} failed`);
  };
}

/** True for a better-sqlite3 error code that says the store is unavailable for now. */
export function isSqliteUnavailableCode(code: unknown): boolean {
  return typeof code === 'string' && SQLITE_UNAVAILABLE.test(code);
}

function meansUnavailable(driver: StoreDriver, error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (driver === 'sqlite') return isSqliteUnavailableCode(code);
  if (error instanceof AggregateError && error.errors.some((inner) => meansUnavailable(driver, inner))) return true;
  if (typeof code === 'string' && (NETWORK_UNAVAILABLE.test(code) || POSTGRES_UNAVAILABLE.test(code))) return true;
  return POSTGRES_CONNECTION_LOST.test(error.message);
}

/** A statement whose success shows the store takes writes again (SQLite may serve reads while another process holds the write lock). */
function provesWritable(query: CompiledQuery): boolean {
  const kind = query.query.kind;
  return kind === 'InsertQueryNode' || kind === 'UpdateQueryNode' || kind === 'DeleteQueryNode';
}

export class StoreAvailability {
  private outage: (StoreOutage & { lastStatementBefore: number }) | undefined;
  private statements = 0;
  private log: Logger | undefined;

  constructor(
    private readonly driver: StoreDriver,
    /** The reason of a driver error as it may be logged (a postgres password masked). */
    private readonly describe: (error: unknown) => string,
    /** Called when an outage starts (false) and when it ends (true). */
    private readonly changed: (available: boolean) => void = () => {},
  ) {}

  /** The outage under way; undefined while the store is available. */
  get current(): StoreOutage | undefined {
    return this.outage && { since: this.outage.since, reason: this.outage.reason };
  }

  /** From now on, outages are logged here. */
  reportTo(log: Logger): void {
    this.log = log;
  }

  /**
   * `work`, its failure that means the store is unavailable made a StoreError('UNAVAILABLE'). Chained
   * rather than an async function awaiting it: every statement and write goes through here, and a
   * suspended async frame costs each more than the two callbacks.
   */
  run<T>(work: () => Promise<T>, writes = false): Promise<T> {
    const statement = ++this.statements;
    let running: Promise<T>;
    try {
      running = work();
    } catch (error) {
      running = Promise.reject(error);
    }
    return running.then(
      (result) => {
        this.succeeded(statement, writes);
        return result;
      },
      (error: unknown) => {
        throw this.failed(error);
      },
    );
  }

  private failed(error: unknown): unknown {
    if (!meansUnavailable(this.driver, error)) return error;
    const reason = this.describe(error);
    if (!this.outage) {
      this.outage = { since: Date.now(), reason, lastStatementBefore: this.statements };
      this.log?.warn({ reason }, `store unavailable: ${reason}, retrying`);
      this.changed(false);
    }
    return new StoreError('UNAVAILABLE', `Store unavailable: ${reason}`, { cause: error });
  }

  private succeeded(statement: number, writes: boolean): void {
    // A statement started before the outage began proves nothing about its end.
    if (this.outage && writes && statement > this.outage.lastStatementBefore) {
      this.log?.info({ unavailableMs: Date.now() - this.outage.since }, 'store available again');
      this.outage = undefined;
      this.changed(true);
    }
  }
}

/** The dialect with every connection attempt and statement run through `availability`. */
export function watchedDialect(dialect: Dialect, availability: StoreAvailability): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: () => new WatchedDriver(dialect.createDriver(), availability),
  };
}

class WatchedConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly availability: StoreAvailability,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.availability.run(() => this.inner.executeQuery<R>(query), provesWritable(query));
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

/** Parley uses no savepoints, so the driver offers none. */
class WatchedDriver implements Driver {
  private readonly watched = new WeakMap<DatabaseConnection, WatchedConnection>();

  constructor(
    private readonly driver: Driver,
    private readonly availability: StoreAvailability,
  ) {}

  init(): Promise<void> {
    return this.driver.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await this.availability.run(() => this.driver.acquireConnection());
    // One wrapper per connection, not per statement: kysely also remembers each connection it sees.
    let watched = this.watched.get(inner);
    if (!watched) this.watched.set(inner, (watched = new WatchedConnection(inner, this.availability)));
    return watched;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.availability.run(() => this.driver.beginTransaction(innerOf(connection), settings));
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.availability.run(() => this.driver.commitTransaction(innerOf(connection)));
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.availability.run(() => this.driver.rollbackTransaction(innerOf(connection)));
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.driver.releaseConnection(innerOf(connection));
  }

  destroy(): Promise<void> {
    return this.driver.destroy();
  }
}

function innerOf(connection: DatabaseConnection): DatabaseConnection {
  return connection instanceof WatchedConnection ? connection.inner : connection;
}
