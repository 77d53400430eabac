/**
 * Entries remembered for what may still come back about a message (an error for a message sent, a
 * receipt for one delivered), by the id it went with: at most `max` (the oldest go first), each for
 * at most `ttlMs`.
 */
export class Recent<Value> {
  /** By id, oldest first. */
  private readonly entries = new Map<string, { value: Value; at: number }>();

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  remember(id: string, value: Value, now = Date.now()): void {
    this.entries.delete(id);
    this.entries.set(id, { value, at: now });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
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
    for (const [id, { at }] of this.entries) {
      if (now - at <= this.ttlMs) break;
      this.entries.delete(id);
    }
  }
}
