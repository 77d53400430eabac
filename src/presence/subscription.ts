// A presence subscription (RFC 6665): the dialog the SUBSCRIBE created, seen from Parley's side,
// and what is needed to send its NOTIFYs in order.
import type { Peer } from '../sip/index.js';

/** Why a subscription ended, as its last NOTIFY says (RFC 6665 §4.1.3). */
export type TerminationReason =
  /** Not refreshed in time, or ended by the subscriber (Expires: 0): it may subscribe again. */
  | 'timeout'
  /** Parley is stopping: the subscriber should subscribe again at once. */
  | 'deactivated';

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
  localCSeq: number;
  expiresAt: number;
  expiry?: NodeJS.Timeout;
  /** Set once the subscription ended; its last NOTIFY gives the reason. */
  ended?: TerminationReason;
  /** A NOTIFY is waiting for its answer; NOTIFYs of one subscription go one at a time. */
  notifying: boolean;
  /** The state changed while a NOTIFY was on its way: another follows once it is answered. */
  outdated: boolean;
}

export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}

/** The Subscription-State header value of the next NOTIFY. */
export function subscriptionState(subscription: Subscription, now: number): string {
  if (subscription.ended) return `terminated;reason=${subscription.ended}`;
  return `active;expires=${Math.max(0, Math.ceil((subscription.expiresAt - now) / 1000))}`;
}
