// Group commit: writes asked for while a transaction is being committed wait, and go together in
// the next one. Each still resolves only once its rows are durable, but a burst of requests shares
// one disk sync instead of waiting for one each. Writes are committed in the order they were asked
// for, so a removal asked for after a change is never undone by it.
import type { CompiledQuery, Kysely, Transaction } from 'kysely';
import { isStoreUnavailable } from './availability.js';
import type { Database } from './schema.js';

/** Statements that belong together; run again on their own when a batch they were in failed. */
export type Write<R> = (trx: Transaction<Database>) => Promise<R>;

/**
 * How a store makes a commit durable after the fact (SQLite: syncing its write-ahead log off the
 * event loop), instead of in the commit itself, which blocks every datagram and timer while the disk
 * syncs. A batch's writes resolve only once `sync` has: what is acknowledged is still on disk.
 */
export interface DeferredSync {
  /** Runs `commit`, a transaction on the connection held for it, without its waiting for the disk. */
  unsynced<R>(commit: () => Promise<R>): Promise<R>;
  /** Makes every transaction committed so far durable. */
  sync(): Promise<void>;
}

interface PendingWrite {
  write: Write<unknown>;
  committed: ((result: unknown) => void) | undefined;
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

export class GroupCommit {
  private pending: PendingWrite[] = [];
  private flushing: Promise<void> | undefined;
  /** With `deferred`, commits are made durable by its `sync` rather than by the commit itself. */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly deferred?: DeferredSync,
  ) {}

  /**
   * Resolves with what `write` returned once it is committed. With a deferred sync, `committed`
   * is told the result as soon as the commit is visible to readers and survives the process
   * being killed, before the disk sync that makes it survive the machine (when it is not called,
   * the promise's resolution is the first news).
   */
  run<R>(write: Write<R>, committed?: (result: R) => void): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ write, committed: committed as ((result: unknown) => void) | undefined, resolve: resolve as (result: unknown) => void, reject });
      if (!this.flushing) this.flushing = new Promise<void>((started) => setImmediate(started)).then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      let results: unknown[];
      try {
        results = await this.commit(async (trx) => {
          const done: unknown[] = [];
          for (const entry of batch) done.push(await entry.write(trx));
          return done;
        });
      } catch (error) {
        // Nothing gets through while the store is unavailable: trying each entry would only wait longer.
        if (isStoreUnavailable(error)) {
          for (const entry of batch) entry.reject(error);
          continue;
        }
        // One failing entry must not fail the others: commit them one by one to find it.
        for (const entry of batch) await this.db.transaction().execute(entry.write).then(entry.resolve, entry.reject);
        continue;
      }
      if (this.deferred) this.settleOnceSynced(this.deferred, batch, results);
      else batch.forEach((entry, i) => entry.resolve(results[i]));
    }
    this.flushing = undefined;
  }

  /**
   * Tells the batch's callers it is committed, and resolves their writes once the disk sync that
   * covers it is done. The next batch does not wait for that sync: it is committed meanwhile, and
   * made durable by the sync after it (syncs run one at a time, in order), so a write asked for
   * during a sync is under way at once instead of after it.
   */
  private settleOnceSynced(deferred: DeferredSync, batch: PendingWrite[], results: unknown[]): void {
    batch.forEach((entry, i) => {
      // What a caller does on the news is its own: a failure there is its write's, not the batch's.
      try {
        entry.committed?.(results[i]);
      } catch (error) {
        entry.reject(error);
      }
    });
    void deferred.sync().then(
      () => batch.forEach((entry, i) => entry.resolve(results[i])),
      (error: unknown) => batch.forEach((entry) => entry.reject(error)),
    );
  }

  /** `write` in one transaction, committed without waiting for the disk when the sync is deferred. */
  private commit<R>(write: Write<R>): Promise<R> {
    const deferred = this.deferred;
    if (!deferred) return this.db.transaction().execute(write);
    return this.db.connection().execute((connection) => deferred.unsynced(() => connection.transaction().execute(write)));
  }
}

/** Runs `statements` on the transaction's connection itself, one after the other. */
export function runAll(trx: Transaction<Database>, statements: readonly CompiledQuery[]): Promise<void> {
  return trx.getExecutor().provideConnection(async (connection) => {
    for (const statement of statements) await connection.executeQuery(statement);
  });
}
