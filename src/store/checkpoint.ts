// SQLite checkpoints off the event loop. A checkpoint copies the write-ahead log into the database
// file and syncs both; left to SQLite (wal_autocheckpoint), it runs inside the commit that crosses
// 1000 pages of WAL, on the thread of that commit: Parley's event loop, held for two disk syncs and
// the copy (up to a hundred milliseconds on a busy disk) every few seconds of a flood of writes.
// Instead a worker thread with a connection of its own runs a PASSIVE checkpoint (one that waits for
// no reader or writer) once a second after writes; WAL mode lets it run beside Parley's writes.
// Should the worker fail, SQLite's own checkpoints are turned back on, so the WAL never grows unbounded.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** What one checkpoint did: frames in the WAL, and how many of them are now in the database file. */
export interface CheckpointResult {
  log: number;
  checkpointed: number;
}

/** Runs in the worker, as CommonJS: better-sqlite3 is loaded from where Parley loads it. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
let db;
try {
  db = new Database(workerData.path, { fileMustExist: true });
} catch (error) {
  // A plain Error: better-sqlite3's own loses its message on the way to the main thread.
  throw new Error(String((error && error.message) || error));
}
parentPort.on('message', () => {
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ log: row.log, checkpointed: row.checkpointed });
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.message) || error) });
  }
});
`;

const AUTOCHECKPOINT_PAGES = 1000;

export class Checkpointer {
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;
  private written = false;
  private running: { resolve(result: CheckpointResult): void; reject(error: Error): void } | undefined;
  private failed = false;

  /**
   * `path` is the database file, `intervalMs` how often to checkpoint after writes, `fallBack` what
   * turns SQLite's own checkpoints on again, called once if the worker fails.
   */
  constructor(path: string, intervalMs: number, private readonly fallBack: (pages: number, reason: string) => void) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, module: createRequire(import.meta.url).resolve('better-sqlite3') } });
    this.worker.unref();
    this.worker.on('message', (message: CheckpointResult & { error?: string }) => {
      const running = this.running;
      this.running = undefined;
      if (message.error !== undefined) running?.reject(new Error(message.error));
      else running?.resolve({ log: message.log, checkpointed: message.checkpointed });
    });
    this.worker.on('error', (error) => this.fail(error.message));
    this.worker.on('exit', (code) => this.fail(`the checkpoint worker exited with code ${code}`));
    this.timer = setInterval(() => {
      if (!this.written || this.running || this.failed) return;
      this.written = false;
      this.checkpoint().catch((error: Error) => this.fail(error.message));
    }, intervalMs).unref();
  }

  /** A write was committed: the next tick checkpoints. */
  noteWrite(): void {
    this.written = true;
  }

  /** Runs one checkpoint now (the interval's, or a test's). */
  checkpoint(): Promise<CheckpointResult> {
    if (this.running) return Promise.reject(new Error('a checkpoint is under way'));
    if (this.failed) return Promise.reject(new Error('the checkpoint worker failed'));
    return new Promise((resolve, reject) => {
      this.running = { resolve, reject };
      this.worker.postMessage('checkpoint');
    });
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.running?.reject(new Error(reason));
    this.running = undefined;
    clearInterval(this.timer);
    this.fallBack(AUTOCHECKPOINT_PAGES, reason);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.failed = true;
    this.running?.reject(new Error('the store is closed'));
    this.running = undefined;
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
