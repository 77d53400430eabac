// Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760: MD5 and SHA-256, qop=auth).
// Nonces are self-validating (time + random, signed with a per-process key), so no nonce table
// is needed; a small nonce-count map rejects replays within a nonce's life.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseParams, quote, unquote } from '../sip/headers.js';

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

const hash = (algorithm: DigestAlgorithm, text: string) =>
  createHash(algorithm === 'MD5' ? 'md5' : 'sha256').update(text, 'utf8').digest('hex');

export class DigestAuthenticator {
  private readonly key = randomBytes(32);
  private readonly seenCounts = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: DigestOptions) {
    this.now = options.now ?? Date.now;
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

  /** undefined when the nonce is not one of ours; else its age in ms. */
  private nonceAge(nonce: string): number | undefined {
    const raw = Buffer.from(nonce, 'base64url');
    if (raw.length !== 28) return undefined;
    const mac = createHmac('sha256', this.key).update(raw.subarray(0, 16)).digest().subarray(0, 12);
    if (!timingSafeEqual(mac, raw.subarray(16))) return undefined;
    return this.now() - Number(raw.readBigUInt64BE(0));
  }

  /** Checks a parsed Authorization against the user's stored HA1 values for `method`. */
  verify(method: string, credentials: DigestResponse, stored: DigestCredentials): VerifyResult {
    if (credentials.realm !== this.options.realm) return { ok: false, stale: false, reason: 'wrong realm' };
    if (!this.options.algorithms.includes(credentials.algorithm)) return { ok: false, stale: false, reason: 'algorithm not offered' };
    const age = this.nonceAge(credentials.nonce);
    if (age === undefined) return { ok: false, stale: false, reason: 'unknown nonce' };
    const ha1 = credentials.algorithm === 'MD5' ? stored.ha1Md5 : stored.ha1Sha256;
    const ha2 = hash(credentials.algorithm, `${method}:${credentials.uri}`);
    let expected: string;
    if (credentials.qop) {
      if (credentials.qop !== 'auth' || !credentials.cnonce || !credentials.nc) return { ok: false, stale: false, reason: 'bad qop parameters' };
      expected = hash(credentials.algorithm, `${ha1}:${credentials.nonce}:${credentials.nc}:${credentials.cnonce}:auth:${ha2}`);
    } else {
      expected = hash(credentials.algorithm, `${ha1}:${credentials.nonce}:${ha2}`);
    }
    const given = Buffer.from(credentials.response.toLowerCase());
    const want = Buffer.from(expected);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return { ok: false, stale: false, reason: 'wrong password' };
    // A right answer to an expired nonce is stale, not wrong: the client retries without asking its user.
    if (age > this.options.nonceExpires * 1000) return { ok: false, stale: true, reason: 'nonce expired' };
    if (credentials.nc) {
      const count = parseInt(credentials.nc, 16);
      const last = this.seenCounts.get(credentials.nonce) ?? 0;
      if (!(count > last)) return { ok: false, stale: false, reason: 'nonce count replayed' };
      this.rememberCount(credentials.nonce, count);
    }
    return { ok: true, username: credentials.username };
  }

  private rememberCount(nonce: string, count: number): void {
    this.seenCounts.set(nonce, count);
    if (this.seenCounts.size > 100_000) {
      for (const old of this.seenCounts.keys()) {
        const age = this.nonceAge(old);
        if (age === undefined || age > this.options.nonceExpires * 1000) this.seenCounts.delete(old);
      }
    }
  }
}

/** Parses `Digest username="..", ...`; undefined when it is not a usable Digest header. */
export function parseDigest(value: string): DigestResponse | undefined {
  const get = digestParams(value);
  if (!get) return undefined;
  const username = get('username');
  const realm = get('realm');
  const nonce = get('nonce');
  const uri = get('uri');
  const response = get('response');
  if (username === undefined || realm === undefined || !nonce || !uri || !response) return undefined;
  const algorithmText = (get('algorithm') ?? 'MD5').toUpperCase();
  if (algorithmText !== 'MD5' && algorithmText !== 'SHA-256') return undefined;
  return {
    username, realm, nonce, uri, response, algorithm: algorithmText,
    cnonce: get('cnonce'), nc: get('nc'), qop: get('qop'), opaque: get('opaque'),
  };
}

/** The realm Digest credentials are for, complete or not; undefined when there is none to read. */
export function digestRealm(value: string): string | undefined {
  return digestParams(value)?.('realm');
}

/** A reader of the parameters of a Digest header (unquoted), or undefined when it is not one. */
function digestParams(value: string): ((name: string) => string | undefined) | undefined {
  const m = DIGEST_SCHEME.exec(value);
  if (!m) return undefined;
  let params: Map<string, string | null>;
  try {
    // Digest parameters are comma-separated; as ';'-parameters they reuse the header parameter parser.
    params = parseParams(';' + splitDigestParams(value.slice(m[0].length)).join(';'));
  } catch {
    return undefined;
  }
  return (name) => {
    const v = params.get(name);
    return v === null || v === undefined ? undefined : unquote(v);
  };
}

const DIGEST_SCHEME = /^\s*Digest\s+/i;

function splitDigestParams(text: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out.filter((p) => p !== '');
}
