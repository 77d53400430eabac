// The event state compositor's book of publications (RFC 3903): each publication of a presentity
// has its entity tag and its own expiry; refreshing, modifying and removing one go through the tag
// it was last given (SIP-If-Match), and every successful PUBLISH gives it a new one. New
// publications are bounded per presentity and in total. Every change is written to the store
// before it is answered, so a restart (even a crash) keeps what was acknowledged.
import type { Logger } from 'pino';
import { logBackgroundFailure, type PresenceStore, type StoredPublication } from '../store/index.js';
import { randomToken } from '../sip/index.js';
import { type ExpiryLimits, RETRY_WHEN_FULL, expireWhenDue, grantExpires } from './expires.js';
import { PidfError, type PresenceState, parsePidf } from './pidf.js';
import { KeyedSerializer } from './serial.js';

/** A PIDF document as published, and the state it says. */
export interface PublishedDocument {
  document: string;
  state: PresenceState;
}

export interface PublishRequest {
  /** SIP-If-Match: the entity tag of the publication to refresh, modify or remove. */
  ifMatch?: string;
  /** Seconds asked for in Expires; undefined when the request had none. */
  expires?: number;
  /** What is published; undefined for a refresh, which carries no body. */
  body?: PublishedDocument;
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

interface Publication extends PublishedDocument {
  /** The store's id of the publication. */
  id: number;
  etag: string;
  expiresAt: number;
  expiry?: NodeJS.Timeout;
}

const CONDITIONAL_REQUEST_FAILED: PublishOutcome = { status: 412, reason: 'Conditional Request Failed' };

export class PublicationStore {
  /** Publications in the order they were first made, which is the order their notes compose in. */
  private readonly byPresentity = new Map<string, Publication[]>();
  /** Places taken: publications held, and new ones being written. */
  private count = 0;
  /** PUBLISHes and expiries of one presentity, one at a time. */
  private readonly serial = new KeyedSerializer();
  private readonly removalFailed: (error: unknown) => void;

  constructor(
    private readonly limits: PublicationLimits,
    private readonly store: PresenceStore,
    /** Called after a publication of `aor` expired and was dropped. */
    private readonly expired: (aor: string) => void,
    log: Logger,
  ) {
    // Not removed now, an expired row is left out at the next start.
    this.removalFailed = logBackgroundFailure(log, 'removing an expired publication');
  }

  /** Places taken, as presence.max_publications counts them. */
  get size(): number {
    return this.count;
  }

  /**
   * Applies one PUBLISH to the presentity `aor` (RFC 3903 §6, steps 4 to 8) and writes it to the
   * store; rejects, changing nothing, when the store cannot take it.
   */
  publish(aor: string, request: PublishRequest): Promise<PublishOutcome> {
    return this.serial.run(aor, () => this.apply(aor, request));
  }

  /** Takes back the publications of the last run, oldest first. */
  restore(publications: readonly StoredPublication[]): void {
    for (const stored of publications) {
      let state: PresenceState;
      try {
        state = parsePidf(stored.document);
      } catch (error) {
        if (!(error instanceof PidfError)) throw error;
        continue; // Parley stored only documents it could read; another program wrote this one.
      }
      this.count++;
      this.expireAt(stored.presentity, this.add(stored.presentity, { ...stored, state }));
    }
  }

  /** The states published for `aor`, oldest publication first. */
  statesOf(aor: string): PresenceState[] {
    return (this.byPresentity.get(aor) ?? []).map((publication) => publication.state);
  }

  /** The presentities that published something. */
  presentities(): IterableIterator<string> {
    return this.byPresentity.keys();
  }

  /** Stops the expiry timers: the server is stopping, and the publications stay in the store for the next start. */
  stop(): void {
    for (const publications of this.byPresentity.values()) for (const publication of publications) clearTimeout(publication.expiry);
  }

  private async apply(aor: string, request: PublishRequest): Promise<PublishOutcome> {
    const previous = request.ifMatch === undefined ? undefined : this.byPresentity.get(aor)?.find((p) => p.etag === request.ifMatch);
    if (request.ifMatch !== undefined && !previous) return CONDITIONAL_REQUEST_FAILED;
    const body = request.body ?? previous;
    if (!body) return { status: 400, reason: 'Bad Request (a new publication needs a body)' };
    const expires = grantExpires(request.expires, this.limits);
    if (expires === undefined) return { status: 423, minExpires: this.limits.minExpires };
    if (expires === 0) {
      if (previous) {
        await this.store.removePublication(previous.id);
        this.remove(aor, previous);
      }
      return { status: 200, expires: 0 };
    }
    if (!previous) {
      const full = this.refusal(aor);
      if (full) return full;
    }
    const change = { etag: randomToken(16), document: body.document, expiresAt: Date.now() + expires * 1000 };
    let publication: Publication;
    if (previous) {
      await this.store.updatePublication(previous.id, change);
      publication = Object.assign(previous, change, { state: body.state });
    } else {
      // The place is taken while the write is under way, so that new publications of other presentities cannot exceed the limit meanwhile.
      this.count++;
      try {
        const id = await this.store.addPublication({ presentity: aor, ...change });
        publication = this.add(aor, { id, ...change, state: body.state });
      } catch (error) {
        this.count--;
        throw error;
      }
    }
    this.expireAt(aor, publication);
    return { status: 200, expires, etag: publication.etag };
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

  /** Holds a publication whose place was counted already. */
  private add(aor: string, publication: Publication): Publication {
    const publications = this.byPresentity.get(aor) ?? [];
    publications.push(publication);
    this.byPresentity.set(aor, publications);
    return publication;
  }

  /** Ends the publication when it expires, after the PUBLISHes of the presentity under way. */
  private expireAt(aor: string, publication: Publication): void {
    expireWhenDue(publication, this.serial, aor, () => this.byPresentity.get(aor)?.includes(publication) === true, () => {
      this.remove(aor, publication);
      void this.store.removePublication(publication.id).catch(this.removalFailed);
      this.expired(aor);
    });
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
