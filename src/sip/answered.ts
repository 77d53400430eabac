// Answered server transactions kept through Timer J (RFC 3261 §17.2.2) to absorb retransmissions of
// their requests. One record per transaction, found by its key and linked to the one answered after
// it: they all live as long, so the order they were answered in is the order they expire in, and
// both the oldest and the expired ones are let go from the front, one record at a time, by one
// sweep timer for all of them, not one each.
import type { TimerQueue } from './timers.js';
import type { Peer } from './transport/types.js';

/**
 * What a server transaction keeps once answered: the bytes a retransmission of its request gets
 * again, where they go, and when it is let go. The request and its handler state are not kept, so
 * tens of thousands of answered transactions stay cheap.
 */
export class AnsweredTransaction {
  /** The transaction answered next, which expires next. */
  next: AnsweredTransaction | undefined = undefined;

  constructor(
    readonly key: string,
    readonly lastResponse: Buffer,
    readonly responseTarget: Peer,
    /**
     * When its Timer J fires, in ms since the set was made: a small integer, which a record holds
     * without a boxed number, where a time on the clock would need one.
     */
    readonly expires: number,
  ) {}
}

export class AnsweredTransactions {
  private readonly byKey = new Map<string, AnsweredTransaction>();
  private oldest: AnsweredTransaction | undefined = undefined;
  private newest: AnsweredTransaction | undefined = undefined;
  private readonly epoch: number;
  /** Whether a sweep is scheduled: only while any is kept. */
  private sweeping = false;

  constructor(
    /** Where the sweep is scheduled: it runs while they run, and stops with them. */
    private readonly timers: TimerQueue,
    /** How long each is kept (Timer J), ms. */
    private readonly lifetime: number,
    /** How often, ms, the sweep looks again while any is kept: each goes at most this long past its Timer J. */
    private readonly sweepEvery: number,
    /** How many are kept at most: past it, the oldest is let go first. */
    private readonly capacity: number,
  ) {
    this.epoch = timers.clock.now();
  }

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): AnsweredTransaction | undefined {
    return this.byKey.get(key);
  }

  /** Keeps the final response of transaction `key`, not kept yet, for its retransmissions until its Timer J fires. */
  add(key: string, lastResponse: Buffer, responseTarget: Peer): void {
    const answered = new AnsweredTransaction(key, lastResponse, responseTarget, this.timers.clock.now() - this.epoch + this.lifetime);
    this.byKey.set(key, answered);
    if (this.newest) this.newest.next = answered;
    else this.oldest = answered;
    this.newest = answered;
    // A retransmission of the one let go would be handled again, no more.
    if (this.byKey.size > this.capacity) this.removeOldest();
    if (!this.sweeping) {
      this.sweeping = true;
      this.timers.schedule(this.lifetime, this.sweep);
    }
  }

  /** Lets go of those whose Timer J has fired: from the front, up to the first still due later. */
  expire(): void {
    const now = this.timers.clock.now() - this.epoch;
    while (this.oldest !== undefined && this.oldest.expires <= now) this.removeOldest();
  }

  /** Lets go of the expired ones, then looks again every sweepEvery while any is kept; none is scheduled once all are gone. */
  private readonly sweep = (): void => {
    this.expire();
    this.sweeping = this.byKey.size > 0;
    if (this.sweeping) this.timers.schedule(this.sweepEvery, this.sweep);
  };

  private removeOldest(): void {
    const oldest = this.oldest!;
    this.oldest = oldest.next;
    if (this.oldest === undefined) this.newest = undefined;
    this.byKey.delete(oldest.key);
  }
}
