// Expiry negotiation shared by PUBLISH (RFC 3903 §6 step 5) and SUBSCRIBE (RFC 6665 §4.2.1.1), and
// the timer that ends a publication or a subscription when its time is up.
import type { KeyedSerializer } from './serial.js';

export interface ExpiryLimits {
  minExpires: number;
  maxExpires: number;
  defaultExpires: number;
}

/** Retry-After, in seconds, when every publication or subscription place is taken: by then some have expired. */
export const RETRY_WHEN_FULL = 60;

/** Seconds in an Expires header value; undefined when it is not a number of seconds. */
export function parseExpires(text: string): number | undefined {
  const trimmed = text.trim();
  return /^[0-9]{1,10}$/.test(trimmed) ? Number(trimmed) : undefined;
}

/**
 * The expiry granted for `asked` seconds: the default when nothing was asked, at most the
 * maximum, 0 (an ending) as is; undefined when shorter than the minimum, which is answered 423.
 */
export function grantExpires(asked: number | undefined, limits: ExpiryLimits): number | undefined {
  if (asked === undefined) return limits.defaultExpires;
  if (asked === 0) return 0;
  if (asked < limits.minExpires) return undefined;
  return Math.min(asked, limits.maxExpires);
}

/** A publication or a subscription: when it expires (ms since the epoch), and the timer set for it. */
export interface Expiring {
  expiresAt: number;
  expiry?: NodeJS.Timeout;
}

/**
 * Sets `item`'s expiry timer, in place of the one it had, to run `expire` once `item.expiresAt` has
 * come, after the work under way for `key` (a refresh among it may have arrived in time). When it
 * fires, nothing is done if a later call set a timer of its own or `held()` says the item is gone. A
 * Node timer may fire a little before Date.now() reaches the time it was set for (it keeps another
 * clock): it is then set again, rather than the item never expiring.
 */
export function expireWhenDue(item: Expiring, serial: KeyedSerializer, key: string, held: () => boolean, expire: () => void): void {
  clearTimeout(item.expiry);
  const fired = () => {
    if (item.expiry !== timer || !held()) return;
    if (item.expiresAt > Date.now()) return expireWhenDue(item, serial, key, held, expire);
    expire();
  };
  const timer = setTimeout(() => void serial.run(key, fired), Math.max(0, item.expiresAt - Date.now())).unref();
  item.expiry = timer;
}
