// Store turns: per-device delivery (devices.ts) stores a user's messages in the order they came,
// whichever was answered first (StoreTurns), and a device with a message on its way to the store for
// it counts as queued meanwhile (Storing): no later message is sent to it live, overtaking that one.
import { queueOf } from './takeover.js';

/** A place in the order in which the messages for a user are stored (StoreTurns.take). */
export interface StoreTurn {
  /** Settles once every message for the user that came before has asked the store to write it (or needed no store). */
  previous: Promise<void>;
  /** This message asked the store to write it, or needs no store: the next one may go. */
  release(): void;
}

/** What a store turn waits for when nothing is stored before it. */
const SETTLED: Promise<void> = Promise.resolve();

export class StoreTurns {
  /** The latest store turn of each AOR with one under way. */
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * A place in the order in which messages for `aor` are stored, after every one taken before: a
   * device's rows are in the order its messages came. The store commits writes in the order they
   * were asked for, so a turn ends once its write is asked for, not committed.
   */
  take(aor: string): StoreTurn {
    const previous = this.tails.get(aor) ?? SETTLED;
    let release!: () => void;
    const own = new Promise<void>((resolve) => (release = resolve));
    const mine = previous.then(() => own);
    this.tails.set(aor, mine);
    void mine.then(() => {
      if (this.tails.get(aor) === mine) this.tails.delete(aor);
    });
    return { previous, release };
  }
}

/** The devices ("aor\ndevice") with messages on their way to the store for them, how many of them. */
export class Storing {
  private readonly counts = new Map<string, number>();

  /** Whether any device has one: when none has, nothing else here needs a look. */
  get size(): number {
    return this.counts.size;
  }

  /** Whether the device (its queueOf key) has a message on its way to the store for it. */
  has(queue: string): boolean {
    return this.counts.has(queue);
  }

  /** The marks of one message of `aor` on its way to the store. */
  marks(aor: string): StoringMarks {
    return new StoringMarks(this.counts, aor);
  }
}

/** The devices one message is on its way to the store for, counted in Storing: each device once, all released once. */
export class StoringMarks {
  private readonly devices = new Set<string>();

  constructor(
    private readonly counts: Map<string, number>,
    private readonly aor: string,
  ) {}

  mark(device: string): void {
    if (this.devices.has(device)) return;
    this.devices.add(device);
    const queue = queueOf(this.aor, device);
    this.counts.set(queue, (this.counts.get(queue) ?? 0) + 1);
  }

  release(): void {
    for (const device of this.devices) {
      const queue = queueOf(this.aor, device);
      const left = this.counts.get(queue)! - 1;
      if (left === 0) this.counts.delete(queue);
      else this.counts.set(queue, left);
    }
    this.devices.clear();
  }
}
