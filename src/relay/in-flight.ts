// In-flight legs: stored messages on their way to a device, a send of per-device delivery (devices.ts)
// awaiting the device's answer. A drain of that device's queue leaves such a message to that send;
// a device that took over the one a leg was sent to (takeover.ts) waits for the leg's answer rather
// than sending the message again: the device at the old address may still take it.
import type { SipMessage } from '../sip/index.js';

/**
 * A stored message on its way to a device: its keys here, its device's and those of the devices
 * that took that one over since, and what those wait with.
 */
interface InFlightLeg {
  keys: string[];
  waiting?: Array<(taken: boolean) => void>;
  /** Handed on with what was received before then only (a takeover with `receivedBefore`): a message received since is not waited for. */
  movedBefore?: number;
}

export class InFlightLegs {
  private readonly legs = new Map<string, InFlightLeg>();

  /** A leg of message `id` to `device` is on its way. */
  fly(id: number, device: string): void {
    const key = legKey(id, device);
    this.legs.set(key, { keys: [key] });
  }

  /** The leg of message `id` to `device` was answered, the message `taken` or not: the queues waiting for it go on. */
  land(id: number, device: string, taken: boolean): void {
    const leg = this.legs.get(legKey(id, device));
    if (!leg) return;
    for (const other of leg.keys) if (this.legs.get(other) === leg) this.legs.delete(other);
    if (leg.waiting) for (const resolve of leg.waiting) resolve(taken);
  }

  /**
   * Whether a drain of `device`'s queue leaves message `id` (received at `receivedAt`) alone: true
   * when its own send of it is under way; when a leg of it to a device this one took over is, a
   * promise of whether that one took it (not for a message received after the takeover's
   * `receivedBefore`, whose row here is its own); false otherwise: the drain sends it.
   */
  leaves(id: number, device: string, receivedAt: number): boolean | Promise<boolean> {
    if (this.legs.size === 0) return false;
    const key = legKey(id, device);
    const leg = this.legs.get(key);
    if (!leg) return false;
    if (leg.keys[0] === key) return true;
    if (receivedAt >= (leg.movedBefore ?? Infinity)) return false;
    return new Promise<boolean>((resolve) => (leg.waiting ??= []).push(resolve));
  }

  /** The legs on their way to `from` are also `device`'s, for the messages received before `receivedBefore` when given. */
  handOn(from: readonly string[], device: string, receivedBefore?: number): void {
    if (this.legs.size === 0) return;
    const handed: Array<[string, InFlightLeg]> = [];
    for (const [key, leg] of this.legs) {
      const cut = key.indexOf('\n');
      if (!from.includes(key.slice(cut + 1))) continue;
      const theirs = legKey(Number(key.slice(0, cut)), device);
      if (!this.legs.has(theirs)) handed.push([theirs, leg]);
    }
    for (const [key, leg] of handed) {
      leg.keys.push(key);
      leg.movedBefore = receivedBefore;
      this.legs.set(key, leg);
    }
  }
}

/**
 * Senders waiting for a stored message to reach a device through its queue (DeviceDelivery.sendThenStore):
 * each is told the device's answer once the message is sent to it.
 */
export class AwaitedLegs {
  private readonly waiting = new Map<string, (response: SipMessage) => void>();

  /** Whether any sender waits: when none does, nothing else here needs a look. */
  get size(): number {
    return this.waiting.size;
  }

  /** The answer of `device` to message `id` once it is sent it; forget it when no longer waited for. */
  answer(id: number, device: string): Promise<SipMessage> {
    return new Promise((resolve) => this.waiting.set(legKey(id, device), resolve));
  }

  /** `device` answered message `id` (or Parley made the answer up: it was not reached). */
  answered(id: number, device: string, response: SipMessage): void {
    const key = legKey(id, device);
    const resolve = this.waiting.get(key);
    if (!resolve) return;
    this.waiting.delete(key);
    resolve(response);
  }

  forget(id: number, device: string): void {
    this.waiting.delete(legKey(id, device));
  }
}

/** The key of a stored message on its way to a device. */
function legKey(id: number, device: string): string {
  return `${id}\n${device}`;
}
