// The rate search of bench/devices.ts and bench/rooms.ts. bench/common.ts's rateSearch doubles
// from its start and bisects a fixed number of times, so where the limit lies is known only to
// within whatever gap that left; this one bisects until the highest passing and the lowest failing
// rate are within a resolution of each other, so that two searches (per-device and room fan-out)
// are compared at a resolution both reached. It can also start near a known limit: from `start`
// it moves by `factor`, and each further move the same way squares the factor (up to 2), so a
// guess that was close costs two steps and a poor one little more than doubling would. A rate
// that fails is tried once more before it counts as failed (--retries): on a shared machine one
// stall of another process fails a step that passes again at once, and would end the climb there.
import type { Found } from './common.js';

export interface KneeOptions {
  /** The first rate tried. */
  start: number;
  /** The first move up (after a pass) or down (after a failure) multiplies or divides by this (> 1). */
  factor: number;
  /** The highest rate tried; the search ends when passing it. */
  max: number;
  /** The search ends once the lowest failing rate is at most (1 + resolution) times the highest passing one. */
  resolution: number;
  /** At most this many bisection steps, even if the resolution is not reached. */
  refine: number;
  /** How many times a failing rate is tried again before it counts as failed. */
  retries: number;
}

/** A search under way: the rate to try next (undefined once it is over), and what a step at it gave. */
export interface KneeSearch<S> {
  next(): number | undefined;
  /** Records the step just run at the rate next() gave; `passed`: it met the criterion. */
  record(step: S, passed: boolean): void;
  /** The highest passing and the lowest failing step so far. */
  readonly found: Found<S>;
}

/** The most by which a move of the search doubles the rate. */
const MOST_FACTOR = 2;

/**
 * Rounds `rate` to the power of ten at or below a quarter of `span` (at least 1), so that rates
 * read well and still differ from those around them.
 */
function roundWithin(rate: number, span: number): number {
  const unit = 10 ** Math.max(0, Math.floor(Math.log10(Math.max(1, span / 4))));
  return Math.round(rate / unit) * unit;
}

/**
 * A search for the highest rate that passes. `rateOf` reads a step's rate in the script's unit
 * (MESSAGEs/s, posts/s), a whole number of at least 1.
 */
export function kneeSearch<S>(rateOf: (step: S) => number, options: KneeOptions): KneeSearch<S> {
  if (!(options.factor > 1)) throw new Error(`rate search: factor ${options.factor} must be above 1`);
  if (!(options.resolution >= 0)) throw new Error(`rate search: resolution ${options.resolution} must be 0 or more`);
  const found: Found<S> = {};
  let factor = options.factor;
  let started = false;
  let refinements = 0;
  /** The rate failing now, and how many times it failed. */
  let failing: { rate: number; times: number } | undefined;
  const next = () => {
    if (failing) return failing.rate;
    if (!started) {
      started = true;
      return options.start <= options.max ? options.start : undefined;
    }
    const best = found.best && rateOf(found.best);
    const failed = found.failed && rateOf(found.failed);
    if (best !== undefined && failed !== undefined) {
      if (failed <= best * (1 + options.resolution) || refinements++ >= options.refine) return undefined;
      const rate = roundWithin((best + failed) / 2, failed - best);
      return rate > best && rate < failed ? rate : undefined;
    }
    const from = best ?? failed!;
    const moved = best !== undefined ? from * factor : from / factor;
    factor = Math.min(MOST_FACTOR, factor * factor);
    let rate = roundWithin(moved, Math.abs(moved - from));
    if (rate === from) rate = best !== undefined ? from + 1 : from - 1;
    if (best !== undefined && rate > options.max) return best < options.max ? options.max : undefined;
    return rate >= 1 ? rate : undefined;
  };
  const record = (step: S, passed: boolean) => {
    const rate = rateOf(step);
    if (passed) {
      failing = undefined;
      found.best = step;
      return;
    }
    const times = failing?.rate === rate ? failing.times + 1 : 1;
    failing = times <= options.retries ? { rate, times } : undefined;
    if (!failing) found.failed = step;
  };
  return { next, record, found };
}

/** The limit a search bracketed, in deliveries/s: between `passed` (undefined: none passed) and `failed` (undefined: none failed). */
export interface Bracket {
  passed?: number;
  failed?: number;
}

/** The bracket's width as a share of its low end, e.g. "4.2 %"; '-' when it is open. */
export function bracketWidth({ passed, failed }: Bracket): string {
  return passed !== undefined && failed !== undefined ? `${((failed / passed - 1) * 100).toFixed(1)} %` : '-';
}

/**
 * What two brackets say of the ratio a/b of the limits: its lowest and highest possible values
 * (a's lowest over b's highest and the reverse), and whether it is surely >= 1, surely < 1, or
 * not told apart at their resolution.
 */
export function ratioOf(a: Bracket, b: Bracket): { low?: number; high?: number; verdict: string } {
  const low = a.passed !== undefined && b.failed !== undefined ? a.passed / b.failed : undefined;
  const high = a.failed !== undefined && b.passed !== undefined ? a.failed / b.passed : undefined;
  // a passed where b failed, or above it: a's limit is above b's; and the reverse.
  if (a.passed !== undefined && b.failed !== undefined && a.passed >= b.failed) return { low, high, verdict: 'met' };
  if (a.failed !== undefined && b.passed !== undefined && a.failed <= b.passed) return { low, high, verdict: 'NOT met' };
  return { low, high, verdict: 'not told apart at this resolution' };
}
