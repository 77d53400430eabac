// Device queues: what waits in the store for a device (its delivery rows) reaches it in order, a page
// at a time, one message after the other (drain), normal messages before non-urgent ones, each oldest
// first. A device being drained, or known to have rows waiting (backlogged), is queued: a message
// stored for it joins its queue (join) rather than being sent at once, overtaking those. A registered
// device's queue is drained when it registers, and when a message for it comes while no drain of it
// is under way (join; also a message the full mailbox refused), so that a device that missed one
// while it stayed registered gets it with the next one. A registered device not reached with what
// it was sent has its queue drained again on a timer while it stays registered (retries): after
// relay.redelivery_backoff, then, after each drain it is still not reached with, twice as long, up
// to MAX_BACKOFF_MS; after such a drain a new message starts none meanwhile (its registration does
// at once). A device that stays silent is sent one request at a time, at most once per back-off;
// one back from a short outage gets what waits without registering again or a new message.
import type { Logger } from 'pino';
import { isStoreUnavailable, type DeliveryCursor, type DeliveryStore, type StoredMessage } from '../store/index.js';
import type { SipMessage, TimerHandle, TimerQueue } from '../sip/index.js';
import type { Flow } from '../registrar/registrar.js';
import type { InFlightLegs } from './in-flight.js';
import { queueOf } from './takeover.js';

/** Pending deliveries read at once for a device that registered. */
const PAGE_SIZE = 100;

/** The longest a registered device that stays silent waits for its next drain (relay.redelivery_backoff when that is longer). */
const MAX_BACKOFF_MS = 10 * 60_000;

/** Statuses after which a device keeps its delivery row: it was not reached, nothing was decided. */
export const UNREACHABLE = new Set([408, 480, 503, 504]);

/** What a drain needs of per-device delivery (devices.ts). */
export interface DrainHost {
  /** Whether the device's queue waits to be drained (it may be a device still registered at its old address, or its user's older messages are being delivered). */
  held(aor: string, device: string): boolean;
  /** The device's flows now; undefined when it is not registered. */
  flowsOf(aor: string, device: string): Flow[] | undefined;
  /** The MESSAGE that delivers a stored message. */
  request(stored: StoredMessage): SipMessage;
  /** Sends a stored message to the device; unless it was not reached, `taken` is told once it answered. */
  sendStored(aor: string, id: number, device: string, message: SipMessage, flows: Flow[], taken: (id: number) => void): Promise<SipMessage>;
  /** Removes the rows of what the device took (never rejects). */
  recordDone(aor: string, ids: number[], device: string): Promise<void>;
  /** The device took a stored message. */
  delivered(): void;
}

/** The next drain of a registered device not reached with what it was sent, by `timer` while it is pending. */
interface Retry {
  /** The back-off after the last drain it was not reached with; 0 when none was (a send outside a drain, missed). */
  backoffMs: number;
  timer: TimerHandle | undefined;
}

export class DeviceQueues {
  /**
   * Devices whose queue is being delivered, "aor\ndevice": `more` tells the drain to read again once
   * it reached the end; `taken`, the messages of its page the device took, whose rows are not removed yet.
   */
  private readonly draining = new Map<string, { more: boolean; taken: number[] }>();
  /**
   * Devices known to have older deliveries waiting ("aor\ndevice": a send to them failed, their
   * queue was not drained to its end, or they had some when Parley started): a new message goes
   * through their queue, after those.
   */
  private readonly backlogged = new Set<string>();
  /**
   * Registered devices, by AOR then device, not reached with what they were last sent: drained
   * again on a timer, `backoffMs` after a send or the first drain they were not reached with, twice
   * as long after each next such drain (up to MAX_BACKOFF_MS), until one reaches them. By AOR: a
   * user's registration going drops its devices' (stopRetryingGone). While one is pending after a
   * drain, a new message starts no drain (join).
   */
  private readonly retries = new Map<string, Map<string, Retry>>();
  /** The longest back-off: MAX_BACKOFF_MS, or backoffMs when that is longer. */
  private readonly maxBackoffMs: number;

  constructor(
    private readonly store: DeliveryStore,
    private readonly inFlight: InFlightLegs,
    private readonly host: DrainHost,
    /** The SIP stack's timers: a test moves their clock. */
    private readonly timers: TimerQueue,
    private readonly backoffMs: number,
    private readonly log: Logger,
  ) {
    this.maxBackoffMs = Math.max(MAX_BACKOFF_MS, backoffMs);
  }

  /** Whether no device is queued here: when none is, nothing else here needs a look. */
  get idle(): boolean {
    return this.draining.size === 0 && this.backlogged.size === 0;
  }

  /** Whether the device (its queueOf key) is being drained or has deliveries waiting. */
  has(queue: string): boolean {
    return this.draining.has(queue) || this.backlogged.has(queue);
  }

  /** Whether the queue of `device` of `aor` is being read and delivered now. */
  isDraining(aor: string, device: string): boolean {
    return this.draining.has(queueOf(aor, device));
  }

  /** Whether `device` of `aor` is known to have deliveries waiting (a send to it failed, or its queue was not drained to its end). */
  isBacklogged(aor: string, device: string): boolean {
    return this.backlogged.has(queueOf(aor, device));
  }

  /** `device` of `aor` has deliveries waiting, or may have: a new message goes after them. */
  backlog(aor: string, device: string): void {
    this.markBacklogged(queueOf(aor, device));
  }

  private markBacklogged(queue: string): void {
    this.backlogged.add(queue);
  }

  /** What waited for `device` of `aor` is no longer its own (taken over by another device). */
  forget(aor: string, device: string): void {
    this.backlogged.delete(queueOf(aor, device));
    this.stopRetrying(aor, device);
  }

  /**
   * Has the device's queue deliver what was just stored for it (or what waits there, when the mailbox
   * refused a message for it), when it is queued; false when it is not. A drain is started unless
   * one is due on a timer (the last one was not reached with the device): what waits goes then, or
   * at the device's next registration.
   */
  join(aor: string, device: string): boolean {
    const queue = queueOf(aor, device);
    const drain = this.draining.get(queue);
    if (drain) drain.more = true;
    else {
      if (!this.backlogged.has(queue)) return false;
      if (!this.backingOff(aor, device)) void this.drain(aor, device);
    }
    return true;
  }

  /** Whether a drain of `device` of `aor` is due on a timer after one it was not reached with. */
  private backingOff(aor: string, device: string): boolean {
    const retry = this.retries.get(aor)?.get(device);
    return retry?.timer !== undefined && retry.backoffMs > 0;
  }

  /**
   * `device` of `aor` was not reached with a stored message sent to it: it has deliveries waiting,
   * and, while it stays registered, gets them after backoffMs should nothing else send them before
   * (a drain under way, or due, does). A new message still drains it at once (join).
   */
  missed(aor: string, device: string): void {
    const queue = queueOf(aor, device);
    this.markBacklogged(queue);
    if (this.draining.has(queue) || this.retries.get(aor)?.get(device)?.timer !== undefined || !this.host.flowsOf(aor, device)) return;
    this.retryAfter(aor, device, this.backoffMs, 0);
  }

  /** Drains no longer on a timer the devices of `aor` that are not registered any more (their binding was removed, or expired). */
  stopRetryingGone(aor: string): void {
    const devices = this.retries.get(aor);
    if (!devices) return;
    for (const device of devices.keys()) if (!this.host.flowsOf(aor, device)) this.stopRetrying(aor, device);
  }

  /** The drain of `device` of `aor` reached it, or there is none to retry (its queue is empty, it is gone): no timer, and the next back-off starts from backoffMs. */
  private stopRetrying(aor: string, device: string): void {
    const devices = this.retries.get(aor);
    const retry = devices?.get(device);
    if (!retry) return;
    retry.timer?.cancel();
    devices!.delete(device);
    if (devices!.size === 0) this.retries.delete(aor);
  }

  /**
   * A drain of `device` of `aor`, registered, was not reached with it: drained again after
   * backoffMs the first time, or when the device was `reached` earlier in that drain, else after
   * twice the last back-off (up to maxBackoffMs).
   */
  private retryLater(aor: string, device: string, reached: boolean): void {
    const last = this.retries.get(aor)?.get(device)?.backoffMs ?? 0;
    // From a handful of durations: the timers keep a queue for each.
    const backoffMs = last > 0 && !reached ? Math.min(last * 2, this.maxBackoffMs) : this.backoffMs;
    this.retryAfter(aor, device, backoffMs, backoffMs);
  }

  /** Drains `device` of `aor` after `delayMs`, in place of any drain due, if it is still registered then (Retry.backoffMs: `backoffMs`). */
  private retryAfter(aor: string, device: string, delayMs: number, backoffMs: number): void {
    let devices = this.retries.get(aor);
    if (!devices) this.retries.set(aor, (devices = new Map()));
    devices.get(device)?.timer?.cancel();
    const retry: Retry = { backoffMs, timer: undefined };
    devices.set(device, retry);
    retry.timer = this.timers.schedule(delayMs, () => {
      retry.timer = undefined;
      if (this.host.flowsOf(aor, device)) void this.drain(aor, device);
      else this.stopRetrying(aor, device);
    });
  }

  /** Before the rows of `from` of `aor` move to another device: what their drains took is recorded first (TakeoverHost.recordTaken). */
  recordTaken(aor: string, from: readonly string[]): void {
    for (const old of from) {
      const drain = this.draining.get(queueOf(aor, old));
      if (drain && drain.taken.length > 0) void this.host.recordDone(aor, drain.taken.splice(0), old);
    }
  }

  /** Delivers what waits for `device` of `aor`, in order, until the end of its queue or a message it is not reached with. */
  async drain(aor: string, device: string): Promise<void> {
    const queue = queueOf(aor, device);
    if (this.draining.has(queue)) return;
    if (this.host.held(aor, device)) {
      // Gone on once it is known whether it is the device at its old address (successors), or
      // its user's older messages are delivered (deliverPending).
      this.markBacklogged(queue);
      return;
    }
    const drain = { more: false, taken: [] as number[] };
    this.draining.set(queue, drain);
    // Until it reaches the end of the queue: a drain cut short (device away, store unavailable)
    // leaves rows that a new message must not overtake.
    this.markBacklogged(queue);
    // This drain is the one the timer was for (a registration drains at once).
    const retry = this.retries.get(aor)?.get(device);
    retry?.timer?.cancel();
    if (retry) retry.timer = undefined;
    /** Whether the device answered anything in this drain: the back-off starts again from backoffMs. */
    let reached = false;
    try {
      let cursor: DeliveryCursor | undefined;
      for (;;) {
        const page = await this.store.pendingFor(aor, device, Date.now(), cursor, PAGE_SIZE);
        // One commit per page rather than per message: the rows of what the device took go together
        // once the page is sent. No sender waits for them; a crash before re-sends them as the same
        // requests (see storedRequest), which the device recognises.
        // Kept with the drain: a takeover of this device records them first (recordTaken).
        const taken = drain.taken;
        try {
          for (const { message, priority } of page) {
            cursor = { priority, messageId: message.id };
            // Its own send decides; one to a device it took over since, it waits for: that one may take it.
            const left = this.inFlight.leaves(message.id, device, message.receivedAt);
            if (left === true || (left !== false && (await left))) continue;
            const flows = this.host.flowsOf(aor, device);
            if (!flows) {
              this.stopRetrying(aor, device);
              return;
            }
            const response = await this.host.sendStored(aor, message.id, device, this.host.request(message), flows, (id) => void taken.push(id));
            if (UNREACHABLE.has(response.status)) {
              this.log.info({ aor, device, id: message.id, status: response.status }, 'delivery to a device failed; kept for a retry, its next registration or a later message');
              this.retryLater(aor, device, reached);
              return;
            }
            reached = true;
            if (response.status < 300) this.host.delivered();
          }
        } finally {
          if (taken.length > 0) await this.host.recordDone(aor, taken.splice(0), device);
        }
        if (page.length < PAGE_SIZE) {
          if (!drain.more) {
            this.backlogged.delete(queue);
            this.stopRetrying(aor, device);
            return;
          }
          // Messages came while this page was delivered: a non-urgent one may sort before the cursor.
          drain.more = false;
          cursor = undefined;
        }
      }
    } catch (error) {
      if (isStoreUnavailable(error)) this.log.debug({ aor, device }, 'device delivery paused: store unavailable; kept for the next registration');
      else this.log.error({ err: error, aor, device }, 'device delivery error');
    } finally {
      this.draining.delete(queue);
    }
  }
}
