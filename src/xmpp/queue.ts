// Stanzas waiting for the XMPP link to come back: bounded, in arrival order, each stamped with the
// time it came, so that what waited longer than delay_time fails back to its sender rather than
// arriving unexpectedly late.
export class OutboundQueue<Item> {
  private entries: Array<{ item: Item; since: number }> = [];

  constructor(
    private readonly capacity: number,
    private readonly maxWaitMs: number,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  /** Adds an item; false when the queue is full. */
  push(item: Item, now: number): boolean {
    if (this.entries.length >= this.capacity) return false;
    this.entries.push({ item, since: now });
    return true;
  }

  /** Removes and returns the items that have waited longer than allowed, oldest first. */
  takeExpired(now: number): Item[] {
    const fresh = this.entries.findIndex((entry) => now - entry.since <= this.maxWaitMs);
    const expired = this.entries.splice(0, fresh < 0 ? this.entries.length : fresh);
    return expired.map((entry) => entry.item);
  }

  /** Removes and returns every item, oldest first. */
  drain(): Item[] {
    const items = this.entries.map((entry) => entry.item);
    this.entries = [];
    return items;
  }
}
