// The thread of a SqliteWriter (sqlite-writer.ts): its own connection to the SQLite file, on which
// the writes the main thread sends are committed together and the write-ahead log synced before
// each is answered. Every batch that arrives while one is committed and synced goes in the next
// transaction, so a burst shares one disk sync; writes are committed in the order they came.
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';
import { isSqliteUnavailableCode } from './availability.js';

export interface WriterData {
  path: string;
  busyTimeoutMs: number;
}

/**
 * What the main thread sends: `count` writes, each statements that are committed together or not at
 * all; or the order to stop. `writes` is flat: for each write its number of statements, then for
 * each statement the number of its SQL text, its number of parameters and the parameters. A text is
 * numbered in the order it was first sent, in `newSql`.
 */
export type ToWriter = { id: number; newSql: string[]; count: number; writes: unknown[] } | { close: true };

interface Statement {
  sql: number;
  parameters: unknown[];
}

/** A failed write, as it crosses threads: a driver error's code and message. */
export interface WriteFailure {
  code?: string;
  message: string;
}

/** For each write of a batch: the number of rows its statements changed, or why it failed. */
export type WriteOutcome = number | WriteFailure;

/** `ready` once the thread has its connection; then the outcomes of each batch once its writes are durable or failed. */
export type FromWriter = { ready: true } | { id: number; outcomes: WriteOutcome[] };

const { path, busyTimeoutMs } = workerData as WriterData;
const port = parentPort!;
const database = new SqliteDatabase(path);
database.pragma(`busy_timeout = ${busyTimeoutMs}`);
// A commit writes the log without syncing it, so the write lock is not held while the disk syncs;
// the log is synced by this thread before any write is acknowledged (see flush).
database.pragma('synchronous = NORMAL');
/** The SQL texts by number (few: one per shape of statement), each prepared once, when first run. */
const texts: string[] = [];
const prepared: Array<SqliteDatabase.Statement | undefined> = [];
let log: number | undefined;
let queued: Array<{ id: number; writes: Statement[][] }> = [];
const begin = database.prepare('BEGIN IMMEDIATE');
const commitStatement = database.prepare('COMMIT');
const rollback = database.prepare('ROLLBACK');
port.postMessage({ ready: true } satisfies FromWriter);
let flushScheduled = false;

port.on('message', (message: ToWriter) => {
  if ('close' in message) {
    database.close();
    if (log !== undefined) closeSync(log);
    port.close();
    return;
  }
  texts.push(...message.newSql);
  queued.push({ id: message.id, writes: decode(message.count, message.writes) });
  if (!flushScheduled) {
    flushScheduled = true;
    // After every message that arrived meanwhile: they share the transaction.
    setImmediate(flush);
  }
});

function flush(): void {
  flushScheduled = false;
  const batches = queued;
  queued = [];
  const writes = batches.flatMap((batch) => batch.writes);
  const outcomes = commitAll(writes);
  if (outcomes.some((outcome) => typeof outcome === 'number')) {
    try {
      log ??= openSync(`${path}-wal`, 'r');
      fsyncSync(log);
    } catch (error) {
      outcomes.fill(failureOf(error));
    }
  }
  let at = 0;
  for (const batch of batches) {
    port.postMessage({ id: batch.id, outcomes: outcomes.slice(at, at + batch.writes.length) } satisfies FromWriter);
    at += batch.writes.length;
  }
}

/** Commits `writes` in one transaction; when that fails, each on its own, so one bad write fails only itself. */
function commitAll(writes: Statement[][]): WriteOutcome[] {
  try {
    return commit(writes);
  } catch (error) {
    const failure = failureOf(error);
    // Nothing gets through while the store is unavailable: trying each write would only wait longer.
    if (writes.length === 1 || isSqliteUnavailableCode(failure.code)) return writes.map(() => failure);
    return writes.map((write) => {
      try {
        return commit([write])[0]!;
      } catch (error) {
        return failureOf(error);
      }
    });
  }
}

/** Commits `writes` in one transaction; the rows each changed. */
function commit(writes: Statement[][]): number[] {
  begin.run();
  try {
    const changed = writes.map((write) => {
      let rows = 0;
      for (const { sql, parameters } of write) rows += (prepared[sql] ??= database.prepare(texts[sql]!)).run(parameters).changes;
      return rows;
    });
    commitStatement.run();
    return changed;
  } catch (error) {
    if (database.inTransaction) rollback.run();
    throw error;
  }
}

/** The writes of a message (see ToWriter). */
function decode(count: number, flat: readonly unknown[]): Statement[][] {
  const writes: Statement[][] = [];
  let at = 0;
  for (let write = 0; write < count; write++) {
    const statements: Statement[] = [];
    for (let left = flat[at++] as number; left > 0; left--) {
      const sql = flat[at++] as number;
      const length = flat[at++] as number;
      statements.push({ sql, parameters: flat.slice(at, at + length) });
      at += length;
    }
    writes.push(statements);
  }
  return writes;
}

function failureOf(error: unknown): WriteFailure {
  const code = (error as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : undefined, message: error instanceof Error ? error.message : String(error) };
}
