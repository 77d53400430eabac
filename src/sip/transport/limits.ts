// What one source address may take of Parley: a share of its SIP messages per time window (like
// Kamailio's pike) and of its stream connections, except for sources the operator exempts.
import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses "IP" or "IP/PREFIX"; undefined when the text is neither. */
export function parseCidr(text: string): Cidr | undefined {
  const [address = '', prefixText, ...rest] = text.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return undefined;
  const bits = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  return prefix <= bits ? { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' } : undefined;
}

/** A set of address ranges; IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match their IPv4 ranges. */
export class AddressRanges {
  private readonly list = new BlockList();

  constructor(cidrs: readonly string[]) {
    for (const text of cidrs) {
      const cidr = parseCidr(text);
      if (!cidr) throw new Error(`not an IP address or CIDR range: ${text}`);
      this.list.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
  }

  has(host: string): boolean {
    const version = isIP(host);
    return version !== 0 && this.list.check(host, version === 4 ? 'ipv4' : 'ipv6');
  }
}

/** Most sources whose rate is tracked at once: a spoofed-source flood evicts the oldest, never grows the table. */
const MAX_TRACKED_SOURCES = 100_000;

interface Allowance {
  /** Messages the source may still send now; refilled continuously up to the limit. */
  tokens: number;
  at: number;
  /** When the source was last told it is over its rate (a 503 over UDP). */
  toldAt?: number;
}

/** The allowance of an exempt source: looked up like the others, so the check stays one Map lookup. */
const EXEMPT: Allowance = { tokens: Infinity, at: 0 };
/** Least time between two 503s to one datagram source over its rate. */
const TELL_INTERVAL_MS = 1000;

/**
 * A token bucket per source IP: `limit` messages at once, refilled at `limit` per `windowMs`. A
 * source that sent nothing for a window has a full bucket again, as an unknown one does, so
 * forgetIdle() drops it.
 */
export class SourceRateLimiter {
  private readonly sources = new Map<string, Allowance>();
  private readonly refillPerMs: number;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly exempt: AddressRanges,
  ) {
    this.refillPerMs = limit / windowMs;
  }

  /** Takes one message from the allowance of `host`; false when it has none left. */
  admit(host: string, now = Date.now()): boolean {
    let allowance = this.sources.get(host);
    if (allowance === undefined) {
      allowance = this.exempt.has(host) ? EXEMPT : { tokens: this.limit, at: now };
      if (this.sources.size >= MAX_TRACKED_SOURCES) this.sources.delete(this.sources.keys().next().value!);
      this.sources.set(host, allowance);
    }
    if (allowance === EXEMPT) return true;
    allowance.tokens = Math.min(this.limit, allowance.tokens + (now - allowance.at) * this.refillPerMs);
    allowance.at = now;
    if (allowance.tokens < 1) return false;
    allowance.tokens -= 1;
    return true;
  }

  /**
   * Whether a datagram source over its rate is to be told so now: once a second at most, so that a
   * client learns its Retry-After while a flood (or a forged source address) gets no more answers
   * than that for what it sends.
   */
  mayTell(host: string, now = Date.now()): boolean {
    const allowance = this.sources.get(host);
    if (!allowance || (allowance.toldAt !== undefined && now - allowance.toldAt < TELL_INTERVAL_MS)) return false;
    allowance.toldAt = now;
    return true;
  }

  /** Whole seconds until `host` may send one message again (at least 1). */
  retryAfter(host: string, now = Date.now()): number {
    const allowance = this.sources.get(host);
    const missing = allowance ? 1 - allowance.tokens - (now - allowance.at) * this.refillPerMs : 0;
    return Math.max(1, Math.ceil(missing / this.refillPerMs / 1000));
  }

  /** Forgets the sources whose bucket is full again (exempt ones are looked up again when they next send). */
  forgetIdle(now = Date.now()): void {
    for (const [host, allowance] of this.sources) if (now - allowance.at >= this.windowMs) this.sources.delete(host);
  }

  get tracked(): number {
    return this.sources.size;
  }
}

/**
 * Stream connections peers opened that have not carried a whole SIP message yet, by source address.
 * A client sends its first request as soon as it is connected; slowloris holds many connections on
 * a few bytes each, every one of them read again at each byte. O(1) per connection.
 */
export class PendingConnections {
  /** "host port" of each pending connection. */
  private readonly pending = new Set<string>();
  private readonly bySource = new Map<string, number>();

  /** Pending connections from `host`. */
  from(host: string): number {
    return this.bySource.get(host) ?? 0;
  }

  opened(host: string, port: number): void {
    this.pending.add(`${host} ${port}`);
    this.bySource.set(host, this.from(host) + 1);
  }

  /** The connection carried a message, or closed: no longer pending (nothing when it was not). */
  settled(host: string, port: number): void {
    if (!this.pending.delete(`${host} ${port}`)) return;
    const left = this.from(host) - 1;
    if (left > 0) this.bySource.set(host, left);
    else this.bySource.delete(host);
  }
}
