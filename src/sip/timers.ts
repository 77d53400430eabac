// One timer structure for every transaction. SIP timers take a handful of distinct durations
// (T1·2^n, 64·T1, T4), so each duration gets a FIFO whose entries expire in insertion order:
// scheduling and cancelling are O(1) and one Node timer drives them all, instead of one
// setTimeout per transaction. It is set for the earliest timer held, no sooner than the queue's
// resolution: none while nothing is held, and a queue holding only far timers (a redelivery
// minutes away) sleeps until then rather than waking the event loop every few milliseconds.

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

/** The longest wait setTimeout takes. */
const MAX_WAIT_MS = 2 ** 31 - 1;

export class TimerQueue {
  private readonly queues = new Map<number, DurationQueue>();
  /** The Node timer that calls tick(), and when it is set to: only while started and holding any timer. */
  private wakeUp: NodeJS.Timeout | undefined;
  private wakeUpAt = Infinity;
  private started = false;
  /** While tick() fires timers: what they schedule is waited for once it is done, not one wake-up each. */
  private ticking = false;

  constructor(
    readonly clock: Clock = systemClock,
    /** The least wait between looks for due timers, ms; SIP's shortest timer is T1 = 500 ms. */
    private readonly resolution = 10,
  ) {}

  schedule(delay: number, fire: () => void): TimerHandle {
    let queue = this.queues.get(delay);
    if (!queue) this.queues.set(delay, (queue = new DurationQueue()));
    const entry = new Entry(this.clock.now() + delay, fire, queue);
    queue.push(entry);
    // Under traffic nearly every new timer falls due after the one the wake-up is set for already.
    if (this.started && !this.ticking && entry.due < this.wakeUpAt) this.wakeAt(entry.due);
    return entry;
  }

  /** Fires every timer that is due. Called by the Node timer, or by tests after moving a fake clock. */
  tick(): void {
    const now = this.clock.now();
    this.ticking = true;
    try {
      for (const queue of this.queues.values()) {
        for (let entry = queue.first; entry && entry.due <= now; entry = queue.first) {
          queue.take();
          const fire = entry.fire;
          entry.fire = undefined;
          fire?.();
        }
      }
    } finally {
      this.ticking = false;
      if (this.started) this.wakeForNext();
    }
  }

  /** Whether a wake-up is set to look for due timers: only while started and holding any. */
  get running(): boolean {
    return this.wakeUp !== undefined;
  }

  /** Live plus cancelled-but-not-yet-dropped entries; for metrics. */
  get pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  start(): void {
    this.started = true;
    this.wakeForNext();
  }

  stop(): void {
    this.started = false;
    this.clearWakeUp();
  }

  /**
   * Sets the wake-up for the earliest timer held (a cancelled one first in its queue counts: waking
   * for it early only drops it), or none when nothing is held, as under requests answered statelessly.
   */
  private wakeForNext(): void {
    let earliest = Infinity;
    for (const queue of this.queues.values()) {
      const first = queue.first;
      if (first !== undefined && first.due < earliest) earliest = first.due;
    }
    this.clearWakeUp();
    if (earliest !== Infinity) this.wakeAt(earliest);
  }

  private wakeAt(due: number): void {
    this.clearWakeUp();
    this.wakeUpAt = due;
    // Node takes no wait above 2^31-1 ms (it would fire at once): a later timer is waited for in steps.
    const wait = Math.min(MAX_WAIT_MS, Math.max(this.resolution, due - this.clock.now()));
    this.wakeUp = setTimeout(() => {
      this.wakeUp = undefined;
      this.wakeUpAt = Infinity;
      this.tick();
    }, wait).unref();
  }

  private clearWakeUp(): void {
    clearTimeout(this.wakeUp);
    this.wakeUp = undefined;
    this.wakeUpAt = Infinity;
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
