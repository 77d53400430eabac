// The event state compositor's book of publications (RFC 3903): each publication of a presentity
// has its entity tag and its own expiry; refreshing, modifying and removing one go through the tag
// it was last given (SIP-If-Match), and every successful PUBLISH gives it a new one. New
// publications are bounded per presentity and in total.
import { randomToken } from '../sip/index.js';
import { type ExpiryLimits, RETRY_WHEN_FULL, grantExpires } from './expires.js';
import type { PresenceState } from './pidf.js';

export interface PublishRequest {
  /** SIP-If-Match: the entity tag of the publication to refresh, modify or remove. */
  ifMatch?: string;
  /** Seconds asked for in Expires; undefined when the request had none. */
  expires?: number;
  /** The published state; undefined for a refresh, which carries no body. */
  state?: PresenceState;
}

export interface PublicationLimits extends ExpiryLimits {
  maxPublicationsPerPresentity: number;
  maxPublications: number;
}

export type PublishOutcome =
  /** Accepted; `etag` names the publication from now on, and is absent once it was removed. */
  | { status: 200; expires: number; etag?: string }
  | { status: 400 | 412; reason: string }
  | { status: 423; minExpires: number }
  /** No place for a new publication; `retryAfter` seconds, when one will have expired. */
  | { status: 503; reason: string; retryAfter: number };

interface Publication {
  etag: string;
  state: PresenceState;
  expiresAt: number;
  expiry?: NodeJS.Timeout;
}

export class PublicationStore {
  /** Publications in the order they were first made, which is the order their notes compose in. */
  private readonly byPresentity = new Map<string, Publication[]>();
  private count = 0;

  constructor(
    private readonly limits: PublicationLimits,
    /** Called after a publication of `aor` expired and was dropped. */
    private readonly expired: (aor: string) => void,
  ) {}

  /** Applies one PUBLISH to the presentity `aor` (RFC 3903 §6, steps 4 to 8). */
  publish(aor: string, request: PublishRequest): PublishOutcome {
    const previous = request.ifMatch === undefined ? undefined : this.byPresentity.get(aor)?.find((p) => p.etag === request.ifMatch);
    if (request.ifMatch !== undefined && !previous) return { status: 412, reason: 'Conditional Request Failed' };
    const state = request.state ?? previous?.state;
    if (!state) return { status: 400, reason: 'Bad Request (a new publication needs a body)' };
    const expires = grantExpires(request.expires, this.limits);
    if (expires === undefined) return { status: 423, minExpires: this.limits.minExpires };
    if (expires === 0) {
      if (previous) this.remove(aor, previous);
      return { status: 200, expires: 0 };
    }
    if (!previous) {
      const full = this.refusal(aor);
      if (full) return full;
    }
    const etag = randomToken(16);
    const expiresAt = Date.now() + expires * 1000;
    const publication = previous ? Object.assign(previous, { etag, state, expiresAt }) : this.add(aor, { etag, state, expiresAt });
    clearTimeout(publication.expiry);
    publication.expiry = setTimeout(() => {
      this.remove(aor, publication);
      this.expired(aor);
    }, expires * 1000).unref();
    return { status: 200, expires, etag: publication.etag };
  }

  /** The states published for `aor`, oldest publication first. */
  statesOf(aor: string): PresenceState[] {
    return (this.byPresentity.get(aor) ?? []).map((publication) => publication.state);
  }

  /** Drops every publication without telling anyone: the server is stopping. */
  clear(): void {
    for (const publications of this.byPresentity.values()) for (const publication of publications) clearTimeout(publication.expiry);
    this.byPresentity.clear();
    this.count = 0;
  }

  /** Why a new publication of `aor` finds no place, if it does not. */
  private refusal(aor: string): PublishOutcome | undefined {
    const publications = this.byPresentity.get(aor) ?? [];
    if (publications.length >= this.limits.maxPublicationsPerPresentity) {
      const firstExpiry = Math.min(...publications.map((publication) => publication.expiresAt));
      const retryAfter = Math.max(1, Math.ceil((firstExpiry - Date.now()) / 1000));
      return { status: 503, reason: 'Service Unavailable (too many publications for this presentity)', retryAfter };
    }
    if (this.count >= this.limits.maxPublications) return { status: 503, reason: 'Service Unavailable (too many publications)', retryAfter: RETRY_WHEN_FULL };
    return undefined;
  }

  private add(aor: string, publication: Publication): Publication {
    const publications = this.byPresentity.get(aor) ?? [];
    publications.push(publication);
    this.byPresentity.set(aor, publications);
    this.count++;
    return publication;
  }

  private remove(aor: string, publication: Publication): void {
    clearTimeout(publication.expiry);
    const publications = this.byPresentity.get(aor) ?? [];
    const kept = publications.filter((p) => p !== publication);
    this.count -= publications.length - kept.length;
    if (kept.length > 0) this.byPresentity.set(aor, kept);
    else this.byPresentity.delete(aor);
  }
}
