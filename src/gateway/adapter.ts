// What a network is to the gateway: an adapter that maps addresses between SIP and the network and
// opens one session per linked account. XMPP is one (xmpp-network.ts), IRC another (irc-network.ts);
// Matrix... would be one more file each, the service does not change.
import type { EventEmitter } from 'node:events';
import type { PresenceState } from '../presence/index.js';
import type { GatewayTlsMode } from '../store/types.js';
import type { SipUri } from '../sip/index.js';
import type { InstantMessage } from '../bridge/index.js';
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

/**
 * Why the network refused an account for good: `authentication` (a wrong password, a SASL
 * failure: linking it again with the right password helps), `tls` (the TLS the account needs is
 * not offered), `account` (banned, nick invalid or taken, server does not host the domain...).
 */
export type RefusalCause = 'authentication' | 'tls' | 'account';

/** A server the operator configured for a network's accounts: an XMPP domain's, an IRC network's. */
export interface ConfiguredServer {
  /** Where to connect; absent: the server's name itself (an XMPP domain). */
  host?: string;
  port?: number;
  tls: GatewayTlsMode;
}

/** Where and how a session connects, as the operator's settings and the account's own say. */
export interface Endpoint {
  host: string;
  port: number;
  tls: GatewayTlsMode;
}

export interface SessionEvents {
  /** The session can send (first time, or back after a reconnection). */
  online: [];
  /** The connection was lost; the session reconnects by itself. */
  offline: [reason: string];
  /** The network refused the account (wrong password, no TLS...): retrying will not help. */
  failed: [reason: string, cause: RefusalCause];
  /** The first attempt of a run of failed ones could not connect (refused, unreachable, DNS, TLS...): the session keeps retrying. */
  unreachable: [reason: string];
  /** A message from a contact (`from`: the network's id for it). */
  message: [from: string, im: InstantMessage];
  /** The network returned an error for a message sent with `id`. */
  undelivered: [id: string, status: number, explanation: string];
  /** `nick` spoke in the group chat `room` (the account's own messages echoed back are not emitted). */
  roomMessage: [room: string, nick: string, im: InstantMessage];
  /** The account is in `room` as `nick` (after join(), and again after each reconnection). */
  joined: [room: string, nick: string];
  /** The account is no longer in `room`: `reason` says why when it did not ask (kicked, refused, nick taken). */
  left: [room: string, reason: string | undefined];
  /** What the network says of a contact's presence; null: unavailable. Networks without presence never emit it. */
  presence: [contact: string, state: PresenceState | null];
  /** A contact asks to see the account's presence; answered with answerSubscription(). */
  subscriptionRequest: [contact: string];
}

/**
 * What became of a message given to a session: false, not sent (not online); true, written to the
 * network; or, on a network that confirms what it received (IRC), a promise that settles true once
 * the server confirmed it and false when the connection was lost before (to be sent again).
 */
export type Sent = boolean | Promise<boolean>;

export interface NetworkSession extends EventEmitter<SessionEvents> {
  readonly state: SessionState;
  /** Starts connecting; reconnects with backoff after transient failures until stopped or failed. */
  start(): void;
  stop(): Promise<void>;
  /** Sends a message to a contact; false when not online. */
  send(to: string, im: InstantMessage, id: string): Sent;
  /** Enters a group chat (kept across reconnections until leave()); false when not online. */
  join(room: string, nick: string): boolean;
  leave(room: string): void;
  /** The group chats the session is in (or joining), with its nick in each. */
  readonly rooms: ReadonlyMap<string, string>;
  /** Sends a message to a group chat the session is in; false when not online or not in it. */
  sendToRoom(room: string, im: InstantMessage, id: string): Sent;
  /** The account's own presence as the SIP user published it (kept and re-sent after reconnections). */
  setPresence(state: PresenceState): void;
  /** Asks to see a contact's presence (presence events follow); no-op on networks without presence. */
  watch(contact: string): void;
  unwatch(contact: string): void;
  /** Answers a contact's subscriptionRequest. */
  answerSubscription(contact: string, allow: boolean): void;
  /** Why a contact cannot be reached now (e.g. its transport said it is offline); undefined when it may be. */
  unreachable?(contact: string): string | undefined;
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
  /** Further SIP domains the adapter maps (the XMPP network's transports, the jabber seed's aliases). */
  readonly extraAliases?: readonly string[];
  /** How contacts' SIP addresses are written, for the users' help texts (e.g. user*server@xmpp.example.com). */
  readonly addressHint: string;
  /** Whether an account (its extUser) can reach a contact or room id; absent: any account of the network can. */
  reaches?(extUser: string, id: string): boolean;
  /** The account id as stored, normalized; undefined when it is not one of this network. */
  normalizeUser(extUser: string): string | undefined;
  /** The contact a SIP request-URI under the alias stands for. */
  contactOf(target: SipUri): string | undefined;
  /** The SIP address (under the alias) SIP users see a contact as. */
  sipAddressOf(contact: string): string | undefined;
  /**
   * The group chat a SIP request-URI under the alias names, with the nick it carries if any
   * (jabber seed: nick<delim>room<delim>conference.server); undefined when it names none.
   * A plain contact address may still be a room the session is in: the service asks session.rooms.
   */
  roomOf(target: SipUri): { room: string; nick?: string } | undefined;
  /** The SIP address (under the alias) of a group chat, from which its traffic reaches SIP users. */
  roomAddressOf(room: string): string | undefined;
  /** The servers the operator configured, by the name accounts are written with (an XMPP domain, an IRC network's name). */
  readonly servers: ReadonlyMap<string, ConfiguredServer>;
  /** Whether accounts on servers not in `servers` connect where the operator says too (XMPP's jaddress). */
  readonly servesEveryServer: boolean;
  /** The name of the server an account (extUser, normalized) is on: its XMPP domain, its IRC network. */
  serverNameOf(extUser: string): string;
  /** Where a session of the account connects and with which TLS mode, as it really does. */
  endpointOf(account: Pick<SessionAccount, 'extUser' | 'server' | 'port' | 'tls'>): Endpoint;
  createSession(account: SessionAccount, settings: SessionSettings): NetworkSession;
}
