// One timer structure for every transaction. SIP timers take a handful of distinct durations
// (T1·2^n, 64·T1, T4), so each duration gets a FIFO whose entries expire in insertion order:
// scheduling and cancelling are O(1) and one interval drives them all, instead of one
// setTimeout per transaction; it runs only while any timer is held.

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface TimerHandle {
  cancel(): void;
}

class Entry implements TimerHandle {
  constructor(
    readonly due: number,
    public fire: (() => void) | undefined,
    private readonly queue: DurationQueue,
  ) {}

  cancel(): void {
    if (this.fire === undefined) return;
    this.fire = undefined;
    this.queue.cancelled();
  }
}

/** A first-in first-out queue: push and shift in O(1), with no Map iteration (which walks past every deleted entry). */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  push(item: T): void {
    this.items.push(item);
  }
  /** Takes the first item out; compacts now and then so a long-lived queue does not grow without bound. */
  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  get first(): T | undefined {
    return this.items[this.head];
  }
  /** Keeps only the items `keep` says, in their order. */
  retain(keep: (item: T) => boolean): void {
    this.items = this.items.slice(this.head).filter(keep);
    this.head = 0;
  }
  get size(): number {
    return this.items.length - this.head;
  }
}

/** Cancelled timers a queue may hold, past which (and past half of it) it lets them go at once. */
const COMPACT_AFTER = 1024;

/**
 * The timers of one duration, in the order they fall due. A cancelled one (nearly every Timer F: a
 * transaction is answered long before 64·T1) is let go with the others cancelled meanwhile, not
 * kept until it would have been due: a timer held for half a minute outlives the young generation
 * and makes the collector copy it, then keep it in the old one.
 */
class DurationQueue extends Fifo<Entry> {
  private cancelledCount = 0;

  /** One of its entries was cancelled. */
  cancelled(): void {
    if (++this.cancelledCount < COMPACT_AFTER || this.cancelledCount * 2 < this.size) return;
    this.retain(isLive);
    this.cancelledCount = 0;
  }

  /** The first entry, taken out as it falls due. */
  take(): Entry | undefined {
    const entry = this.shift();
    if (entry !== undefined && entry.fire === undefined) this.cancelledCount--;
    return entry;
  }
}

const isLive = (entry: Entry) => entry.fire !== undefined;

export class TimerQueue {
  private readonly queues = new Map<number, DurationQueue>();
  private interval: NodeJS.Timeout | undefined;
  /** Between start() and stop(): the interval runs while any timer is held, and only then. */
  private started = false;

  constructor(
    readonly clock: Clock = systemClock,
    /** How often due timers are looked for, ms; SIP's shortest timer is T1 = 500 ms. */
    private readonly resolution = 10,
  ) {}

  schedule(delay: number, fire: () => void): TimerHandle {
    let queue = this.queues.get(delay);
    if (!queue) this.queues.set(delay, (queue = new DurationQueue()));
    const entry = new Entry(this.clock.now() + delay, fire, queue);
    queue.push(entry);
    if (this.started && this.interval === undefined) this.arm();
    return entry;
  }

  /** Fires every timer that is due. Called by the interval, or by tests after moving a fake clock. */
  tick(): void {
    const now = this.clock.now();
    for (const queue of this.queues.values()) {
      for (let entry = queue.first; entry && entry.due <= now; entry = queue.first) {
        queue.take();
        const fire = entry.fire;
        entry.fire = undefined;
        fire?.();
      }
    }
    // Nothing held, as under requests answered statelessly: the event loop is not woken every
    // `resolution` ms for nothing (each wake-up costs a loop turn and a callback into JavaScript).
    if (this.interval !== undefined && this.pending === 0) this.disarm();
  }

  /** Whether the interval that looks for due timers is running: only while started and holding any. */
  get running(): boolean {
    return this.interval !== undefined;
  }

  /** Live plus cancelled-but-not-yet-dropped entries; for metrics. */
  get pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  start(): void {
    this.started = true;
    if (this.interval === undefined && this.pending > 0) this.arm();
  }

  stop(): void {
    this.started = false;
    this.disarm();
  }

  private arm(): void {
    this.interval = setInterval(() => this.tick(), this.resolution).unref();
  }

  private disarm(): void {
    clearInterval(this.interval);
    this.interval = undefined;
  }
}

/** A clock tests move by hand. */
export class FakeClock implements Clock {
  constructor(private time = 1_000_000) {}
  now(): number {
    return this.time;
  }
  advance(ms: number, timers?: TimerQueue, step = 10): void {
    const end = this.time + ms;
    while (this.time < end) {
      this.time = Math.min(end, this.time + step);
      timers?.tick();
    }
  }
}
