// Globally routable user agent URIs (RFC 5627): addresses that reach one device of a user.
// A public GRUU is the AOR with the device's instance URN in `gr`; a temporary one hides the AOR:
// its user part is the AOR, instance and a digest of the registration's Call-ID sealed with a key
// Parley drew once and keeps in its store, so none is kept in memory and those handed out before a
// restart still reach their device while the registration they came with lasts.
import { createCipheriv, createDecipheriv, hash, randomBytes } from 'node:crypto';
import { aorOf, domainOfAor, sipUriOfAor, type SipUri } from '../sip/index.js';
import { instanceUrn } from '../store/index.js';

/** The user part that marks a temporary GRUU, before its sealed token. */
const TEMPORARY_PREFIX = 'tgruu.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** One device of an AOR: its instance URN and, for a temporary GRUU, the Call-ID digest it is tied to. */
export interface Device {
  instance: string;
  callIdDigest?: string;
}

/** Short digest of a Call-ID: a new Call-ID for an instance invalidates its temporary GRUUs (RFC 5627 §5.1). */
export function callIdDigest(callId: string): string {
  return hash('sha256', callId, 'base64url').slice(0, 12);
}

export class GruuIssuer {
  /** `key`: 32 bytes, the same at every start (see LocationStore.serverKey). */
  constructor(private readonly key: Buffer) {}

  publicGruu(aor: string, instance: string): string {
    return `${sipUriOfAor(aor)};gr=${instance.replace(/[^A-Za-z0-9\-_.!~*'()[\]/:&+$]/g, encodeURIComponent)}`;
  }

  /** A new temporary GRUU at every call, each valid while the instance stays registered with that Call-ID. */
  temporaryGruu(aor: string, instance: string, callId: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const sealed = Buffer.concat([cipher.update(`${aor}\n${instance}\n${callIdDigest(callId)}`, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `sip:${TEMPORARY_PREFIX}${Buffer.concat([iv, sealed]).toString('base64url')}@${domainOfAor(aor)};gr`;
  }

  /**
   * The AOR and device a URI with a `gr` parameter names; undefined when it is a temporary GRUU
   * Parley did not issue.
   */
  read(uri: SipUri): { aor: string; device: Device } | undefined {
    const gr = uri.params.get('gr');
    if (gr) return { aor: aorOf(uri), device: { instance: instanceUrn(gr) } };
    if (!uri.user.startsWith(TEMPORARY_PREFIX)) return undefined;
    const bytes = Buffer.from(uri.user.slice(TEMPORARY_PREFIX.length), 'base64url');
    if (bytes.length <= IV_BYTES + TAG_BYTES) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, IV_BYTES));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      const [aor, instance, digest] = plain.split('\n');
      if (!aor || !instance || !digest) return undefined;
      return { aor, device: { instance, callIdDigest: digest } };
    } catch {
      return undefined; // forged, or sealed with another store's key
    }
  }
}
