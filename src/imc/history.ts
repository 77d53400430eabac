// The last messages of each room, which a member who joins is sent: written to the store in batches
// (a post does not wait for its history row), kept in memory per room once read.
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
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: RoomStore,
    /** Entries kept per room (imc.history); 0 keeps none. */
    private readonly size: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
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

  /** Writes what is waiting; resolves once written (or kept for the next tick while the store is unavailable). */
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
          // What came in meanwhile, a batch or more: written now rather than at the next tick.
          if (this.unsaved.length >= BATCH) void this.flush();
        },
        (error: unknown) => {
          this.flushing = undefined;
          if (!isStoreUnavailable(error)) return this.log.error({ err: error }, 'room history not saved');
          // The store logs the outage; the batch waits for the next tick.
          this.unsaved = [...batch, ...this.unsaved].slice(-MAX_UNSAVED_HISTORY);
        },
      );
    return this.flushing;
  }
}
