// The last messages of each room, which a member who joins is sent: written to the store in batches
// (a post does not wait for its history row), kept in memory per room once read. A batch is written
// FLUSH_INTERVAL_MS after its first entry, by a timer set only then: an idle server is not woken.
import type { Logger } from 'pino';
import { isStoreUnavailable, type RoomHistoryEntry, type RoomStore } from '../store/index.js';
import type { Room } from './rooms.js';

/** Entries written at once; more waiting start a write before the next tick. */
const BATCH = 200;
const FLUSH_INTERVAL_MS = 200;
/** History entries kept in memory while the store is unavailable; beyond, the oldest are dropped (joiners see the last few per room only). */
const MAX_UNSAVED_HISTORY = 2000;

export class RoomHistory {
  private unsaved: RoomHistoryEntry[] = [];
  private flushing: Promise<void> | undefined;
  /** The write of what waits, due FLUSH_INTERVAL_MS after the first entry of a batch. */
  private timer: NodeJS.Timeout | undefined;
  /** Between start() and stop(): entries are written by the timer. */
  private running = false;

  constructor(
    private readonly store: RoomStore,
    /** Entries kept per room (imc.history); 0 keeps none. */
    private readonly size: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.running = true;
    if (this.unsaved.length > 0) this.flushLater();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Keeps a text post of the room (other content types, such as is-composing, are not history). */
  record(room: Room, entry: RoomHistoryEntry): void {
    if (this.size === 0 || !entry.contentType.startsWith('text/plain')) return;
    this.unsaved.push(entry);
    if (room.history) {
      room.history.push(entry);
      if (room.history.length > this.size) room.history.shift();
    }
    // While a write is under way the next starts when it ends (flush() below), not one per post.
    if (this.unsaved.length >= BATCH && !this.flushing) void this.flush();
    else this.flushLater();
  }

  /** Sets the timer that writes what waits, unless it is set (or the history is stopped: stop() writes it). */
  private flushLater(): void {
    if (!this.running || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, FLUSH_INTERVAL_MS).unref();
  }

  /** The last entries of a room, oldest first. */
  async recent(room: Room): Promise<RoomHistoryEntry[]> {
    if (this.size === 0) return [];
    if (!room.history) {
      await this.flush();
      room.history = await this.store.recentHistory(room.name, room.domain, this.size);
    }
    return room.history;
  }

  /** Writes what is waiting; resolves once written (or kept for the next try while the store is unavailable). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    if (this.unsaved.length === 0) return Promise.resolve();
    const batch = this.unsaved;
    this.unsaved = [];
    this.flushing = this.store
      .appendHistory(batch)
      .then(
        () => {
          this.flushing = undefined;
          // What came in meanwhile, a batch or more: written now rather than by the timer.
          if (this.unsaved.length >= BATCH) void this.flush();
        },
        (error: unknown) => {
          this.flushing = undefined;
          if (!isStoreUnavailable(error)) return this.log.error({ err: error }, 'room history not saved');
          // The store logs the outage; the batch is tried again with the next.
          this.unsaved = [...batch, ...this.unsaved].slice(-MAX_UNSAVED_HISTORY);
          this.flushLater();
        },
      );
    return this.flushing;
  }
}
