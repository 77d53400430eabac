// The thread of a SqliteWriter (sqlite-writer.ts): its own connection to the SQLite file, on which
// the writes the main thread sends are committed together and the write-ahead log synced before
// each is answered. The batches that arrive while the disk syncs wait for it to end, then go in one
// transaction, synced next: under load, transactions and syncs grow rather than multiply, so that a
// write costs less (a transaction's own work, and a page written to the log once per sync rather
// than by each of several transactions, are shared by more writes); writes are committed, and
// answered, in the order they came.
import { closeSync, fsync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';
import { isSqliteUnavailableCode } from './availability.js';
import type { WriterStats } from './types.js';

export interface WriterData {
  path: string;
  busyTimeoutMs: number;
}

/**
 * What the main thread sends: `count` writes, each statements that are committed together or not at
 * all; or the order to stop. `writes` is flat: for each write its number of statements, then for
 * each statement the number of its SQL text, its number of parameters and the parameters; or, for
 * a write of a group's statements (see StatementGroup), the group's number n as ~n (below zero),
 * then the group's values. A text is numbered in the order it was first sent, in `newSql`, a group
 * likewise in `newGroups`. A binary value is in `bytes`, one after the other: `bytesAt` are the
 * places of `writes` that have their lengths instead.
 */
export type ToWriter = WriterBatch | { close: true } | { stats: true };

export interface WriterBatch {
  id: number;
  newSql: string[];
  count: number;
  newGroups?: SentGroup[];
  writes: unknown[];
  bytes?: ArrayBuffer;
  bytesAt?: number[];
}

/** A StatementGroup as the thread knows it: the number of each statement's SQL text, and the values each takes, by index. */
export interface SentGroup {
  sql: number[];
  sources: number[][];
  /** How many values a write of the group has. */
  values: number;
}

/**
 * A write of a batch: its statements, where they start in the batch's flat values (see ToWriter),
 * which are read from there as they run rather than copied into an object per statement first.
 */
interface Write {
  flat: readonly unknown[];
  at: number;
}

/** A failed write, as it crosses threads: a driver error's code and message. */
export interface WriteFailure {
  code?: string;
  message: string;
}

/** For each write of a batch: the number of rows its statements changed, or why it failed. */
export type WriteOutcome = number | WriteFailure;

/**
 * `ready` once the thread has its connection; then, once a sync made them durable (or they failed),
 * the outcomes of the batches `ids`, in their order and one after the other: for each write its
 * outcome and the row id its first statement inserted (0 when none), the id of a message stored,
 * which the main thread has no other way to learn. One message per transaction, whatever the number
 * of batches in it: a message costs each thread far more than the few numbers in it.
 */
export type FromWriter = { ready: true } | { stats: WriterStats } | Answers;

export interface Answers {
  ids: number[];
  outcomes: WriteOutcome[];
  insertedIds: number[];
}

/** What a transaction's writes did, each: the rows its statements changed, and the row id its first statement inserted (0 when none). */
interface Committed {
  changed: number[];
  insertedIds: number[];
}

const { path, busyTimeoutMs } = workerData as WriterData;
const port = parentPort!;
const database = new SqliteDatabase(path);
database.pragma(`busy_timeout = ${busyTimeoutMs}`);
// A commit writes the log without syncing it, so the write lock is not held while the disk syncs;
// the log is synced by this thread before any write is acknowledged (see flush).
database.pragma('synchronous = NORMAL');
/** The SQL texts by number (few: one per shape of statement), each prepared once, when first run. */
const texts: string[] = [];
const groups: SentGroup[] = [];
const prepared: Array<SqliteDatabase.Statement | undefined> = [];
let log: number | undefined;
let queued: Array<{ id: number; writes: Write[] }> = [];
const begin = database.prepare('BEGIN IMMEDIATE');
const commitStatement = database.prepare('COMMIT');
const rollback = database.prepare('ROLLBACK');
port.postMessage({ ready: true } satisfies FromWriter);
let flushScheduled = false;
/**
 * Settles once every batch received is committed, synced and answered. One sync at a time, and no
 * commit while it runs: the batches that arrive meanwhile are committed together when it ends.
 */
let syncing: Promise<void> | undefined;
const stats: Omit<WriterStats, 'cpuMicros'> = { batches: 0, transactions: 0, writes: 0, statements: 0, syncs: 0 };

port.on('message', (message: ToWriter) => {
  if ('close' in message) {
    void (syncing ?? Promise.resolve()).then(() => {
      database.close();
      if (log !== undefined) closeSync(log);
      port.close();
    });
    return;
  }
  if ('stats' in message) {
    const cpu = process.threadCpuUsage();
    port.postMessage({ stats: { ...stats, cpuMicros: cpu.user + cpu.system } } satisfies FromWriter);
    return;
  }
  stats.batches++;
  texts.push(...message.newSql);
  if (message.newGroups) groups.push(...message.newGroups);
  if (message.bytes) putBinaries(message.writes, message.bytes, message.bytesAt!);
  queued.push({ id: message.id, writes: writesOf(message.count, message.writes) });
  // While a sync runs, its end commits what came meanwhile (see commitAndSync).
  if (!flushScheduled && syncing === undefined) {
    flushScheduled = true;
    // After every message that arrived meanwhile: they share the transaction.
    setImmediate(flush);
  }
});

function flush(): void {
  flushScheduled = false;
  const running: Promise<void> = commitAndSync().then(() => {
    if (syncing === running) syncing = undefined;
  });
  syncing = running;
}

/**
 * Commits the batches received in one transaction, syncs the log off this thread (libuv's pool) and
 * answers them in one message; again with those that arrived meanwhile, until none did. Answers keep
 * the order of the writes, which callers rely on (an outbox's recipient gets its messages in the
 * order their rows were answered).
 */
async function commitAndSync(): Promise<void> {
  while (queued.length > 0) {
    const batches = queued;
    queued = [];
    const writes = batches.flatMap((batch) => batch.writes);
    const insertedIds = new Array<number>(writes.length).fill(0);
    const outcomes = commitAll(writes, insertedIds);
    if (outcomes.some((outcome) => typeof outcome === 'number')) {
      stats.syncs++;
      await syncLog().catch((error: unknown) => outcomes.fill(failureOf(error)));
    }
    port.postMessage({ ids: batches.map((batch) => batch.id), outcomes, insertedIds } satisfies FromWriter);
  }
}

/** Makes every commit so far durable: the write-ahead log on disk. */
function syncLog(): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      log ??= openSync(`${path}-wal`, 'r');
    } catch (error) {
      reject(error);
      return;
    }
    fsync(log, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Commits `writes` in one transaction, setting `insertedIds` of those committed; when that fails,
 * each on its own, so one bad write fails only itself.
 */
function commitAll(writes: Write[], insertedIds: number[]): WriteOutcome[] {
  try {
    const committed = commit(writes);
    insertedIds.splice(0, writes.length, ...committed.insertedIds);
    return committed.changed;
  } catch (error) {
    const failure = failureOf(error);
    // Nothing gets through while the store is unavailable: trying each write would only wait longer.
    if (writes.length === 1 || isSqliteUnavailableCode(failure.code)) return writes.map(() => failure);
    return writes.map((write, i) => {
      try {
        const committed = commit([write]);
        insertedIds[i] = committed.insertedIds[0]!;
        return committed.changed[0]!;
      } catch (error) {
        return failureOf(error);
      }
    });
  }
}

/** Commits `writes` in one transaction. */
function commit(writes: Write[]): Committed {
  stats.transactions++;
  stats.writes += writes.length;
  begin.run();
  try {
    const changed: number[] = [];
    const insertedIds: number[] = [];
    for (const { flat, at: start } of writes) {
      let rows = 0;
      let insertedId = 0;
      let at = start;
      const first = flat[at++] as number;
      const group = first < 0 ? groups[~first]! : undefined;
      const statements = group ? group.sql.length : first;
      stats.statements += statements;
      for (let i = 0; i < statements; i++) {
        let sql: number;
        let parameters: unknown[];
        if (group) {
          sql = group.sql[i]!;
          parameters = group.sources[i]!.map((source) => flat[at + source]);
        } else {
          sql = flat[at++] as number;
          const end = at + 1 + (flat[at] as number);
          parameters = flat.slice(at + 1, end);
          at = end;
        }
        const result = (prepared[sql] ??= database.prepare(texts[sql]!)).run(parameters);
        rows += result.changes;
        if (i === 0 && result.changes > 0) insertedId = Number(result.lastInsertRowid);
      }
      changed.push(rows);
      insertedIds.push(insertedId);
    }
    commitStatement.run();
    return { changed, insertedIds };
  } catch (error) {
    if (database.inTransaction) rollback.run();
    throw error;
  }
}

/** Puts each binary value of `bytes` in its place of `flat`, which has its length (see ToWriter). */
function putBinaries(flat: unknown[], bytes: ArrayBuffer, bytesAt: readonly number[]): void {
  let offset = 0;
  for (const at of bytesAt) {
    const length = flat[at] as number;
    flat[at] = new Uint8Array(bytes, offset, length);
    offset += length;
  }
}

/** The writes of a message (see ToWriter): where each starts in `flat`. */
function writesOf(count: number, flat: readonly unknown[]): Write[] {
  const writes: Write[] = [];
  let at = 0;
  for (let write = 0; write < count; write++) {
    writes.push({ flat, at });
    const first = flat[at++] as number;
    // Past a group's values.
    if (first < 0) at += groups[~first]!.values;
    // Past its statements: each is its text's number, its number of parameters and the parameters.
    else for (let left = first; left > 0; left--) at += 2 + (flat[at + 1] as number);
  }
  return writes;
}

function failureOf(error: unknown): WriteFailure {
  const code = (error as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : undefined, message: error instanceof Error ? error.message : String(error) };
}
