// Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760: MD5 and SHA-256, qop=auth).
// Nonces are self-validating (time + random, signed with a per-process key), so no nonce table
// is needed to issue them; a bounded nonce-count table rejects replays within a nonce's life.
// qop=auth is required: an RFC 2069 answer carries no nonce count, so it could be replayed.
import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { quote } from '../sip/headers.js';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

export interface DigestCredentials {
  ha1Md5: string;
  ha1Sha256: string;
}

export interface DigestOptions {
  realm: string;
  algorithms: DigestAlgorithm[];
  /** Seconds a nonce stays valid; after that the client is told stale=true. */
  nonceExpires: number;
  /** Most nonces whose count is remembered at once (default 100,000); the least recently used go first. */
  maxTrackedNonces?: number;
  now?: () => number;
}

export interface DigestResponse {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: DigestAlgorithm;
  cnonce?: string;
  nc?: string;
  qop?: string;
  opaque?: string;
}

export type VerifyResult = { ok: true; username: string } | { ok: false; stale: boolean; reason: string };

// One-shot: no Hash object made and dropped for each of a request's two digests.
const digestOf = (algorithm: DigestAlgorithm, text: string) => hash(algorithm === 'MD5' ? 'md5' : 'sha256', text, 'hex');

const NONCE_COUNT = /^[0-9a-f]{8}$/i;

export class DigestAuthenticator {
  private readonly key = randomBytes(32);
  /** Last nonce count seen per nonce, least recently used first (a Map keeps insertion order). */
  private readonly seenCounts = new Map<string, { count: number; issuedAt: number }>();
  /**
   * Issue time of the newest nonce whose count was forgotten to keep the table within its size:
   * an untracked nonce issued no later could be a replay and is refused as stale.
   */
  private forgottenUpTo = -Infinity;
  private readonly now: () => number;
  private readonly maxTrackedNonces: number;

  constructor(private readonly options: DigestOptions) {
    this.now = options.now ?? Date.now;
    this.maxTrackedNonces = options.maxTrackedNonces ?? 100_000;
  }

  /** How many nonces' counts are remembered now. */
  get trackedNonces(): number {
    return this.seenCounts.size;
  }

  get realm(): string {
    return this.options.realm;
  }

  /** The challenge header values, one per algorithm, strongest first (RFC 8760 §2.4). */
  challenges(stale = false): string[] {
    const nonce = this.createNonce();
    return this.options.algorithms.map(
      (algorithm) =>
        `Digest realm=${quote(this.options.realm)}, nonce="${nonce}", algorithm=${algorithm}, qop="auth"${stale ? ', stale=true' : ''}`,
    );
  }

  createNonce(): string {
    const body = Buffer.alloc(16);
    body.writeBigUInt64BE(BigInt(this.now()), 0);
    randomBytes(8).copy(body, 8);
    const mac = createHmac('sha256', this.key).update(body).digest().subarray(0, 12);
    return Buffer.concat([body, mac]).toString('base64url');
  }

  /** undefined when the nonce is not one of ours; else when it was issued (ms since the epoch). */
  private issuedAt(nonce: string): number | undefined {
    const raw = Buffer.from(nonce, 'base64url');
    if (raw.length !== 28) return undefined;
    const mac = createHmac('sha256', this.key).update(raw.subarray(0, 16)).digest().subarray(0, 12);
    if (!timingSafeEqual(mac, raw.subarray(16))) return undefined;
    return Number(raw.readBigUInt64BE(0));
  }

  private expired(issuedAt: number): boolean {
    return this.now() - issuedAt > this.options.nonceExpires * 1000;
  }

  /** Checks a parsed Authorization against the user's stored HA1 values for `method`. */
  verify(method: string, credentials: DigestResponse, stored: DigestCredentials): VerifyResult {
    if (credentials.realm !== this.options.realm) return { ok: false, stale: false, reason: 'wrong realm' };
    if (!this.options.algorithms.includes(credentials.algorithm)) return { ok: false, stale: false, reason: 'algorithm not offered' };
    // A nonce whose count is remembered was found ours when first used: its seal is not checked again.
    const seen = this.seenCounts.get(credentials.nonce);
    const issuedAt = seen ? seen.issuedAt : this.issuedAt(credentials.nonce);
    if (issuedAt === undefined) return { ok: false, stale: false, reason: 'unknown nonce' };
    const { qop, cnonce, nc } = credentials;
    if (qop !== 'auth' || !cnonce || nc === undefined || !NONCE_COUNT.test(nc)) return { ok: false, stale: false, reason: 'qop=auth with nc and cnonce required' };
    const ha1 = credentials.algorithm === 'MD5' ? stored.ha1Md5 : stored.ha1Sha256;
    const ha2 = digestOf(credentials.algorithm, `${method}:${credentials.uri}`);
    const expected = digestOf(credentials.algorithm, `${ha1}:${credentials.nonce}:${nc}:${cnonce}:auth:${ha2}`);
    const given = Buffer.from(credentials.response.toLowerCase());
    const want = Buffer.from(expected);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return { ok: false, stale: false, reason: 'wrong password' };
    // From here the answer is right but its nonce cannot be taken again: that is stale, not wrong,
    // so the client retries with the fresh nonce of the new challenge without asking its user.
    if (this.expired(issuedAt)) return { ok: false, stale: true, reason: 'nonce expired' };
    const count = parseInt(nc, 16);
    const last = seen ? seen.count : issuedAt <= this.forgottenUpTo ? Infinity : 0;
    if (!(count > last)) return { ok: false, stale: true, reason: 'nonce count reused' };
    this.rememberCount(credentials.nonce, count, issuedAt);
    return { ok: true, username: credentials.username };
  }

  /** Records a nonce's count as its most recent use; drops expired nonces and, past the cap, the least recently used. */
  private rememberCount(nonce: string, count: number, issuedAt: number): void {
    this.seenCounts.delete(nonce);
    this.seenCounts.set(nonce, { count, issuedAt });
    for (const [oldest, seen] of this.seenCounts) {
      if (this.expired(seen.issuedAt)) this.seenCounts.delete(oldest);
      else if (this.seenCounts.size > this.maxTrackedNonces) {
        this.seenCounts.delete(oldest);
        this.forgottenUpTo = Math.max(this.forgottenUpTo, seen.issuedAt);
      } else break;
    }
  }
}

/** Parses `Digest username="..", ...`; undefined when it is not a usable Digest header. */
export function parseDigest(value: string): DigestResponse | undefined {
  const params = digestParams(value);
  if (!params) return undefined;
  const { username, realm, nonce, uri, response } = params;
  if (username === undefined || realm === undefined || !nonce || !uri || !response) return undefined;
  const algorithmText = params.algorithm === undefined ? 'MD5' : params.algorithm.toUpperCase();
  if (algorithmText !== 'MD5' && algorithmText !== 'SHA-256') return undefined;
  return {
    username, realm, nonce, uri, response, algorithm: algorithmText,
    cnonce: params.cnonce, nc: params.nc, qop: params.qop, opaque: params.opaque,
  };
}

/** The realm Digest credentials are for, complete or not; undefined when there is none to read. */
export function digestRealm(value: string): string | undefined {
  return digestParams(value)?.realm;
}

/** The parameters of a Digest header Parley reads, unquoted; those it does not read are checked and left out. */
type DigestParams = Partial<Record<'username' | 'realm' | 'nonce' | 'uri' | 'response' | 'algorithm' | 'cnonce' | 'nc' | 'qop' | 'opaque', string>>;

const DIGEST_SCHEME = /^\s*Digest\s+/iy;
/**
 * One comma-separated parameter: a token name, and a quoted string (group 2) or a bare value (group
 * 3), or none. Read in one pass over the header rather than cut into parts first.
 */
const DIGEST_PARAM = /[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*(?:=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^\s",;=]+)))?[ \t]*(?:,|$)/y;
/** Commas and blanks between parameters: empty ones are skipped. */
const DIGEST_GAP = /[ \t,]*/y;

/** The parameters of a Digest header, or undefined when it is not one or cannot be read; of a name given twice, the last. */
function digestParams(value: string): DigestParams | undefined {
  DIGEST_SCHEME.lastIndex = 0;
  if (!DIGEST_SCHEME.test(value)) return undefined;
  // Every field from the start: one shape for every header, not one per order its parameters come in.
  const params: DigestParams = {
    username: undefined, realm: undefined, nonce: undefined, uri: undefined, response: undefined,
    algorithm: undefined, cnonce: undefined, nc: undefined, qop: undefined, opaque: undefined,
  };
  let at = DIGEST_SCHEME.lastIndex;
  for (;;) {
    DIGEST_GAP.lastIndex = at;
    DIGEST_GAP.test(value);
    at = DIGEST_GAP.lastIndex;
    if (at >= value.length) return params;
    DIGEST_PARAM.lastIndex = at;
    const m = DIGEST_PARAM.exec(value);
    if (!m) return undefined;
    at = DIGEST_PARAM.lastIndex;
    const quoted = m[2];
    const text = quoted === undefined ? m[3] : quoted.includes('\\') ? quoted.replace(/\\(.)/g, '$1') : quoted;
    switch (m[1]!.toLowerCase()) {
      case 'username': params.username = text; break;
      case 'realm': params.realm = text; break;
      case 'nonce': params.nonce = text; break;
      case 'uri': params.uri = text; break;
      case 'response': params.response = text; break;
      case 'algorithm': params.algorithm = text; break;
      case 'cnonce': params.cnonce = text; break;
      case 'nc': params.nc = text; break;
      case 'qop': params.qop = text; break;
      case 'opaque': params.opaque = text; break;
    }
  }
}
