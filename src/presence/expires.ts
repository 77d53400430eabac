// Expiry negotiation shared by PUBLISH (RFC 3903 §6 step 5) and SUBSCRIBE (RFC 6665 §4.2.1.1).

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
