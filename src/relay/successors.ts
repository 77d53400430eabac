// Successors: a device without +sip.instance that registered from a new address while a device like
// it (device-recognition.ts) is still registered at its old one may be that device or another. Each
// such pair is noted until it is known which: the old address answering what it is sent, registering
// again or unregistering makes it another device; its bindings expiring unrefreshed (a softphone that
// came back on a new port without unregistering) or, over a stream, a send to it failing makes it the
// new one's former address, which the new one then takes over (takeover.ts). Meanwhile, when the old
// address is a stream connection that looks open, the new one's messages wait in its queue (isHeld);
// over UDP nothing waits: two phones of one model behind one NAT are as likely as one phone on a new port
// (the new one may have been given a copy of the old one's backlog when nothing answered there: see
// DeviceDelivery.shareBacklog; that part is not moved again).
import { deviceKey, type Binding } from '../store/index.js';
import { isDatagram } from './device-recognition.js';

/** A device noted as maybe another that still looks alive: from when, and until when that one is registered. */
export interface Successor {
  device: string;
  since: number;
  expiresAt: number;
  /** Its messages wait until that one is known to be another device or this one (isHeld): that one is registered over a stream. */
  holds: boolean;
  /** Known to be that one: its takeover is under way. */
  settling?: boolean;
  /** The highest id of the messages that one had waiting that it was given a copy of when it came (DeliveryStore.share). */
  sharedUpTo?: number;
}

/** What is done once it is known which device a noted one is. */
export interface SuccessorOutcomes {
  /**
   * `old` of `aor` was `successor.device`: that one takes over what it had waiting from before it
   * came, and `old`'s `bindings` left are dropped. Never rejects.
   */
  wasThatDevice(aor: string, old: string, successor: Successor, bindings: readonly Binding[]): Promise<void>;
  /** `device` of `aor` waits no longer (isHeld is false for it now): what waits in its queue may go. */
  released(aor: string, device: string): void;
}

/** AORs whose successors are kept at most: past it they are all forgotten (the new devices' queues go on unheld). */
const MAX_USERS = 100_000;

export class Successors {
  /** Of each AOR, the devices still registered when a device like them registered from a new address, with that device. */
  private readonly noted = new Map<string, Map<string, Successor>>();

  constructor(
    private readonly outcomes: SuccessorOutcomes,
    /** The bindings of an AOR registered now. */
    private readonly lookup: (aor: string) => readonly Binding[],
  ) {}

  /** Whether any device is noted: when none is, nothing else here needs a look. */
  get size(): number {
    return this.noted.size;
  }

  /**
   * Notes that `old` of `aor`, registered as `current` says, may be `device`, which registered from
   * a new address `since` (given a copy of what `old` had waiting up to `sharedUpTo`).
   */
  note(aor: string, old: string, device: string, since: number, current: readonly Binding[], sharedUpTo?: number): void {
    if (this.noted.size >= MAX_USERS) this.noted.clear();
    let noted = this.noted.get(aor);
    if (!noted) this.noted.set(aor, (noted = new Map()));
    const own = current.filter((b) => deviceKey(b) === old);
    const expiresAt = Math.max(...own.map((b) => b.expiresAt));
    // Over UDP, another device is as likely (one NAT, one model): neither waits for the other.
    noted.set(old, { device, since, expiresAt, holds: !own.every(isDatagram), sharedUpTo });
  }

  /** Whether `device` of `aor` is noted as maybe another device that still looks alive over a stream connection: its messages wait in its queue. */
  isHeld(aor: string, device: string): boolean {
    const noted = this.noted.get(aor);
    if (!noted) return false;
    for (const successor of noted.values()) if (successor.device === device && successor.holds) return true;
    return false;
  }

  /**
   * `device` of `aor` answered a request it was sent, or was not `reached` (408, 480, 503, 504): noted
   * as maybe the same device as one that registered since from a new address, it is another when it
   * answered, and, over a stream, that one when it was not reached: that one takes over what it had
   * waiting. Over UDP a phone not reached a moment (out of coverage, busy) is still the phone it
   * was: only its binding expiring tells.
   */
  answered(aor: string, device: string, reached: boolean): void {
    const successor = this.noted.get(aor)?.get(device);
    if (!successor || successor.settling) return;
    if (reached) this.forget(aor, device);
    else if (successor.holds) this.succeed(aor, device, successor, this.lookup(aor).filter((b) => deviceKey(b) === device));
  }

  /**
   * Bindings of `aor` expired: a device without +sip.instance with no binding left that a device
   * like it registered from a new address after it last refreshed was that device.
   */
  expired(aor: string, expired: readonly Binding[]): void {
    const noted = this.noted.get(aor);
    if (!noted) return;
    const left = new Set(this.lookup(aor).map(deviceKey));
    for (const binding of expired) {
      const old = deviceKey(binding);
      const successor = noted.get(old);
      if (!successor || successor.settling || left.has(old)) continue;
      // Registered again after the other came: another device, which stopped since.
      if (binding.updatedAt >= successor.since) this.forget(aor, old);
      else this.succeed(aor, old, successor, []);
    }
  }

  /**
   * `aor` registered, now with `bindings`: a noted device that registered again since the other
   * came, or is no longer registered before its binding expired (it unregistered), is another
   * device; one whose binding expired unrefreshed was the other.
   */
  registered(aor: string, bindings: readonly Binding[]): void {
    const noted = this.noted.get(aor);
    if (!noted) return;
    const now = Date.now();
    for (const [old, successor] of noted) {
      if (successor.settling) continue;
      const own = bindings.filter((binding) => deviceKey(binding) === old);
      if (own.length > 0 && own.every((binding) => binding.updatedAt < successor.since)) continue;
      if (own.length === 0 && now >= successor.expiresAt) this.succeed(aor, old, successor, []);
      else this.forget(aor, old);
    }
  }

  /** `old` of `aor`, noted as maybe `successor.device`, was it: that one takes over (wasThatDevice), then `old` is forgotten. */
  private succeed(aor: string, old: string, successor: Successor, bindings: readonly Binding[]): void {
    successor.settling = true;
    void this.outcomes.wasThatDevice(aor, old, successor, bindings).finally(() => this.forget(aor, old));
  }

  /** `old` of `aor` is known to be another device than its noted successor, or it was and that one took over: that one's queue goes on. */
  private forget(aor: string, old: string): void {
    const noted = this.noted.get(aor);
    const successor = noted?.get(old);
    if (!successor) return;
    noted!.delete(old);
    if (noted!.size === 0) this.noted.delete(aor);
    if (!this.isHeld(aor, successor.device)) this.outcomes.released(aor, successor.device);
  }
}
