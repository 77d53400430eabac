// Group commits of a SQLite file on a thread of their own. better-sqlite3 is synchronous: run on the
// event loop, every statement and commit of a write stops every datagram and timer meanwhile. A
// SqliteWriter hands the statements of each write, as data, to a worker thread with its own
// connection to the file (sqlite-writer-worker.ts), which commits those that arrive together in one
// transaction and syncs the write-ahead log before answering: a write resolves only once it is
// durable, so what is acknowledged survives kill -9 and a crash of the machine, and is seen by every
// read made after it. Writes are committed in the order they were asked for. One message is under
// way at a time: what is asked for while the thread commits and syncs one goes in the next, sent
// once it is answered, so that under load a message (which costs both threads, and wakes the
// thread) carries more writes, and a transaction and its sync are shared by more of them.
import { Worker } from 'node:worker_threads';
import type { CompiledQuery } from 'kysely';
import type { GroupWrite, StatementGroup } from './compiled.js';
import type { Answers, FromWriter, SentGroup, ToWriter, WriteFailure, WriterBatch, WriterData } from './sqlite-writer-worker.js';
import type { WriterStats } from './types.js';
import { Backoff } from '../util/backoff.js';
import { WRITER_LOST } from './availability.js';

/**
 * Where statements that belong together are committed, durably, before the promise resolves with
 * the number of rows they changed.
 */
export interface StatementWriter {
  write(statements: readonly CompiledQuery[]): Promise<number>;
  /**
   * As write, resolving with the row id the first statement inserted, undefined when it inserted
   * none (e.g. an INSERT ... SELECT whose condition did not hold). Later statements reach that row
   * as `last_insert_rowid()`, as long as no statement between inserted another.
   */
  insert(statements: readonly CompiledQuery[]): Promise<number | undefined>;
  /**
   * As write, the statements of a group with its values as their parameters: each value is handed
   * to the thread once, however many statements take it.
   */
  writeGroup(write: GroupWrite): Promise<number>;
}

interface PendingWrite {
  statements: readonly CompiledQuery[] | GroupWrite;
  /** Resolved with the row id its first statement inserted, rather than with the rows it changed. */
  insert: boolean;
  resolve(result: number | undefined): void;
  reject(error: unknown): void;
}

/** Run from the sources (tsx) the worker is a .ts file, and needs tsx loaded in its thread too. */
const FROM_SOURCES = import.meta.url.endsWith('.ts');

/** How long after the thread stopped a new one is started: from this, doubling while starts fail, to the most. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5_000;
/** Most values encode()'s array keeps between batches: about a thousand REGISTERs' worth. */
const GATHERED_KEPT = 16_384;

export class SqliteWriter implements StatementWriter {
  /** The thread, undefined between one that stopped unasked and the next one started. */
  private worker: Worker | undefined;
  private pending: PendingWrite[] = [];
  private readonly sent = new Map<number, PendingWrite[]>();
  private nextId = 0;
  /** The number the current thread knows each SQL text by, as they were first sent to it. */
  private readonly sqlNumbers = new Map<string, number>();
  /** The number the current thread knows each group by, as they were first sent to it. */
  private readonly groupNumbers = new Map<StatementGroup, number>();
  /**
   * Where encode() gathers a batch's values, then copies them out at their exact number: grown once
   * and kept, rather than grown again value by value for every batch (see GATHERED_KEPT).
   */
  private gathered: unknown[] = [];
  private sendScheduled = false;
  /** Set by close(): every write from then on fails with it. */
  private ended: Error | undefined;
  /** Why the last thread stopped unasked, while no new one is ready: writes fail with it. */
  private lost: Error | undefined;
  private readonly restartBackoff = new Backoff(RESTART_MIN_MS, RESTART_MAX_MS);
  private restartTimer: NodeJS.Timeout | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** Who asked stats() of the current thread, in order: the thread answers in the order asked. */
  private statsAsked: Array<(stats: WriterStats | undefined) => void> = [];
  /** Set by close() while writes asked for are unanswered: called once every one is. */
  private drained: (() => void) | undefined;

  /** A writer whose thread has its connection to the file, so that no write waits for the thread to start. */
  static async open(path: string, busyTimeoutMs: number): Promise<SqliteWriter> {
    const writer = new SqliteWriter({ path, busyTimeoutMs });
    try {
      await writer.start();
    } catch (error) {
      // A file the first thread cannot open fails the start: no thread is tried again for it.
      await writer.close();
      throw error;
    }
    return writer;
  }

  private constructor(private readonly data: WriterData) {}

  /**
   * Starts a thread; resolves once it has its connection. A thread that later stops unasked (a fault
   * in it) fails the writes it had not answered, as an outage, and another is started after a
   * backoff: the writes asked for meanwhile fail the same way, those after it go to the new one.
   */
  private start(): Promise<void> {
    const worker = new Worker(new URL(`./sqlite-writer-worker.${FROM_SOURCES ? 'ts' : 'js'}`, import.meta.url), {
      workerData: this.data,
      execArgv: FROM_SOURCES ? ['--import', import.meta.resolve('tsx')] : [],
    });
    this.worker = worker;
    this.sqlNumbers.clear();
    this.groupNumbers.clear();
    let failure: Error | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (reply: FromWriter) => {
        if ('stats' in reply) return this.statsAsked.shift()?.(reply.stats);
        if (!('ready' in reply)) return this.answered(reply);
        this.lost = undefined;
        this.restartBackoff.reset();
        resolve();
      });
      worker.on('error', (error) => {
        failure = new Error(`SQLite writer failed: ${error.message}`, { cause: error });
        reject(failure);
      });
    });
    this.exited = new Promise((resolve) => worker.once('exit', () => {
      if (this.worker === worker) this.stopped(failure ?? new Error('SQLite writer stopped'));
      resolve();
    }));
    // Only writes under way keep the process alive (see send()), once it is ready.
    void ready.then(() => this.sent.size === 0 && worker.unref(), () => {});
    return ready;
  }

  /** The thread is gone: what it had not answered fails; unless closing, a new one comes later. */
  private stopped(cause: Error): void {
    this.worker = undefined;
    const error = this.ended ?? Object.assign(new Error(`${cause.message}; its writes are refused until it is started again`, { cause }), { code: WRITER_LOST });
    for (const batch of this.sent.values()) for (const write of batch) write.reject(error);
    for (const write of this.pending) write.reject(error);
    this.sent.clear();
    this.pending = [];
    for (const asked of this.statsAsked.splice(0)) asked(undefined);
    this.drained?.();
    if (this.ended) return;
    this.lost = error;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      // A start that fails ends in stopped() again, with a longer wait.
      this.start().catch(() => {});
    }, this.restartBackoff.next());
    this.restartTimer.unref();
  }

  write(statements: readonly CompiledQuery[]): Promise<number> {
    return this.ask(statements, false) as Promise<number>;
  }

  insert(statements: readonly CompiledQuery[]): Promise<number | undefined> {
    return this.ask(statements, true);
  }

  writeGroup(write: GroupWrite): Promise<number> {
    return this.ask(write, false) as Promise<number>;
  }

  private ask(statements: PendingWrite['statements'], insert: boolean): Promise<number | undefined> {
    const refused = this.ended ?? this.lost;
    if (refused) return Promise.reject(refused);
    return new Promise<number | undefined>((resolve, reject) => {
      this.pending.push({ statements, insert, resolve, reject });
      // While the thread has writes of ours unanswered, it is committing or syncing them: the
      // writes asked for meanwhile wait here, and go to it in one message once they are answered.
      if (this.sent.size === 0) this.scheduleSend();
    });
  }

  /** Sends the pending writes once the requests handled meanwhile have asked for theirs: they go in the same message. */
  private scheduleSend(): void {
    if (this.sendScheduled) return;
    this.sendScheduled = true;
    setImmediate(() => this.send());
  }

  /** What the current thread has done since it started; undefined when none runs. */
  stats(): Promise<WriterStats | undefined> {
    const worker = this.worker;
    if (!worker) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.statsAsked.push(resolve);
      worker.postMessage({ stats: true } satisfies ToWriter);
    });
  }

  /** Stops the thread once every write asked for is answered. */
  async close(): Promise<void> {
    // Again once drained: what was asked for in answer to the last writes is waited for too.
    while (!this.ended && this.worker && !this.isDrained()) await new Promise<void>((resolve) => (this.drained = resolve));
    this.drained = undefined;
    this.ended ??= new Error('SQLite writer stopped: the store is closed');
    clearTimeout(this.restartTimer);
    if (this.worker) {
      // Kept alive until the thread has closed its connection, whatever else the process still has.
      this.worker.ref();
      this.worker.postMessage({ close: true } satisfies ToWriter);
    }
    await this.exited;
  }

  private send(): void {
    this.sendScheduled = false;
    const worker = this.worker;
    if (!worker || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const id = this.nextId++;
    const newGroups: StatementGroup[] = [];
    const message = this.encode(id, batch, newGroups);
    try {
      worker.postMessage(message, message.bytes ? [message.bytes] : []);
    } catch (error) {
      // A value that cannot be sent to another thread: nothing of the batch was, its new texts included.
      for (const sql of message.newSql) this.sqlNumbers.delete(sql);
      for (const group of newGroups) this.groupNumbers.delete(group);
      for (const write of batch) write.reject(error);
      if (this.isDrained()) this.drained?.();
      return;
    }
    this.sent.set(id, batch);
    if (this.sent.size === 1) worker.ref();
  }

  /**
   * A batch as the thread reads it: flat, and each SQL text and group sent once, then named by its
   * number (the groups new to the thread are added to `newGroups`). Copying a message between
   * threads costs by the object: one array of numbers and values is much cheaper than an object per
   * statement with its text. The bytes of every binary value (a message's body) are gathered in one
   * buffer, handed over rather than copied: each sent on its own would cost a buffer of its own, and
   * a small Buffer is a view of a pool shared by many, which would be copied with all the memory it views.
   */
  private encode(id: number, batch: readonly PendingWrite[], newGroups: StatementGroup[]): WriterBatch {
    const newSql: string[] = [];
    const sentGroups: SentGroup[] = [];
    const gathered = this.gathered;
    const binaries: Uint8Array[] = [];
    const bytesAt: number[] = [];
    let byteLength = 0;
    let at = 0;
    const put = (value: unknown) => {
      if (value instanceof Uint8Array) {
        binaries.push(value);
        bytesAt.push(at);
        byteLength += value.byteLength;
        gathered[at++] = value.byteLength;
      } else gathered[at++] = value;
    };
    const sqlNumber = (sql: string) => {
      let number = this.sqlNumbers.get(sql);
      if (number === undefined) {
        number = this.sqlNumbers.size;
        this.sqlNumbers.set(sql, number);
        newSql.push(sql);
      }
      return number;
    };
    for (const { statements } of batch) {
      if (!Array.isArray(statements)) {
        const { group, values } = statements as GroupWrite;
        let number = this.groupNumbers.get(group);
        if (number === undefined) {
          number = this.groupNumbers.size;
          this.groupNumbers.set(group, number);
          newGroups.push(group);
          sentGroups.push({ sql: group.statements.map(({ compiled }) => sqlNumber(compiled.sql)), sources: group.statements.map(({ sources }) => [...sources]), values: group.valueCount });
        }
        // A group is told from a number of statements by its sign.
        gathered[at++] = ~number;
        for (const value of values) put(value);
        continue;
      }
      gathered[at++] = statements.length;
      for (const { sql, parameters } of statements as readonly CompiledQuery[]) {
        gathered[at++] = sqlNumber(sql);
        gathered[at++] = parameters.length;
        for (const parameter of parameters) put(parameter);
      }
    }
    // A copy of a packed array (filled from its start, never sized beforehand) is packed too: an
    // array made with a length has holes as far as V8 knows, and is copied to the thread key by
    // key, several times slower.
    const writes = gathered.slice(0, at);
    // What is kept past a burst's batch would hold that many values for as long.
    if (gathered.length > GATHERED_KEPT) this.gathered = [];
    const message: WriterBatch = { id, newSql, count: batch.length, writes };
    if (sentGroups.length > 0) message.newGroups = sentGroups;
    if (binaries.length === 0) return message;
    // Not from the pool: the buffer handed over is the thread's alone.
    const bytes = Buffer.allocUnsafeSlow(byteLength);
    let offset = 0;
    for (const binary of binaries) {
      bytes.set(binary, offset);
      offset += binary.byteLength;
    }
    message.bytes = bytes.buffer as ArrayBuffer;
    message.bytesAt = bytesAt;
    return message;
  }

  private answered({ ids, outcomes, insertedIds }: Answers): void {
    let at = 0;
    for (const id of ids) {
      const batch = this.sent.get(id);
      // Every batch answered was sent to this thread and is answered once: not found, nothing after it can be placed.
      if (!batch) break;
      this.sent.delete(id);
      for (const write of batch) {
        const outcome = outcomes[at]!;
        if (typeof outcome !== 'number') write.reject(errorOf(outcome));
        else if (write.insert) write.resolve(insertedIds[at] || undefined);
        else write.resolve(outcome);
        at++;
      }
    }
    if (this.sent.size === 0) {
      if (this.pending.length > 0) this.scheduleSend();
      else this.worker?.unref();
    }
    if (this.isDrained()) this.drained?.();
  }

  /** Whether every write asked for is answered. */
  private isDrained(): boolean {
    return this.pending.length === 0 && this.sent.size === 0;
  }
}

/** The driver error a failure stood for, with its code, as availability.ts reads it. */
function errorOf({ code, message }: WriteFailure): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}
