// What the gateway needs of its connection to XMPP, whichever the backend: the component link
// (link.ts, XEP-0114 to an XMPP server) or Parley's own server-to-server link (s2s/, server mode).
// Both implement this contract; create-link.ts picks one.
import type { EventEmitter } from 'node:events';
import type xml from '@xmpp/xml';

/**
 * What a link tells: it is up (again), a stanza came, and (for presence) a stream the stanzas of
 * XMPP users of a domain come on went down (every domain's, for the component link) or, in server
 * mode, came up again.
 */
export interface XmppLinkEvents {
  online: [];
  stanza: [xml.Element];
  'stream-down': [domain?: string];
  'stream-up': [domain: string];
}

/** What a link writes: an element, or a stanza written as text already (messages.ts WrittenStanza). */
export type OutboundStanza = Pick<xml.Element, 'name' | 'attrs' | 'is' | 'toString'>;

export type LinkState = 'down' | 'online' | 'stopped';

/** One XMPP server Parley has a stream with: the component's server, or an s2s peer domain. */
export interface PeerStatus {
  domain: string;
  direction: 'in' | 'out';
  state: string;
  secure: boolean;
}

export interface XmppLink extends EventEmitter<XmppLinkEvents> {
  readonly state: LinkState;
  readonly online: boolean;
  /** Stream and connection errors. */
  readonly errors: number;
  readonly reconnects: number;
  /** Stanzas written to the server that it has not confirmed yet, kept to be written again after a reconnection. */
  readonly unconfirmed: number;
  /** Milliseconds since the link was last usable; 0 while online. */
  downFor(now: number): number;
  start(): void;
  stop(): Promise<void>;
  /** Sends a stanza (or, in server mode, queues it for its domain's stream); false when the link is not online. */
  send(stanza: OutboundStanza): boolean;
  /** Streams with XMPP servers and their state, for status and metrics. */
  peers(): PeerStatus[];
}
