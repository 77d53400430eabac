/** One remembered entry: its place in the order is that of the object, not of the id. */
interface Entry<Value> {
  id: string;
  value: Value;
  at: number;
}

/** Stale places at the head of the order past which the order is rewritten without them. */
const COMPACT_AFTER = 1024;

/**
 * Entries remembered for what may still come back about a message (an error for a message sent, a
 * receipt for one delivered), by the id it went with: at most `max` (the oldest go first), each for
 * at most `ttlMs`.
 */
export class Recent<Value> {
  private readonly entries = new Map<string, Entry<Value>>();
  /**
   * The entries in the order they were remembered, oldest first, from `head` on. An entry forgotten
   * or remembered again since keeps a stale place here (its id no longer leads to that object),
   * skipped when reached. The Map's own order would do, but finding its oldest key walks every slot
   * deleted before it: at 10,000 entries, microseconds for each message.
   */
  private order: Array<Entry<Value>> = [];
  private head = 0;

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  remember(id: string, value: Value, now = Date.now()): void {
    const entry = { id, value, at: now };
    this.entries.set(id, entry);
    this.order.push(entry);
    while (this.entries.size > this.max) {
      const oldest = this.order[this.head++]!;
      if (this.entries.get(oldest.id) === oldest) this.entries.delete(oldest.id);
    }
    this.compact();
  }

  /** The entry for `id`; undefined when none is remembered, or it is older than the limit. */
  get(id: string, now = Date.now()): Value | undefined {
    const entry = this.entries.get(id);
    return entry && now - entry.at <= this.ttlMs ? entry.value : undefined;
  }

  /** Changes a remembered entry, which keeps its time and its place. */
  update(id: string, value: Value): void {
    const entry = this.entries.get(id);
    if (entry) entry.value = value;
  }

  forget(id: string): void {
    this.entries.delete(id);
  }

  /** Forgets the entries older than the limit. */
  sweep(now: number): void {
    for (; this.head < this.order.length; this.head++) {
      const entry = this.order[this.head]!;
      if (this.entries.get(entry.id) !== entry) continue;
      if (now - entry.at <= this.ttlMs) break;
      this.entries.delete(entry.id);
    }
    this.compact();
  }

  /** Drops the places behind the head, and the stale ones once they outnumber the entries: the order stays within a few times `max`. */
  private compact(): void {
    const places = this.order.length - this.head;
    if (places > 2 * this.entries.size + COMPACT_AFTER) {
      this.order = this.order.filter((entry, index) => index >= this.head && this.entries.get(entry.id) === entry);
      this.head = 0;
    } else if (this.head > COMPACT_AFTER && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }
}
