// One SQLite connection, handed out in turn. kysely's SQLite driver lets its connection go by waking
// every caller waiting for it, of whom one takes it and the others wait again: with a burst of
// REGISTERs waiting (each looks up its stored messages while the bindings of others are committed)
// that made a wake-up per waiter per statement. Callers queue here instead, and the one whose turn
// it is goes on alone.
import type { DatabaseConnection, Dialect, Driver, TransactionSettings } from 'kysely';

export function queuedDialect(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: () => new QueuedDriver(dialect.createDriver()),
  };
}

class QueuedDriver implements Driver {
  private held = false;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly driver: Driver) {}

  init(): Promise<void> {
    return this.driver.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held = true;
    try {
      return await this.driver.acquireConnection();
    } catch (error) {
      this.next();
      throw error;
    }
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    try {
      await this.driver.releaseConnection(connection);
    } finally {
      this.next();
    }
  }

  /** Passes the turn to the first caller waiting, or frees it. */
  private next(): void {
    const first = this.waiting.shift();
    if (first) first();
    else this.held = false;
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

  destroy(): Promise<void> {
    return this.driver.destroy();
  }
}
