// How long to wait before trying a lost connection again: exponential, jittered, capped, reset on
// success. The jitter spreads the retries of many sessions that lost their server at the same
// moment, so they do not all come back at once.

export class Backoff {
  private failures = 0;

  /**
   * @param minMs the shortest wait (the first one is between minMs and twice as much)
   * @param maxMs the longest wait, never exceeded
   * @param random a number in [0, 1): Math.random, or a fixed one in tests
   */
  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * The wait before the next attempt, counting one more failure: the n-th (from 0) is between
   * minMs·2ⁿ and twice as much, and from where that passes maxMs, between maxMs/2 and maxMs
   * (never below minMs).
   */
  next(): number {
    const doubled = this.minMs * 2 ** Math.min(this.failures, 30);
    this.failures++;
    const lower = Math.max(this.minMs, Math.min(doubled, this.maxMs / 2));
    const upper = Math.max(lower, Math.min(2 * lower, this.maxMs));
    return lower + this.random() * (upper - lower);
  }

  /** After a success: the next failure waits the shortest again. */
  reset(): void {
    this.failures = 0;
  }
}
