// In-flight legs: stored messages on their way to a device, a send of per-device delivery (devices.ts)
// awaiting the device's answer. A drain of that device's queue leaves such a message to that send;
// a device that took over the one a leg was sent to (takeover.ts) waits for the leg's answer rather
// than sending the message again: the device at the old address may still take it. A device that
// registers from new flows (a restart, the same +sip.instance) is sent again at once what is on its
// way over flows it no longer has (FlowLegs).
import type { Peer, SipMessage } from '../sip/index.js';
import type { Flow } from '../registrar/registrar.js';

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

/** A request on its way to a device over the flows it had then (FlowLegs.follow). */
interface FlowLeg {
  aor: string;
  flows: readonly Flow[];
  /** The same request sent over other flows of the device. */
  resend(flows: Flow[]): Promise<SipMessage>;
  /** Tells the leg's answer: the old flows' or, once it is sent again (moved), the new ones'. */
  answer(response: SipMessage): void;
  moved: boolean;
}

/**
 * Requests on their way to a device, by the flows they were sent over. A device that restarts
 * (an app killed, a phone rebooting) registers again with its +sip.instance from a new address,
 * and nothing answers at the old one until Timer F: what was sent there and not answered is sent
 * again over its new flows as soon as it registers, in the order it was first sent, so that it
 * reaches the device before anything sent after the registration (its queue stays in order). The
 * device recognises a request it got twice: each is the same request (see storedRequest).
 */
export class FlowLegs {
  /**
   * By device, in the order they were sent, whatever their AOR (an instance may register for
   * several): a leg costs no key made for it, and no more than an array once its device has one.
   */
  private readonly legs = new Map<string, FlowLeg[]>();

  /** Whether any request is on its way: when none is, nothing else here needs a look. */
  get size(): number {
    return this.legs.size;
  }

  /**
   * `sent`, a request to `device` of `aor` over `flows`, as its answer; should the device register
   * from other flows before it is answered, the answer of the request sent again over those (`resend`).
   */
  follow(aor: string, device: string, flows: readonly Flow[], sent: Promise<SipMessage>, resend: (flows: Flow[]) => Promise<SipMessage>): Promise<SipMessage> {
    return new Promise((answer) => {
      const leg: FlowLeg = { aor, flows, resend, answer, moved: false };
      const legs = this.legs.get(device);
      if (legs) legs.push(leg);
      else this.legs.set(device, [leg]);
      // Once moved, the old flows' answer (Timer F's, most often) is not waited for.
      void sent.then((response) => {
        if (leg.moved) return;
        this.end(device, leg);
        answer(response);
      });
    });
  }

  /** `device` of `aor` registered with `flows`: what is on its way over none of them is sent again over these, in order. */
  registered(aor: string, device: string, flows: Flow[]): void {
    const legs = this.legs.get(device);
    if (!legs) return;
    for (const leg of legs.slice()) {
      if (leg.aor !== aor || leg.flows.some((old) => flows.some((now) => sameFlow(old.peer, now.peer)))) continue;
      this.end(device, leg);
      leg.moved = true;
      void this.follow(aor, device, flows, leg.resend(flows), leg.resend).then(leg.answer);
    }
  }

  private end(device: string, leg: FlowLeg): void {
    const legs = this.legs.get(device)!;
    if (legs.length === 1) this.legs.delete(device);
    else legs.splice(legs.indexOf(leg), 1);
  }
}

function sameFlow(a: Peer, b: Peer): boolean {
  return a.port === b.port && a.host === b.host && a.proto === b.proto && a.connectionId === b.connectionId;
}
