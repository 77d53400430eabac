// A presence subscription (RFC 6665): the dialog the SUBSCRIBE created, seen from Parley's side,
// and what is needed to send its NOTIFYs in order. Kept in the store as well (StoredSubscription),
// so that the dialog goes on after a restart.
import { type Peer, formatPeer, parsePeer } from '../sip/index.js';
import type { StoredSubscription } from '../store/index.js';

/**
 * Why a subscription ended, as its last NOTIFY says (RFC 6665 §4.1.3): not refreshed in time, or
 * ended by the subscriber (Expires: 0); it may subscribe again.
 */
export type TerminationReason = 'timeout';

/** NOTIFY CSeqs are saved a block at a time: one write per this many NOTIFYs of a dialog. */
export const NOTIFY_CSEQ_BLOCK = 100;

export interface Subscription {
  /** Call-ID and both tags: what in-dialog requests are matched by. */
  readonly dialog: string;
  /** Address watched, "user@domain". */
  readonly presentity: string;
  /** Address of the subscriber, "user@domain". */
  readonly watcher: string;
  readonly callId: string;
  /** Parley's tag, given in the To of the response to the SUBSCRIBE. */
  readonly localTag: string;
  /** The subscriber's tag, in the From of the SUBSCRIBE. */
  readonly remoteTag: string;
  /** The SUBSCRIBE's To with Parley's tag: the From of every NOTIFY. */
  readonly local: string;
  /** The SUBSCRIBE's From: the To of every NOTIFY. */
  readonly remote: string;
  /** The Event header of the SUBSCRIBE, repeated in NOTIFYs with its id parameter. */
  readonly event: string;
  /** Record-Route of the SUBSCRIBE, in order: the Route of every NOTIFY (RFC 3261 §12.1.1). */
  readonly routeSet: readonly string[];
  /** The Contact Parley gives the subscriber, to which it sends refreshes. */
  readonly contact: string;
  /** The subscriber's Contact: the Request-URI of NOTIFYs. */
  remoteTarget: string;
  /** Where the latest SUBSCRIBE came from: NOTIFYs go back the same way, through NAT and over its connection. */
  flow: Peer;
  remoteCSeq: number;
  /** The CSeq of the latest NOTIFY. */
  localCSeq: number;
  /** The CSeq the store says NOTIFYs may have used up to: a NOTIFY above it saves a new one first. */
  savedCSeq: number;
  expiresAt: number;
  expiry?: NodeJS.Timeout;
  /** Set once the subscription ended; its last NOTIFY gives the reason. */
  ended?: TerminationReason;
  /** A NOTIFY is waiting for its answer; NOTIFYs of one subscription go one at a time. */
  notifying: boolean;
  /** The state changed while a NOTIFY was on its way: another follows once it is answered. */
  outdated: boolean;
}

/** What the store keeps of a subscription. */
export function storedSubscription(subscription: Subscription): StoredSubscription {
  return {
    callId: subscription.callId,
    localTag: subscription.localTag,
    remoteTag: subscription.remoteTag,
    presentity: subscription.presentity,
    watcher: subscription.watcher,
    localHeader: subscription.local,
    remoteHeader: subscription.remote,
    event: subscription.event,
    routeSet: [...subscription.routeSet],
    contact: subscription.contact,
    remoteTarget: subscription.remoteTarget,
    source: formatPeer(subscription.flow),
    remoteCSeq: subscription.remoteCSeq,
    localCSeq: subscription.savedCSeq,
    expiresAt: subscription.expiresAt,
  };
}

/**
 * A subscription of the last run, taken back from the store; undefined when its source does not
 * parse. Its connection is gone: NOTIFYs go where the subscriber's source or Contact says.
 */
export function restoredSubscription(stored: StoredSubscription): Subscription | undefined {
  const flow = parsePeer(stored.source);
  if (!flow) return undefined;
  return {
    dialog: dialogKey(stored.callId, stored.localTag, stored.remoteTag),
    presentity: stored.presentity,
    watcher: stored.watcher,
    callId: stored.callId,
    localTag: stored.localTag,
    remoteTag: stored.remoteTag,
    local: stored.localHeader,
    remote: stored.remoteHeader,
    event: stored.event,
    routeSet: stored.routeSet,
    contact: stored.contact,
    remoteTarget: stored.remoteTarget,
    flow,
    remoteCSeq: stored.remoteCSeq,
    localCSeq: stored.localCSeq,
    savedCSeq: stored.localCSeq,
    expiresAt: stored.expiresAt,
    notifying: false,
    outdated: false,
  };
}

export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}

/** The Subscription-State header value of the next NOTIFY. */
export function subscriptionState(subscription: Subscription, now: number): string {
  if (subscription.ended) return `terminated;reason=${subscription.ended}`;
  return `active;expires=${Math.max(0, Math.ceil((subscription.expiresAt - now) / 1000))}`;
}
