// What a network is to the gateway: an adapter that maps addresses between SIP and the network and
// opens one session per linked account. XMPP is one (xmpp-network.ts); IRC, Matrix... are one more
// file each, the service does not change.
import type { EventEmitter } from 'node:events';
import type { GatewayTlsMode } from '../store/types.js';
import type { SipUri } from '../sip/index.js';
import type { InstantMessage } from '../xmpp/messages.js';
import type { NetworkId } from './protocols.js';

/** A linked account as a session needs it: the password opened. */
export interface SessionAccount {
  id: number;
  extUser: string;
  password: string;
  server?: string;
  port?: number;
  tls: GatewayTlsMode;
}

export type SessionState = 'connecting' | 'online' | 'stopped' | 'failed';

export interface SessionEvents {
  /** The session can send (first time, or back after a reconnection). */
  online: [];
  /** The connection was lost; the session reconnects by itself. */
  offline: [reason: string];
  /** The network refused the account (wrong password, no such server...): retrying will not help. */
  failed: [reason: string];
  /** A message from a contact (`from`: the network's id for it). */
  message: [from: string, im: InstantMessage];
  /** The network returned an error for a message sent with `id`. */
  undelivered: [id: string, status: number, explanation: string];
}

export interface NetworkSession extends EventEmitter<SessionEvents> {
  readonly state: SessionState;
  /** Starts connecting; reconnects with backoff after transient failures until stopped or failed. */
  start(): void;
  stop(): Promise<void>;
  /** Sends a message to a contact; false when not online. */
  send(to: string, im: InstantMessage, id: string): boolean;
}

export interface SessionSettings {
  priority: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

export interface NetworkAdapter {
  readonly id: NetworkId;
  /** The SIP domain of the network (jdomain alias). */
  readonly alias: string;
  /** The account id as stored, normalized; undefined when it is not one of this network. */
  normalizeUser(extUser: string): string | undefined;
  /** The contact a SIP request-URI under the alias stands for. */
  contactOf(target: SipUri): string | undefined;
  /** The SIP address (under the alias) SIP users see a contact as. */
  sipAddressOf(contact: string): string | undefined;
  createSession(account: SessionAccount, settings: SessionSettings): NetworkSession;
}
