// The typed interfaces every Parley module uses to reach persistent state.
// Protocol code depends on these only, never on the SQL behind them.
import type { Address } from '../sip/transport/types.js';

/** A digest user. HA1 values are stored, never the password. */
export interface UserRecord {
  username: string;
  domain: string;
  /** hex MD5(username:realm:password) */
  ha1Md5: string;
  /** hex SHA-256(username:realm:password) */
  ha1Sha256: string;
  createdAt: number;
}

export interface UserStore {
  /** Inserts or replaces the user's credentials. */
  put(user: Omit<UserRecord, 'createdAt'>): Promise<void>;
  get(username: string, domain: string): Promise<UserRecord | undefined>;
  /** The user as read lately (see UserRepository), without waiting; undefined when not cached: get() tells. */
  cached?(username: string, domain: string): UserRecord | undefined;
  /** True when a user was removed. */
  remove(username: string, domain: string): Promise<boolean>;
  list(domain?: string): Promise<UserRecord[]>;
}

/** The instance URN of a `+sip.instance` value: `"<urn:uuid:...>"` loses its quotes and brackets, case does not matter. */
export function instanceUrn(value: string): string {
  // Read for every device of every message kept per device: no regular expression.
  let start = 0;
  let end = value.length;
  if (value.charCodeAt(start) === 34 /* " */) start++;
  if (value.charCodeAt(start) === 60 /* < */) start++;
  if (end > start && value.charCodeAt(end - 1) === 34 /* " */) end--;
  if (end > start && value.charCodeAt(end - 1) === 62 /* > */) end--;
  return value.slice(start, end).toLowerCase();
}

/**
 * Whether a device key is an instance URN (RFC 5627 §4.2: a +sip.instance is a URN) rather than a
 * contact's address (a SIP URI): the one definition of a device known by +sip.instance.
 */
export function isInstanceDevice(device: string): boolean {
  return device.startsWith('urn:');
}

/** The key of the device a binding is of: its instance URN, or its contact's address when it has none (contactDevice). */
export function deviceKey(binding: { contact: string; instance?: string }): string {
  return binding.instance ? instanceUrn(binding.instance) : contactDevice(binding.contact);
}

/**
 * The device a contact registered without +sip.instance is: its URI without parameters or headers
 * (scheme, user, host and port, as registered). A client that registers again from the same address
 * with other parameters (a new `rinstance`, new push parameters) is the same device; one at another
 * address (a new port, a new TCP connection's port) is another.
 */
export function contactDevice(contact: string): string {
  // A user part may hold ';' and '?' (RFC 3261 user-unreserved): parameters begin after the host.
  for (let i = contact.indexOf('@') + 1; i < contact.length; i++) {
    const code = contact.charCodeAt(i);
    if (code === 59 /* ; */ || code === 63 /* ? */) return contact.slice(0, i);
  }
  return contact;
}

/**
 * Whether `contact` (registered without +sip.instance) is of the device `device`, a contact's
 * address made by contactDevice: whether that is contactDevice(contact), found without cutting the
 * contact's parameters off (run for every message to a user's only device, DeviceDelivery.soleDevice).
 */
export function isContactOfDevice(contact: string, device: string): boolean {
  const next = contact.charCodeAt(device.length);
  return contact.startsWith(device) && (Number.isNaN(next) || next === 59 /* ; */ || next === 63 /* ? */);
}

/** One registered contact of an address-of-record (RFC 3261 §10). */
export interface Binding {
  /** "user@domain", lower-cased domain */
  aor: string;
  /** The Contact URI exactly as registered. */
  contact: string;
  /** Absolute expiry, ms since the epoch. */
  expiresAt: number;
  q: number;
  callId: string;
  cseq: number;
  /** Where the REGISTER came from; requests go there (NAT, connection reuse). Stored as "proto:host:port". */
  source: Address;
  /** Connection id of the stream transport the REGISTER arrived on, when any. Not meaningful after a restart. */
  connectionId?: string;
  /** +sip.instance and reg-id (RFC 5626) when the client sent them. */
  instance?: string;
  regId?: number;
  userAgent?: string;
  /** Path header values (RFC 3327), joined with ", ". */
  path?: string;
  updatedAt: number;
}

/** What a caller of LocationStore.replace knows of the AOR's rows in the store: see there. */
export type StoredBefore = 'bound' | 'unbound' | undefined;

export interface LocationStore {
  /**
   * Atomically replaces all bindings of an AOR (an empty list removes them) and marks the AOR as
   * known. `before`, what the caller knows of the AOR's rows, saves a statement: 'bound', it has
   * bindings stored (so it is known already); 'unbound', it has no row stored (nothing to delete);
   * undefined, nothing is known. Resolves once that is durable (with nothing to read). 'unbound'
   * is only true of a store written by this process alone: with other writers (nodes sharing the
   * database) the caller cannot know, and passes undefined.
   */
  replace(aor: string, bindings: readonly Binding[], before?: StoredBefore): Promise<unknown>;
  /** Every stored binding, to warm the in-memory location table at start. */
  listAll(): Promise<Binding[]>;
  /** Removes bindings whose expiresAt <= now; returns how many. */
  removeExpired(now: number): Promise<number>;
  /** True when the AOR has ever registered (so a message to it is stored rather than refused with 404). */
  isKnown(aor: string): Promise<boolean>;
  /** The 32-byte random key kept under `name`, drawn and stored the first time it is asked for (by any process). */
  serverKey(name: string): Promise<Buffer>;
}

/** A MESSAGE kept for a recipient who was not reachable (RFC 3428 offline storage). */
export interface StoredMessage {
  id: number;
  /** Recipient AOR, "user@domain". */
  aor: string;
  /** From header value of the original request (name-addr with tag stripped). */
  fromHeader: string;
  /** To header value of the original request (tag stripped). */
  toHeader: string;
  contentType: string;
  body: Buffer;
  /** When Parley accepted it, ms since the epoch: what the per-user limit and the expiry count from. */
  receivedAt: number;
  /** The sender's Date header, when it had a valid one: sent back as the Date on delivery instead of receivedAt. */
  sentAt?: number;
  expiresAt: number;
  /** What names the request it came in: a retransmission stored again after a restart is delivered under the same identity. */
  origin?: RequestOrigin;
  /** A copy of what the AOR itself sent from another of its devices (own-message sync): delivered marked as sent. */
  sentCopy?: boolean;
}

/** The Call-ID, From tag and CSeq of a request. */
export interface RequestOrigin {
  callId: string;
  fromTag: string;
  cseq: number;
}

export interface OfflineStore {
  /** Inserts unless the recipient already has maxPerUser messages waiting at receivedAt; returns the id, or 'full'. Atomic. */
  add(message: Omit<StoredMessage, 'id'>, maxPerUser: number): Promise<number | 'full'>;
  /**
   * Up to `page.limit` messages waiting for an AOR with an id above `page.afterId`, oldest first, not
   * expired; with `anyDevice`, only those for whichever device registers next (not per device).
   */
  listFor(aor: string, now: number, page: { afterId: number; limit: number; anyDevice?: boolean }): Promise<StoredMessage[]>;
  /**
   * Whether messages for whichever device registers next may wait for an AOR: false only when the
   * store surely holds none (then listFor with anyDevice needs not be asked). No store read.
   */
  mayHaveWaiting(aor: string): boolean;
  /**
   * Reads again which users have messages waiting, and has each user's stored messages counted again
   * for the per-user limit: what another writer of the store (a second Parley) stored is seen.
   */
  rereadWaiting(): Promise<void>;
  remove(id: number): Promise<void>;
  removeExpired(now: number): Promise<number>;
  count(aor: string): Promise<number>;
}

/** A device an AOR was seen registering from, remembered after it unregistered. */
export interface RememberedDevice {
  aor: string;
  /** Its instance URN, or its contact when it registered without one. */
  device: string;
  /** The contact it last registered. */
  contact: string;
  userAgent?: string;
  /** When it last registered, ms since the epoch. */
  lastSeen: number;
}

/** A stored message one device has still to take. */
export interface PendingDelivery {
  message: StoredMessage;
  device: string;
  /** 0 normal, 1 non-urgent: a device gets its normal messages first. */
  priority: number;
}

/** Where a device's queue was read up to: its next page starts after this. */
export interface DeliveryCursor {
  priority: number;
  messageId: number;
}

/**
 * Per-device delivery of stored messages: each message is stored once (in the offline store's
 * table, counted in its per-user limit and expiry) with one delivery row per device to take it.
 */
export interface DeliveryStore {
  /** The devices of an AOR seen registering at or after `since`. */
  devicesOf(aor: string, since: number): Promise<RememberedDevice[]>;
  /** The AORs with a device seen registering at or after `since`. */
  aorsWithDevices(since: number): Promise<string[]>;
  /**
   * `device` of `aor` (registering from a new address) is what `from` were: what waits for them
   * waits for it (with `receivedBefore`, only what was received before then; with `sharedUpTo`, only
   * what came after the messages share() gave it already), and they are
   * forgotten (see relay/takeover.ts). Committed in the order writes were asked for: after the
   * messages and deliveries done asked for before, before the deliveries done asked for after.
   */
  takeOver(aor: string, device: string, from: readonly string[], receivedBefore?: number, sharedUpTo?: number): Promise<void>;
  /**
   * What waits for `from` of `aor` waits for `device` too (a copy of each row; `from` keeps its own):
   * returns the highest message id shared, 0 when nothing waited. A later takeOver of `from` by
   * `device` given it as `sharedUpTo` moves only the rows of later messages, the others go.
   */
  share(aor: string, from: string, device: string): Promise<number>;
  /**
   * Whether the device may have deliveries waiting: false only once the store was read and nothing
   * was stored for it since a read of its queue found none. Exact while Parley is the store's only
   * writer; another writer's deliveries are seen from the next pendingCounts() of every AOR.
   */
  mayHaveWaiting(aor: string, device: string): boolean;
  /** Changes the contact a device is remembered with (its push parameters dropped). */
  setContact(aor: string, device: string, contact: string): Promise<void>;
  /**
   * Stores a message with a delivery row for each device, unless the recipient has maxPerUser
   * waiting; returns its id, or 'full'. Atomic. Messages get ids in the order they were asked for.
   * `inserted` is told the id before the rows can be read (again with another id when the write is
   * run again, after its batch failed).
   */
  add(message: Omit<StoredMessage, 'id'>, devices: string[], priority: number, maxPerUser: number, inserted?: (id: number) => void): Promise<number | 'full'>;
  /** Up to `limit` unexpired messages a device has still to take, normal before non-urgent, then oldest first, after `cursor`. */
  pendingFor(aor: string, device: string, now: number, cursor: DeliveryCursor | undefined, limit: number): Promise<PendingDelivery[]>;
  /** The device took these messages (or refused them for good): their rows go, and each message with its last row. */
  done(messageIds: readonly number[], device: string): Promise<void>;
  /**
   * Pending deliveries per device of an AOR, every AOR when absent: then also what mayHaveWaiting
   * knows, so that deliveries another writer of the store stored are seen.
   */
  pendingCounts(aor?: string): Promise<Array<{ aor: string; device: string; pending: number }>>;
  /**
   * Forgets devices last seen before `forgetBefore` with what they had pending, and rows of messages
   * gone (expired); returns the AORs that had a device among them and have none left.
   */
  removeStale(forgetBefore: number): Promise<string[]>;
}

/** A presence publication (RFC 3903) as kept across restarts. */
export interface StoredPublication {
  /** Given by the store; a presentity's publications compose in id order, the order they were first made. */
  id: number;
  /** "user@domain". */
  presentity: string;
  etag: string;
  /** The PIDF document as published. */
  document: string;
  expiresAt: number;
}

export type PublicationChange = Pick<StoredPublication, 'etag' | 'document' | 'expiresAt'>;

/** The three identifiers of a SUBSCRIBE dialog; localTag is Parley's. */
export interface DialogId {
  callId: string;
  localTag: string;
  remoteTag: string;
}

/** A presence subscription (RFC 6665 dialog) as kept across restarts. */
export interface StoredSubscription extends DialogId {
  presentity: string;
  watcher: string;
  /** The From of NOTIFYs: the SUBSCRIBE's To with Parley's tag. */
  localHeader: string;
  /** The To of NOTIFYs: the SUBSCRIBE's From. */
  remoteHeader: string;
  /** The SUBSCRIBE's Event header. */
  event: string;
  routeSet: string[];
  /** The Contact Parley gave. */
  contact: string;
  /** The subscriber's Contact URI. */
  remoteTarget: string;
  /** Where the latest SUBSCRIBE came from, "proto:host:port". */
  source: string;
  remoteCSeq: number;
  /** No NOTIFY of the dialog has used a CSeq above this one. */
  localCSeq: number;
  expiresAt: number;
}

/** What a gateway (`source`) reported of an address of its network. */
export interface StoredGatewayState {
  source: string;
  /** "user@domain". */
  presentity: string;
  /** The PresenceState, as JSON. */
  state: string;
}

/** A user of a gateway's network watching a SIP user. */
export interface StoredGatewayWatcher {
  /** The gateway's network ("xmpp"). */
  network: string;
  /** The SIP user watched, "user@domain". */
  presentity: string;
  /** The watcher's address on its network (a bare JID). */
  watcher: string;
  /** The address the watcher knows the SIP user by on its network. */
  alias: string;
}

/**
 * The presence agent's publications and subscriptions. Writes are committed in the order they are
 * asked for, a burst of them together; each resolves once committed.
 */
export interface PresenceStore {
  /** Inserts a publication; resolves with its id. */
  addPublication(publication: Omit<StoredPublication, 'id'>): Promise<number>;
  updatePublication(id: number, change: PublicationChange): Promise<void>;
  removePublication(id: number): Promise<void>;
  /** Inserts the subscription, or replaces the one of the same dialog. */
  putSubscription(subscription: StoredSubscription): Promise<void>;
  /** Raises the CSeq NOTIFYs of the dialog may use up to; nothing when the dialog is not stored. */
  setNotifyCSeq(dialog: DialogId, localCSeq: number): Promise<void>;
  removeSubscription(dialog: DialogId): Promise<void>;
  /** Sets what a gateway reported of an address, or removes it with null. */
  putGatewayState(source: string, presentity: string, state: string | null): Promise<void>;
  /** Inserts a watcher of a gateway's network, or replaces its alias. */
  putGatewayWatcher(watcher: StoredGatewayWatcher): Promise<void>;
  removeGatewayWatcher(watcher: Omit<StoredGatewayWatcher, 'alias'>): Promise<void>;
  /** The watchers of a gateway's network. */
  loadGatewayWatchers(network: string): Promise<StoredGatewayWatcher[]>;
  /** Removes what has expired at `now`, then returns the rest: publications in id order, and what the gateways reported. */
  loadPresence(now: number): Promise<{ publications: StoredPublication[]; subscriptions: StoredSubscription[]; gatewayStates: StoredGatewayState[] }>;
}

/** A message acknowledged to its sender and not yet delivered to all its recipients. */
export interface OutboxRecord {
  id: number;
  /** Which module's message ("room", "xmpp", "gateway"): each loads its own. */
  kind: string;
  /** Keys of the recipients, each with its own ordered delivery. */
  recipients: string[];
  /** The message as its module encoded it. */
  payload: Buffer;
  createdAt: number;
}

/** Delivery progress: rows done for every recipient, and per recipient the last row done for it. */
export interface OutboxProgress {
  finished: number[];
  cursors: Array<{ kind: string; recipient: string; doneId: number }>;
}

export interface OutboxStore {
  /**
   * Stores a message; resolves with its id once committed. Adds and progress asked for while a
   * commit is under way share the next transaction (group commit); ids follow the order of the calls.
   * `committed` may be told the id earlier: once the row is committed, before the disk sync
   * (where the event loop commits), so that delivery need not wait for the disk.
   */
  add(record: Omit<OutboxRecord, 'id'>, committed?: (id: number) => void): Promise<number>;
  /** Deletes finished rows and advances cursors, in the same group commit as adds. */
  record(progress: OutboxProgress): Promise<void>;
  /** The rows of a kind still pending, oldest first, and the cursors of their recipients. */
  pending(kind: string): Promise<{ records: OutboxRecord[]; cursors: Map<string, number> }>;
}

/** What a gateway remembers of a message it carried, for a receipt about it still to come. */
export interface StoredReceiptId {
  /** Which side's id `messageId` is, in the gateway's own words. */
  direction: string;
  messageId: string;
  /** The SIP user the receipt concerns ("user@domain"). */
  owner: string;
  /** The gateway's entry, as JSON. */
  entry: string;
  createdAt: number;
}

/**
 * Receipt correlations of the gateways. Writes are group-committed in the order asked for, each
 * resolving once committed.
 */
export interface ReceiptIdStore {
  /**
   * Remembers an id (replacing one of the same direction and id), then keeps only the `maxPerOwner`
   * newest of its owner. `committed` may be told earlier, as OutboxStore.add's is.
   */
  put(receipt: StoredReceiptId, maxPerOwner: number, committed?: () => void): Promise<void>;
  /** The entry remembered for an id, if any and created at `notBefore` or later. */
  get(direction: string, messageId: string, notBefore: number): Promise<StoredReceiptId | undefined>;
  /** Replaces the entry of an id, which keeps its time and place. */
  update(direction: string, messageId: string, entry: string): Promise<void>;
  remove(direction: string, messageId: string): Promise<void>;
  /** Forgets the ids created before `before`; resolves with how many. */
  expire(before: number): Promise<number>;
}

export type RoomRole = 'owner' | 'admin' | 'member';

/** A chat room; `private` rooms admit invited users only. */
export interface RoomRecord {
  name: string;
  domain: string;
  private: boolean;
  topic?: string;
  createdAt: number;
}

/** A room member. `invited` members were invited and have not accepted yet. */
export interface RoomMemberRecord {
  roomName: string;
  roomDomain: string;
  username: string;
  domain: string;
  role: RoomRole;
  invited: boolean;
  nick?: string;
}

export interface RoomHistoryEntry {
  roomName: string;
  roomDomain: string;
  /** "user@domain" of the sender. */
  sender: string;
  nick: string;
  contentType: string;
  body: Buffer;
  at: number;
}

/**
 * Rooms and members, kept in tables compatible with Kamailio's imc module (imc_rooms, imc_members,
 * same columns and flag bits) plus Parley's own tables for topics, nicknames and history.
 * Every method resolves only once its change is committed.
 */
export interface RoomStore {
  loadAll(): Promise<{ rooms: RoomRecord[]; members: RoomMemberRecord[] }>;
  createRoom(room: RoomRecord, owner: RoomMemberRecord): Promise<void>;
  destroyRoom(name: string, domain: string): Promise<void>;
  /** Inserts or updates a member (role, invited flag, nick). */
  putMember(member: RoomMemberRecord): Promise<void>;
  removeMember(roomName: string, roomDomain: string, username: string, domain: string): Promise<void>;
  setTopic(name: string, domain: string, topic: string | undefined): Promise<void>;
  appendHistory(entries: RoomHistoryEntry[]): Promise<void>;
  /** The last `limit` entries of a room, oldest first; older ones beyond `limit` are deleted. */
  recentHistory(name: string, domain: string, limit: number): Promise<RoomHistoryEntry[]>;
}

export interface RoomTables {
  /** Kamailio's rooms_table parameter. */
  rooms: string;
  /** Kamailio's members_table parameter. */
  members: string;
}

/** How a gateway session secures its connection: STARTTLS required, TLS from the first byte, or none. */
export type GatewayTlsMode = 'starttls' | 'direct' | 'none';

/** A SIP user's account on another network (a row of `purplemap`). */
export interface GatewayAccount {
  id: number;
  /** The SIP user, "sip:alice@example.com" as in Kamailio's purplemap. */
  sipUser: string;
  /** The account on the other network, e.g. "alice@example.net". */
  extUser: string;
  /** Network id ("xmpp", "irc"), or a seed alias ("prpl-jabber") in imported rows. */
  extProt: string;
  /** The password sealed by the gateway's key; never the password itself. */
  extPass?: string;
  /** Server to connect to; absent: the account's own domain. */
  server?: string;
  port?: number;
  tls: GatewayTlsMode;
  /** false once the network refused the password, until the account is linked again. */
  enabled: boolean;
  lastError?: string;
  createdAt: number;
  updatedAt: number;
}

export type NewGatewayAccount = Pick<GatewayAccount, 'sipUser' | 'extUser' | 'extProt' | 'extPass' | 'server' | 'port' | 'tls'>;

export interface GatewayAccountStore {
  /** Inserts the account, or replaces password, server, port and TLS mode of the same (sipUser, extProt, extUser), enabling it and clearing its error. */
  put(account: NewGatewayAccount): Promise<GatewayAccount>;
  get(id: number): Promise<GatewayAccount | undefined>;
  /** The accounts of a SIP user, by id. */
  listFor(sipUser: string): Promise<GatewayAccount[]>;
  /** The accounts with this external id, on any network (the purple mapping: who is alice@example.net on SIP). */
  withExtUser(extUser: string): Promise<GatewayAccount[]>;
  list(): Promise<GatewayAccount[]>;
  /** True when an account was removed. */
  remove(id: number): Promise<boolean>;
  setStatus(id: number, status: { enabled: boolean; lastError: string | null }): Promise<void>;
}

/** The group chats linked accounts joined through the gateway, joined again after a restart. */
export interface GatewayRoomStore {
  /** Records that the account is in `room` as `nick` (replacing the nick if it was there). */
  add(accountId: number, room: string, nick: string): Promise<void>;
  remove(accountId: number, room: string): Promise<void>;
  /** Forgets every room of the account (unlinked). */
  removeAll(accountId: number): Promise<void>;
  /** The account's rooms with its nick in each. */
  listFor(accountId: number): Promise<Array<{ room: string; nick: string }>>;
}

/** A row of Kamailio purple's own purplemap (its columns only; ext_pass in the clear), as an import reads it. */
export interface KamailioAccountRow {
  id: number;
  sipUser: string;
  extUser: string;
  extProt: string;
  extPass?: string;
}

export type StoreDriver = 'sqlite' | 'postgres';

/** The store unavailable (locked, restarting, unreachable): since when, and the driver's reason. */
export interface StoreOutage {
  since: number;
  reason: string;
}

export interface Store {
  readonly driver: StoreDriver;
  readonly users: UserStore;
  readonly locations: LocationStore;
  readonly offline: OfflineStore;
  /** Devices remembered per AOR and what each has still to take. */
  readonly deliveries: DeliveryStore;
  readonly presence: PresenceStore;
  /** Acknowledged messages not yet delivered everywhere (rooms, gateways). */
  readonly outbox: OutboxStore;
  /** The per-user gateway's account map (purplemap). */
  readonly gatewayAccounts: GatewayAccountStore;
  /** The account map under another table name (gateway.db_table), created when missing; purplemap: gatewayAccounts. */
  gatewayAccountsIn(table: string): Promise<GatewayAccountStore>;
  /** The group chats of the gateway's accounts. */
  readonly gatewayRooms: GatewayRoomStore;
  /** Which message is which across a gateway, for receipts still to come. */
  readonly receiptIds: ReceiptIdStore;
  /** The room tables under the configured names, created when missing. */
  rooms(tables: RoomTables): Promise<RoomStore>;
  /** The outage under way, from the last statement's failure until a write gets through; undefined while available. */
  outage(): StoreOutage | undefined;
  /** What a SQLite file's writer thread has done since it started (bench/hotpath.ts); undefined without one. */
  writerStats?(): Promise<WriterStats | undefined>;
  close(): Promise<void>;
}

/** What a SQLite file's writer thread has done since it started, to measure what its writes cost (bench/hotpath.ts). */
export interface WriterStats {
  /** CPU time of the thread itself (µs, user and system): not the syncs, which run on libuv's pool. */
  cpuMicros: number;
  /** Batches received from the main thread. */
  batches: number;
  /** Transactions committed, with every batch that arrived meanwhile. */
  transactions: number;
  writes: number;
  statements: number;
  /** Syncs of the log, each covering every transaction committed before it. */
  syncs: number;
}

/** UNAVAILABLE: the database is locked, restarting or unreachable for now; the same statement may succeed later. */
export type StoreErrorCode = 'BAD_URL' | 'CONNECT_FAILED' | 'MIGRATION_FAILED' | 'UNAVAILABLE';

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}
