// Row shapes of the tables as Kysely sees them. Column names are the SQL ones;
// repositories map rows to the camelCase records of types.ts.
// A module adding tables in a new migration adds their row types here too.
import type { Generated } from 'kysely';

export interface UsersTable {
  username: string;
  domain: string;
  ha1_md5: string;
  ha1_sha256: string;
  created_at: number;
}

export interface LocationsTable {
  aor: string;
  contact: string;
  expires_at: number;
  q: number;
  call_id: string;
  cseq: number;
  source: string;
  connection_id: string | null;
  instance: string | null;
  reg_id: number | null;
  user_agent: string | null;
  path: string | null;
  updated_at: number;
}

export interface KnownAorsTable {
  aor: string;
  first_seen: number;
}

export interface OfflineMessagesTable {
  id: Generated<number>;
  aor: string;
  from_header: string;
  to_header: string;
  content_type: string;
  body: Buffer;
  received_at: number;
  sent_at: number | null;
  expires_at: number;
  /** The request it came in as (RequestOrigin): all three or none. */
  origin_call_id: string | null;
  origin_from_tag: string | null;
  origin_cseq: number | null;
  /** 1: delivered to the devices of its message_deliveries rows; 0: to whichever device of the AOR registers next. */
  per_device: Generated<number>;
  /** 1: a copy of what the AOR sent from another device (own-message sync). */
  sent_copy: Generated<number>;
}

/** A key Parley drew once and keeps across restarts (the one sealing temporary GRUUs). */
export interface ServerKeysTable {
  name: string;
  value: Buffer;
}

/** A device an AOR was seen registering from: its instance URN, or its contact without one. */
export interface DevicesTable {
  aor: string;
  device: string;
  contact: string;
  user_agent: string | null;
  last_seen: number;
}

/** A stored message a device has still to take; priority 1 (non-urgent) waits behind 0. */
export interface MessageDeliveriesTable {
  message_id: number;
  aor: string;
  device: string;
  priority: number;
}

export interface PresencePublicationsTable {
  id: Generated<number>;
  presentity: string;
  etag: string;
  /** The PIDF document as published. */
  document: string;
  expires_at: number;
}

/** A SUBSCRIBE dialog of the presence agent; NOTIFYs go From local_header To remote_header. */
export interface PresenceSubscriptionsTable {
  call_id: string;
  local_tag: string;
  remote_tag: string;
  presentity: string;
  watcher: string;
  local_header: string;
  remote_header: string;
  event: string;
  /** JSON array of the Record-Route values, in order. */
  route_set: string;
  contact: string;
  remote_target: string;
  /** "proto:host:port" the latest SUBSCRIBE came from. */
  source: string;
  remote_cseq: number;
  local_cseq: number;
  expires_at: number;
}

/** What a gateway (`source`) last reported of an address of its network. */
export interface PresenceGatewayStatesTable {
  source: string;
  presentity: string;
  /** JSON of the PresenceState. */
  state: string;
}

/** A user of a gateway's network (`network`) watching a SIP user (`presentity`), who knows it as `alias`. */
export interface PresenceGatewayWatchersTable {
  network: string;
  presentity: string;
  watcher: string;
  alias: string;
}

/** Kamailio imc schema: flag bits as in its imc_mng.h. */
export interface ImcRoomsTable {
  id: Generated<number>;
  name: string;
  domain: string;
  flag: number;
}

export interface ImcMembersTable {
  id: Generated<number>;
  username: string;
  domain: string;
  /** The room URI, "sip:name@domain", as Kamailio writes it. */
  room: string;
  flag: number;
}

export interface ParleyImcRoomsTable {
  name: string;
  domain: string;
  topic: string | null;
  created_at: number;
}

export interface ParleyImcMembersTable {
  room: string;
  username: string;
  domain: string;
  nick: string | null;
}

export interface ParleyImcHistoryTable {
  id: Generated<number>;
  room: string;
  sender: string;
  nick: string;
  content_type: string;
  body: Buffer;
  created_at: number;
}

/** Kamailio purple's account map, plus Parley's columns; ext_pass is sealed (AES-256-GCM). */
export interface PurplemapTable {
  id: Generated<number>;
  sip_user: string;
  ext_user: string;
  ext_prot: string;
  ext_pass: string | null;
  server: string | null;
  port: number | null;
  tls: string;
  /** 1 or 0 (an integer on both drivers). */
  enabled: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface GatewayRoomsTable {
  account_id: number;
  room: string;
  nick: string;
}

export interface OutboxTable {
  id: Generated<number>;
  kind: string;
  /** JSON array of the recipients' keys. */
  recipients: string;
  payload: Buffer;
  created_at: number;
}

export interface OutboxCursorsTable {
  kind: string;
  recipient: string;
  done_id: number;
}

/** What a gateway remembers of a message it carried, for a receipt about it still to come. */
export interface ReceiptIdsTable {
  id: Generated<number>;
  /** Which side's id `message_id` is (a gateway's own names). */
  direction: string;
  message_id: string;
  /** The SIP user the receipt concerns: each is bounded on its own. */
  owner: string;
  /** JSON of the gateway's entry. */
  entry: string;
  created_at: number;
}

export interface Database {
  purplemap: PurplemapTable;
  imc_rooms: ImcRoomsTable;
  imc_members: ImcMembersTable;
  parley_imc_rooms: ParleyImcRoomsTable;
  parley_imc_members: ParleyImcMembersTable;
  parley_imc_history: ParleyImcHistoryTable;
  users: UsersTable;
  locations: LocationsTable;
  known_aors: KnownAorsTable;
  offline_messages: OfflineMessagesTable;
  devices: DevicesTable;
  message_deliveries: MessageDeliveriesTable;
  presence_publications: PresencePublicationsTable;
  presence_subscriptions: PresenceSubscriptionsTable;
  presence_gateway_states: PresenceGatewayStatesTable;
  presence_gateway_watchers: PresenceGatewayWatchersTable;
  outbox: OutboxTable;
  outbox_cursors: OutboxCursorsTable;
  gateway_rooms: GatewayRoomsTable;
  server_keys: ServerKeysTable;
  receipt_ids: ReceiptIdsTable;
}
