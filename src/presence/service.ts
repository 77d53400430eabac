// The presence agent as other modules see it. A gateway (XMPP, or any non-SIP network) feeds it
// the presence of addresses it knows, so that SIP watchers are notified, and follows it to pass
// the presence of SIP users on to its own network.
import type { PresenceState } from './pidf.js';

/** Source of changes that PUBLISH requests (and their expiry) make. */
export const SIP_PUBLICATION = 'sip';
/** Source of changes in registration-derived presence: a user with no publication is open while registered. */
export const REGISTRATION = 'registration';

/** The events of the presence service and the arguments their listeners get. */
export interface PresenceEvents {
  /**
   * The composed state of `aor` changed. `source` names what changed it: SIP_PUBLICATION,
   * REGISTRATION or the source given to publishFrom, so that a gateway can leave out the changes
   * it caused itself.
   */
  change: [aor: string, state: PresenceState, source: string];
  /** A SIP user started watching `presentity`. */
  watch: [presentity: string, watcher: string];
  /** A SIP user stopped watching `presentity`: unsubscribed, expired, or gone. */
  unwatch: [presentity: string, watcher: string];
}

export type PresenceListener<E extends keyof PresenceEvents> = (...args: PresenceEvents[E]) => void;

/**
 * Addresses are "user@domain", as the registrar keys them (no scheme, user part unescaped), and
 * may be in any domain: a gateway publishes the presence of its own network's users under the
 * addresses SIP users subscribe to (routed to the `presence` handler).
 */
export interface PresenceService {
  /** The state a SIP watcher of `aor` is told now. */
  stateOf(aor: string): PresenceState;

  /**
   * Sets what the non-SIP `source` (e.g. "xmpp") knows of `aor`, or withdraws it with null. It is
   * composed with the SIP publications of `aor` like one more publication, until withdrawn; SIP
   * watchers are notified when the composed state changes. Kept in the store across restarts while
   * somebody watches the address. Do not use the names SIP_PUBLICATION or REGISTRATION.
   */
  publishFrom(source: string, aor: string, state: PresenceState | null): void;

  /** The SIP users watching `aor` now, each once. */
  watchersOf(aor: string): string[];

  /** What `source` reported of `aor` and did not withdraw (this run, or the last one's kept in the store); undefined when nothing. */
  reportedBy(source: string, aor: string): PresenceState | undefined;

  on<E extends keyof PresenceEvents>(event: E, listener: PresenceListener<E>): this;
  off<E extends keyof PresenceEvents>(event: E, listener: PresenceListener<E>): this;
}
