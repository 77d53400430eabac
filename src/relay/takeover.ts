// Takeover: a device recognised as one that registered from a new address (device-recognition.ts,
// successors.ts) takes over what waited for the one it was: the rows move in the store
// (DeliveryStore.takeOver), and from then on what was on its way to the store for the old one is
// stored for it (followMoves), what the old one answers is recorded for it too, and the legs the old
// one was still sent are its own (the host hands them on). Kept in memory until the old one
// registers again itself (registeredAgain).
import type { DeliveryStore } from '../store/index.js';

/** What a takeover needs of per-device delivery (devices.ts), the state it shares. */
export interface TakeoverHost {
  /** Before the rows of `from` move: what their drains took that is not recorded yet is recorded (committed before the move, it does not move). */
  recordTaken(aor: string, from: readonly string[]): void;
  /** The legs on their way to `from` are also `device`'s, for the messages received before `receivedBefore` when given. */
  handOnLegs(from: readonly string[], device: string, receivedBefore?: number): void;
  /** The remembered devices of `aor` change: a read begun before is not kept. */
  devicesChanged(aor: string): void;
  /** The rows of `from` moved to `device`. */
  moved(aor: string, from: readonly string[], device: string): void;
}

/** Devices recognised as another kept at most: past it they are all forgotten. */
const MAX_MOVES = 100_000;

export class Takeovers {
  /** Devices ("aor\ndevice") recognised as another one that registered from a new address, with the device they are now. */
  private readonly movedTo = new Map<string, string>();

  constructor(
    private readonly store: DeliveryStore,
    private readonly host: TakeoverHost,
  ) {}

  /** Whether any device was taken over: when none was, nothing else here needs a look. */
  get size(): number {
    return this.movedTo.size;
  }

  /** Whether `device` of `aor` was taken over. */
  has(aor: string, device: string): boolean {
    return this.movedTo.has(queueOf(aor, device));
  }

  /** `devices` of `aor`, each recognised since as another replaced by that one, once. */
  followMoves(aor: string, devices: Iterable<string>): Set<string> {
    const moved = new Set<string>();
    for (const device of devices) {
      let now = device;
      // A chain of recognitions is at most as long as the map.
      for (let hops = 0, next; hops < this.movedTo.size && (next = this.movedTo.get(queueOf(aor, now))) !== undefined; hops++) now = next;
      moved.add(now);
    }
    return moved;
  }

  /** `device` of `aor` registered again itself: it is no longer the one it was recognised as. */
  registeredAgain(aor: string, device: string): void {
    this.movedTo.delete(queueOf(aor, device));
  }

  /**
   * Moves what waited for `from` to `device` (store.takeOver), which they are from now on. First,
   * what they took that is not recorded yet is; from then on what is on its way to the store for
   * them is stored for it, what they answer is recorded for it too, and the legs they still await
   * an answer for are its own: its queue waits for them rather than sending them again (with
   * `receivedBefore`, those of the messages whose rows move: of what came since, it has its own
   * rows, which wait for nothing at the address it left; with `sharedUpTo`, what share() gave it
   * before is not moved again).
   */
  async takeOver(aor: string, from: readonly string[], device: string, receivedBefore?: number, sharedUpTo?: number): Promise<void> {
    this.host.recordTaken(aor, from);
    this.movedTo.delete(queueOf(aor, device));
    if (this.movedTo.size >= MAX_MOVES) this.movedTo.clear();
    for (const old of from) this.movedTo.set(queueOf(aor, old), device);
    this.host.handOnLegs(from, device, receivedBefore);
    this.host.devicesChanged(aor);
    try {
      await this.store.takeOver(aor, device, from, receivedBefore, sharedUpTo);
    } catch (error) {
      for (const old of from) this.movedTo.delete(queueOf(aor, old));
      throw error;
    } finally {
      this.host.devicesChanged(aor);
    }
    this.host.moved(aor, from, device);
  }
}

/** The key of a device of a user in the maps of per-device delivery, "aor\ndevice". */
export function queueOf(aor: string, device: string): string {
  return `${aor}\n${device}`;
}
