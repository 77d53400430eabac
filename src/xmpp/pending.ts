// XMPP subscription requests to SIP users who do not exist yet (not provisioned, never registered:
// with open registration anyone may turn up). Refusing them ("unsubscribed") would be for good,
// and the XMPP contact's roster would never show the user; so they wait, in the store (outbox rows
// of their own kind, one per request, keyed by the SIP user), until the user first registers or
// is provisioned, and are then approved (RFC 7248 §6.3, RFC 6121 §3.1.3). They are bounded per
// SIP user and in all, and expire: an expired request is refused then.
import type { Logger } from 'pino';
import { logBackgroundFailure, type OutboxStore } from '../store/index.js';

/** The outbox kind of pending subscription requests. */
const KIND = 'xmpp-subscription';

export interface PendingLimits {
  /** Requests waiting for one SIP user. */
  maxPerUser: number;
  /** Requests waiting in all. */
  maxTotal: number;
  /** How long a request waits before it is refused. */
  ttlMs: number;
}

export interface PendingRequest {
  /** The SIP user asked for ("user@domain"). */
  aor: string;
  /** The XMPP watcher's bare JID. */
  watcher: string;
  /** The JID the watcher knows the SIP user as. */
  as: string;
  at: number;
}

interface StoredRequest extends PendingRequest {
  /** The row in the store. */
  id: number;
}

/** What became of a request: kept, kept already (asked again), or refused because a bound is reached. */
export type PendingOutcome = 'added' | 'known' | 'full';

export class PendingSubscriptions {
  /** SIP user -> watcher -> request. */
  private readonly byUser = new Map<string, Map<string, StoredRequest>>();
  private count = 0;

  constructor(
    private readonly store: OutboxStore,
    private readonly limits: PendingLimits,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.count;
  }

  /** The SIP users requests wait for. */
  users(): string[] {
    return [...this.byUser.keys()];
  }

  has(aor: string, watcher?: string): boolean {
    const requests = this.byUser.get(aor);
    return watcher === undefined ? requests !== undefined : requests?.has(watcher) === true;
  }

  /** Takes back what was stored before a restart; what expired meanwhile is returned, to be refused. */
  async load(now: number): Promise<PendingRequest[]> {
    const { records } = await this.store.pending(KIND);
    const expired: StoredRequest[] = [];
    for (const record of records) {
      const request = { ...(JSON.parse(record.payload.toString('utf8')) as PendingRequest), id: record.id };
      if (now - request.at > this.limits.ttlMs) expired.push(request);
      else this.keep(request);
    }
    if (expired.length > 0) await this.store.record({ finished: expired.map((request) => request.id), cursors: [] });
    return expired;
  }

  /** Stores a request, unless the watcher asked before or a bound is reached; calls do not overlap (the bridge handles requests one by one). */
  async add(request: PendingRequest): Promise<PendingOutcome> {
    const requests = this.byUser.get(request.aor);
    if (requests?.has(request.watcher)) return 'known';
    if (this.count >= this.limits.maxTotal || (requests?.size ?? 0) >= this.limits.maxPerUser) return 'full';
    const id = await this.store.add({ kind: KIND, recipients: [request.aor], payload: Buffer.from(JSON.stringify(request)), createdAt: request.at });
    this.keep({ ...request, id });
    return 'added';
  }

  /** The requests for a SIP user, removed (from the store too): they are about to be answered. */
  async take(aor: string): Promise<PendingRequest[]> {
    const requests = [...(this.byUser.get(aor)?.values() ?? [])];
    if (requests.length === 0) return [];
    await this.store.record({ finished: requests.map((request) => request.id), cursors: [] });
    this.byUser.delete(aor);
    this.count -= requests.length;
    return requests;
  }

  /** Forgets a watcher's request (it cancelled it with "unsubscribe"). */
  async cancel(aor: string, watcher: string): Promise<void> {
    const request = this.byUser.get(aor)?.get(watcher);
    if (request) await this.drop([request]);
  }

  /** Removes the requests that waited longer than the limit and returns them, to be refused. */
  async expire(now: number): Promise<PendingRequest[]> {
    const expired: StoredRequest[] = [];
    for (const requests of this.byUser.values()) {
      for (const request of requests.values()) if (now - request.at > this.limits.ttlMs) expired.push(request);
    }
    await this.drop(expired);
    return expired;
  }

  private keep(request: StoredRequest): void {
    const requests = this.byUser.get(request.aor) ?? new Map<string, StoredRequest>();
    this.byUser.set(request.aor, requests.set(request.watcher, request));
    this.count++;
  }

  /** Removes requests from memory at once, then their rows; a row the store failed to remove is found expired at the next start. */
  private async drop(requests: StoredRequest[]): Promise<void> {
    if (requests.length === 0) return;
    for (const request of requests) {
      const forUser = this.byUser.get(request.aor)!;
      forUser.delete(request.watcher);
      if (forUser.size === 0) this.byUser.delete(request.aor);
      this.count--;
    }
    await this.store.record({ finished: requests.map((request) => request.id), cursors: [] }).catch(logBackgroundFailure(this.log, 'removing pending XMPP subscription requests'));
  }
}
