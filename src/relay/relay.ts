// MESSAGE relay (RFC 3428): a request for a local user is forked statefully to every live contact
// (the first 2xx wins), stored for later when nobody can take it, and refused when the user is
// unknown. For a user with remembered devices it is written once, for the devices that did not
// take it (devices.ts).
// The same path serves messages Parley itself originates (rooms, gateways), so they too reach
// WebSocket members and the offline store.
import type { Logger } from 'pino';
import { isStoreUnavailable, logBackgroundFailure, type DeliveryStore, type OfflineStore, type StoredMessage } from '../store/index.js';
import {
  type IncomingRequest, type Peer, type Protocol, RELIABLE, SipMessage, type SipStack, type SipUri, createResponse, parseNameAddr, formatNameAddr,
  parseUri, randomToken,
} from '../sip/index.js';
import { type Header, fnv1a, withHeadersOf } from '../sip/message.js';
import { safeHeaderValue } from '../sip/headers.js';
import type { Flow, Registrar } from '../registrar/registrar.js';
import type { Outbox } from './outbox.js';
import { requestOrigin } from './resend.js';
import { digestRealm } from '../registrar/digest.js';
import type { Device } from '../registrar/gruu.js';
import type { DeliveryTurn } from './ordered.js';
import { stripPushParams, type PushService } from '../push/index.js';
import { ACCEPTED, DeviceDelivery, STORE_UNAVAILABLE, UNREACHABLE } from './devices.js';
import { storedRequest, stripToUri } from './stored-request.js';
import { SentCopies, syncsSent, type SyncSentSettings } from './sync.js';
import { ISCOMPOSING_TYPE, mediaTypeOf } from '../util/media-types.js';
import type { ReceiveBacklog } from '../sip/transport/receive-backlog.js';

export interface RelayOptions {
  domains: Set<string>;
  /** Digest realms of those domains: credentials for them are used up here, never passed on (RFC 3261 §22.3). */
  realms: ReadonlySet<string>;
  outboundProxy?: string;
  foreignDomainStatus: number;
  maxBody: number;
  /** Whether a local AOR belongs to a user (provisioned or ever registered): unknown ones get 404. */
  isKnownUser(aor: string): Promise<boolean>;
  /** Seconds to wait for the final response of a forwarded request. */
  forkTimeout: number;
  offline: { enabled: boolean; maxPerUser: number; expires: number };
  /** Ordered deliveries (OrderedDeliveries) under way at once to one recipient, by the transport their requests go over. */
  deliveryWindow: { stream: number; udp: number };
  /**
   * Seconds a device is remembered after it last registered, the sender waits for one to take a
   * message, and a new message starts no redelivery to a registered device after one failed; push wakes away devices.
   */
  devices: { remember: number; acceptTimeout: number; redeliveryBackoff: number; push?: PushService };
  /** Own-message sync: whether a local domain's users get copies of what they send on their other devices, by default and per domain. */
  syncSent: SyncSentSettings;
  /**
   * Overload: while `receiveBacklog.share` (the fullest UDP listener's receive buffer waiting to be
   * read) is at least `refuseAt`, new MESSAGEs get 503 with Retry-After; absent: never.
   */
  overload?: { receiveBacklog: Pick<ReceiveBacklog, 'share' | 'watch'>; refuseAt: number };
}

/** What happened to a message Parley sent on someone's behalf. */
export interface DeliveryResult {
  status: number;
  reason: string;
  /** true when it went to the offline store rather than a device. */
  stored: boolean;
}

export interface OutgoingMessage {
  /** From header value (name-addr or URI), e.g. the room URI. */
  from: string;
  /** Request-URI and To of the recipient. */
  to: string;
  body: Buffer | string;
  contentType?: string;
  headers?: Header[];
  /** Original time of the message, sent as the Date header. */
  date?: Date;
  /** Next hop set by the operator for a recipient in another domain, instead of relay.outbound_proxy; without either, nothing is sent. */
  outboundProxy?: string;
  /** Call-ID of the MESSAGE (e.g. an XMPP thread); a new one when absent. */
  callId?: string;
  /** From tag (with callId, what makes a copy sent again the same request: resend.ts); a new one when absent. */
  fromTag?: string;
  /** false for what is stale once late (an isComposing state): never stored offline, 480 when no device takes it now. */
  storeOffline?: boolean;
  /**
   * The sender's outbox keeps the message until send() resolves (with a turn): what the recipient's
   * devices did not take is stored after the recipient's earlier messages ended, and a store that
   * is unavailable then makes it 503 (the outbox tries again) even when a device took it.
   */
  keptByOutbox?: boolean;
}

/** What a message says to each of its recipients alike (Relay.prepare): all of an OutgoingMessage but whom it is for and as which request. */
export type MessageContent = Omit<OutgoingMessage, 'to' | 'callId' | 'fromTag' | 'keptByOutbox'>;

/** One recipient of a prepared message: the rest of an OutgoingMessage. */
export type Recipient = Pick<OutgoingMessage, 'to' | 'callId' | 'fromTag' | 'keptByOutbox'>;

/** Stands in for the recipient's URI in what a prepared message shares. */
const PLACEHOLDER_URI = 'sip:x';

/**
 * A MESSAGE Parley originates, for any number of recipients. Its headers are made and checked once;
 * a recipient's request shares them but for its From (tag), To and Call-ID. The wire form of a
 * forwarded copy is encoded once too, from its Max-Forwards on, when a copy is first written that
 * way: each copy writes only its request line, Via, From, To and Call-ID before those shared bytes.
 * A message whose copies all go another way (to a foreign domain, or a device with a Path) never
 * encodes them.
 */
export class PreparedMessage {
  /** Where From, To and Call-ID are in the headers. */
  private readonly at: { from: number; to: number; callId: number };
  /** The template's From up to its tag: each copy puts its own after it. */
  private readonly untaggedFrom: string;
  /** The forwarded copy's Max-Forwards value, and what follows its Call-ID down to the end of the body; made by the first wire(). */
  private forwarded: { maxForwards: string; tail: Buffer } | undefined;

  constructor(
    /** The request with a placeholder recipient, From tag and Call-ID. */
    private readonly template: SipMessage,
    /** The From carries its own tag: every copy has it as it is. */
    readonly tagged: boolean,
    readonly storeOffline: boolean,
    readonly outboundProxy: string | undefined,
    /** The realms whose credentials do not travel on (forwardCopy). */
    private readonly realms: ReadonlySet<string>,
  ) {
    const names = template.headers.map((header) => header.name);
    this.at = { from: names.indexOf('from'), to: names.indexOf('to'), callId: names.indexOf('call-id') };
    const from = template.headers[this.at.from]!.value;
    this.untaggedFrom = from.slice(0, from.lastIndexOf(';tag='));
  }

  /** The request to `to` (a URI or name-addr): the template's headers with its own From tag (unless tagged), To and Call-ID. */
  requestFor(to: string, fromTag: string | undefined, callId: string): SipMessage {
    const template = this.template;
    const headers = template.headers.slice();
    if (fromTag !== undefined) headers[this.at.from] = { name: 'from', value: `${this.untaggedFrom};tag=${safeHeaderValue(fromTag)}` };
    headers[this.at.to] = { name: 'to', value: safeHeaderValue(to) };
    headers[this.at.callId] = { name: 'call-id', value: safeHeaderValue(callId) };
    return withHeadersOf(template, headers, { method: template.method, uri: stripToUri(to), body: template.body });
  }

  /** The wire form of `request` (made by requestFor) forwarded to `requestUri` with `via` on top: what forwardCopy and toBuffer would write. */
  wire(request: SipMessage, requestUri: string, via: string): Buffer {
    const headers = request.headers;
    const forwarded = (this.forwarded ??= this.encodeForwarded());
    const head =
      `${request.method} ${safeHeaderValue(requestUri)} SIP/2.0\r\nVia: ${via}\r\nMax-Forwards: ${forwarded.maxForwards}\r\n` +
      `From: ${headers[this.at.from]!.value}\r\nTo: ${headers[this.at.to]!.value}\r\nCall-ID: ${headers[this.at.callId]!.value}\r\n`;
    const tail = forwarded.tail;
    // Written at once into room for any head (three UTF-8 bytes per UTF-16 unit at most), not measured first.
    const out = Buffer.allocUnsafe(3 * head.length + tail.length);
    const headBytes = out.write(head, 0, 'utf8');
    tail.copy(out, headBytes);
    return out.subarray(0, headBytes + tail.length);
  }

  /** The template as forwarded to a device (forwardCopy), encoded from its Max-Forwards value on. */
  private encodeForwarded(): { maxForwards: string; tail: Buffer } {
    const template = this.template;
    const copy = forwardCopy(template, PLACEHOLDER_URI, this.realms)!;
    // createRequest begins with Max-Forwards, From, To and Call-ID, as the copy does: the rest is shared.
    const encoded = withHeadersOf(copy, copy.headers.slice(4), { method: template.method, uri: '', body: template.body }).toBuffer();
    return { maxForwards: copy.get('max-forwards')!, tail: encoded.subarray(encoded.indexOf('\r\n') + 2) };
  }
}

/** Writes a copy of a message for one device, given the Request-URI and Parley's Via, from bytes its copies share. */
interface LegEncoder {
  wire(request: SipMessage, requestUri: string, via: string): Buffer;
}

/**
 * A MESSAGE that came in, forwarded to each device of its user (per-device delivery): the copy
 * forwardCopy makes is made and encoded once, from its first header on, when a leg is first written;
 * each leg writes only its request line and Via before those bytes, as a room post's legs do
 * (PreparedMessage). Only for a message with Max-Forwards left.
 */
class ForwardedMessage implements LegEncoder {
  private tail: Buffer | undefined;

  constructor(
    private readonly message: SipMessage,
    private readonly realms: ReadonlySet<string>,
  ) {}

  wire(request: SipMessage, requestUri: string, via: string): Buffer {
    const tail = (this.tail ??= this.encodeTail());
    const head = `${request.method} ${requestUri} SIP/2.0\r\nVia: ${via}\r\n`;
    // Written at once into room for any head (three UTF-8 bytes per UTF-16 unit at most), not measured first.
    const out = Buffer.allocUnsafe(3 * head.length + tail.length);
    const headBytes = out.write(head, 0, 'utf8');
    tail.copy(out, headBytes);
    return out.subarray(0, headBytes + tail.length);
  }

  /** The forwarded copy's wire form after its request line: what toBuffer writes after Parley's Via. */
  private encodeTail(): Buffer {
    const encoded = forwardCopy(this.message, PLACEHOLDER_URI, this.realms)!.toBuffer();
    return encoded.subarray(encoded.indexOf('\r\n') + 2);
  }
}

/** What a message delivered to a local user became: the final response, when there was one to a request sent. */
type LocalOutcome = { status: number; reason: string; response?: SipMessage };
/** A user's only device (DeviceDelivery.soleDevice) a message is forked to, and since when it was sent. */
type SoleDevice = { device: string; since: number };

/** A message no device took, when it is not to be stored: told apart by identity (wouldHaveBeenStored). */
const NOT_KEPT: LocalOutcome = { status: 480, reason: 'Temporarily Unavailable' };

/**
 * Whether `outcome`, of forkOrStore asked not to store, says the message would have been stored had
 * it been asked to: a known user with no device registered, or none reached (408, 480, 503, 504).
 * A device's own refusal and an unknown user's 404 are answers, not something left to keep; a
 * device's own 480 is NOT_KEPT too (not reached), which is why this is NOT_KEPT itself, not its status.
 */
function wouldHaveBeenStored(outcome: LocalOutcome): boolean {
  return outcome === NOT_KEPT;
}

/** What a message sent to a foreign domain became. */
const foreignResult = (response: SipMessage): DeliveryResult => ({ status: response.status, reason: response.reason, stored: false });

/** What a message delivered locally became: 202 is stored for later. */
const localResult = (result: { status: number; reason: string }): DeliveryResult => ({ status: result.status, reason: result.reason, stored: result.status === 202 });

/** A store that was unavailable: what a SIP sender would be answered (the module that sends tells its own sender); any other error stays one. */
function storeUnavailableResult(error: unknown): DeliveryResult {
  if (isStoreUnavailable(error)) return { status: 503, reason: STORE_UNAVAILABLE_REASON, stored: false };
  throw error;
}

/** Statuses after which a device's next flow is tried (RFC 5626 §5.3): the request did not get through this one. */
const FLOW_FAILED = new Set([408, 503]);

/** The CSeq number of the MESSAGEs Parley originates. */
const ORIGINATED_CSEQ = 1;

/** The reason phrase of the 503 for anything that needed the store while it was unavailable. */
export const STORE_UNAVAILABLE_REASON = STORE_UNAVAILABLE.reason;

/** Stored messages read at once when delivering them to a user who registered. */
const OFFLINE_PAGE_SIZE = 100;

export interface RelayStats {
  relayed: number;
  stored: number;
  delivered: number;
  failed: number;
  /** MESSAGEs refused 503 because the UDP receive buffer was filling (relay.overload_backlog). */
  overloaded: number;
}

/** Seconds an overloaded relay asks a sender to wait: long enough for the backlog to be read. */
const OVERLOAD_RETRY_AFTER = [{ name: 'retry-after', value: '1' }];
/**
 * How often the receive backlog is measured (ms). Offered twice what it relays (~18,000 MESSAGEs/s,
 * ~1.3 kB each as the kernel counts them), the queue grows by up to 0.5 MB between two samples (at
 * 50 ms it overshot relay.overload_backlog by 1-2 MB, and a pause on top, such as a garbage
 * collection, overflowed the default 8 MiB); reading /proc/net/udp takes ~60 µs.
 */
const RECEIVE_BACKLOG_SAMPLE_MS = 20;
/**
 * Once refusing, the share of relay.overload_backlog the backlog must fall under before MESSAGEs are
 * taken again: the queue then swings below the mark rather than about it, leaving room for a pause
 * (a garbage collection) while it is offered more than it carries.
 */
const OVERLOAD_RESUME_SHARE = 0.5;

export class Relay {
  readonly stats: RelayStats = { relayed: 0, stored: 0, delivered: 0, failed: 0, overloaded: 0 };
  /** Whether new MESSAGEs are being refused (see refusesNewMessages). */
  private refusing = false;
  /** The delivery of what is stored for whichever device of an AOR registers (deliverStored) under way, by AOR. */
  private readonly delivering = new Map<string, Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The outboxes of the features sending through the relay (rooms, gateways), for its health. */
  private readonly outboxes = new Set<Pick<Outbox<unknown>, 'backlogWarning'>>();
  /** Per-device delivery of what is sent to a user with remembered devices. */
  readonly devices: DeviceDelivery;
  /** Of each message being delivered per device, what writes its legs from shared bytes (deliverPerDevice). */
  private readonly legEncoders = new WeakMap<SipMessage, LegEncoder>();
  /** Copies of what local users send, for their other devices (own-message sync). */
  readonly sentCopies: SentCopies;

  constructor(
    private readonly stack: SipStack,
    private readonly registrar: Registrar,
    private readonly offline: OfflineStore,
    deliveries: DeliveryStore,
    private readonly options: RelayOptions,
    private readonly log: Logger,
  ) {
    this.devices = new DeviceDelivery(
      deliveries, registrar, stack, (message, flows, loop) => this.sendToDevice(message, flows, loop ?? loopKey(message), this.legEncoders.get(message)),
      { ...options.devices, maxPerUser: options.offline.maxPerUser }, log,
    );
    this.sentCopies = new SentCopies(registrar, this.devices, stack, {
      enabledFor: (domain) => this.isLocalDomain(domain) && syncsSent(domain, options.offline.enabled, options.syncSent),
      record: (aor, message) => this.storedRecord(aor, message),
      maxBody: options.maxBody,
    }, log);
    if (options.offline.enabled) {
      registrar.recogniseDevicesWith((aor, fresh, current) => this.devices.recognise(aor, fresh, current));
      registrar.on('expired', (aor, bindings) => this.devices.bindingsExpired(aor, bindings));
    }
    registrar.on('registered', (aor) => {
      // Kept for whichever device registers (from before devices were remembered), they are older
      // than what waits for each device: the devices' queues wait for them.
      this.devices.deliverPending(aor, this.offline.mayHaveWaiting(aor) ? this.deliverStored(aor) : undefined);
    });
  }

  start(): void {
    // A sweep the store cannot complete is done again by the next one.
    const sweepFailed = logBackgroundFailure(this.log, 'expired offline messages sweep');
    const sweep = async () => {
      await this.offline.removeExpired(Date.now());
      // What another writer of the store stored (countPending too, for the devices' rows).
      await this.offline.rereadWaiting();
      await this.devices.forgetStale();
      await this.devices.countPending();
    };
    void this.devices.resume().catch(logBackgroundFailure(this.log, 'resuming deliveries to devices'));
    this.options.overload?.receiveBacklog.watch(RECEIVE_BACKLOG_SAMPLE_MS);
    this.sweepTimer = setInterval(() => void sweep().catch(sweepFailed), 60_000).unref();
  }

  stop(): void {
    clearInterval(this.sweepTimer);
  }

  /**
   * Whether a new MESSAGE is to be refused: Parley is offered more than it carries, its UDP receive
   * buffer filling past the mark (and, once refusing, not yet under OVERLOAD_RESUME_SHARE of it).
   * Refusing new MESSAGEs then (cheap: no transaction, nothing sent on) leaves it the time to read
   * the answers to those under way before the buffer overflows and the kernel drops them with the
   * new requests; each MESSAGE whose answer was lost would wait for fork_timeout, be stored though
   * it was delivered, and be retransmitted meanwhile by Parley and by its sender.
   */
  private refusesNewMessages(): boolean {
    const overload = this.options.overload;
    if (overload === undefined) return false;
    const share = overload.receiveBacklog.share;
    this.refusing = share >= overload.refuseAt || (this.refusing && share >= overload.refuseAt * OVERLOAD_RESUME_SHARE);
    return this.refusing;
  }

  /** Reports the backlog of `outbox` in the relay's health. */
  trackOutbox(outbox: Pick<Outbox<unknown>, 'backlogWarning'>): void {
    this.outboxes.add(outbox);
  }

  /** The outboxes past 80 % of their bounds, each said in a sentence. */
  backlogWarnings(): string[] {
    return [...this.outboxes].flatMap((outbox) => outbox.backlogWarning() ?? []);
  }

  isLocal(uri: SipUri): boolean {
    return this.isLocalDomain(uri.host);
  }

  isLocalDomain(domain: string): boolean {
    return this.options.domains.has(domain);
  }

  /** Handles a MESSAGE that arrived from the network. */
  async handle(request: IncomingRequest): Promise<void> {
    const message = request.message;
    if (message.body.length > this.options.maxBody) {
      request.reply(413, 'Request Entity Too Large', { headers: [{ name: 'retry-after', value: '0' }] });
      return;
    }
    if (this.refusesNewMessages()) {
      this.stats.overloaded++;
      request.reply(503, 'Service Unavailable (relay overloaded)', { headers: OVERLOAD_RETRY_AFTER, stateless: true });
      return;
    }
    const target = message.requestUri;
    if (!this.isLocal(target)) {
      await this.forwardForeign(request);
      return;
    }
    const result = await this.deliverLocal(target, message, loopKey(message), storesOffline(message));
    if (result.status < 300) await this.sentCopies.copy(request);
    if (result.response) {
      result.response.removeFirstValue('via');
      request.respond(result.response);
    } else request.reply(result.status, result.reason);
  }

  /**
   * Sends a MESSAGE Parley originates; resolves with what became of it, never rejects. With a
   * `turn` (from OrderedDeliveries) the turn is told once the request is written, and storing it
   * offline waits until the recipient's earlier messages have ended, so none is stored before an
   * earlier one that will be.
   */
  send(outgoing: OutgoingMessage, turn?: DeliveryTurn): Promise<DeliveryResult> {
    return this.sendPrepared(this.prepare(outgoing), outgoing, turn);
  }

  /** A message for any number of recipients (a room post to its members): what its copies share is built once, see sendPrepared. */
  prepare(content: MessageContent): PreparedMessage {
    const body = typeof content.body === 'string' ? Buffer.from(content.body, 'utf8') : content.body;
    // createRequest copies them: only a Date needs a list of its own.
    const headers = content.date ? [...(content.headers ?? []), { name: 'date', value: content.date.toUTCString() }] : content.headers;
    // Recipient, From tag and Call-ID stand in for now: each copy has its own (PreparedMessage.requestFor).
    const template = this.stack.createRequest({
      method: 'MESSAGE', uri: PLACEHOLDER_URI, from: content.from, to: PLACEHOLDER_URI, headers, body, contentType: content.contentType, callId: 'x', cseq: ORIGINATED_CSEQ,
    });
    const storeOffline = content.storeOffline !== false && storesOffline(template);
    return new PreparedMessage(template, content.from.includes(';tag='), storeOffline, content.outboundProxy, this.options.realms);
  }

  /**
   * Sends a prepared message to one recipient, as send() does. Not an async function: every leg of
   * a room post comes through here, and what it awaits is chained instead, with no frame kept per leg.
   */
  sendPrepared(prepared: PreparedMessage, recipient: Recipient, turn?: DeliveryTurn): Promise<DeliveryResult> {
    // The From tag is known here, so the loop key needs no parsing of the From just built.
    const fromTag = prepared.tagged ? undefined : (recipient.fromTag ?? randomToken());
    const message = prepared.requestFor(recipient.to, fromTag, recipient.callId ?? `${randomToken(20)}@parley`);
    let target: SipUri;
    try {
      target = message.requestUri;
    } catch {
      return Promise.resolve({ status: 416, reason: 'Unsupported URI', stored: false });
    }
    if (!this.isLocal(target)) return this.sendForeign(message, prepared.outboundProxy, turn).then(foreignResult);
    let delivered: Promise<{ status: number; reason: string }>;
    try {
      const loop = fromTag === undefined ? loopKey(message) : loopKeyOf(message.uri, fromTag, message.get('to'), message.callId, ORIGINATED_CSEQ);
      delivered = this.deliverLocal(target, message, loop, prepared.storeOffline, turn, recipient.keptByOutbox === true, prepared);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return delivered.then(localResult, storeUnavailableResult);
  }

  /** Whether requests for foreign domains go out at all: only through relay.outbound_proxy. */
  get reachesForeignDomains(): boolean {
    return this.options.outboundProxy !== undefined;
  }

  /** What a request for a foreign domain gets when there is no outbound proxy to send it through (relay.foreign_domain_status). */
  foreignDomainRefusal(): { status: number; reason: string } {
    const status = this.options.foreignDomainStatus;
    return { status, reason: status === 404 ? 'Not Found' : 'Forbidden (domain not served here)' };
  }

  private async forwardForeign(request: IncomingRequest): Promise<void> {
    if (!this.reachesForeignDomains) {
      const refusal = this.foreignDomainRefusal();
      request.reply(refusal.status, refusal.reason);
      return;
    }
    const copy = forwardCopy(request.message, request.message.uri, this.options.realms);
    if (!copy) {
      request.reply(483, 'Too Many Hops');
      return;
    }
    const response = await this.sendForeign(copy);
    if (response.status >= 200 && response.status < 300) await this.sentCopies.copy(request);
    response.removeFirstValue('via');
    request.respond(response);
  }

  /**
   * Sends a request for a foreign domain, forwarded or Parley's own (room messages, replies, NOTIFYs,
   * gateway messages): only through `proxy` (an operator's next hop) or relay.outbound_proxy, never
   * straight to a host a request named, so that a forged From cannot make Parley a reflector.
   * Without a proxy nothing is sent and the answer is the foreign-domain refusal.
   */
  async sendForeign(message: SipMessage, proxy: string | undefined = this.options.outboundProxy, turn?: DeliveryTurn): Promise<SipMessage> {
    if (!proxy) {
      this.log.debug({ method: message.method, uri: message.uri }, 'request for a foreign domain not sent: no outbound proxy');
      const refusal = this.foreignDomainRefusal();
      return createResponse(message, refusal.status, refusal.reason);
    }
    const peer = await resolveHop(parseUri(proxy));
    if (!peer) return createResponse(message, 404, 'Not Found (outbound proxy not resolved)');
    message.prepend('route', `<${proxy};lr>`);
    const response = this.stack.request(message, peer, { timeout: this.options.forkTimeout * 1000 });
    turn?.sent(this.windowOf([peer.proto]));
    return response;
  }

  /** How many ordered deliveries may be under way to a recipient reached over these transports. */
  private windowOf(protocols: Protocol[]): number {
    return Math.min(...protocols.map((proto) => this.transportWindow(proto)));
  }

  /** windowOf() for one transport (a room member's phone, most often), with no list made. */
  private transportWindow(proto: Protocol): number {
    return RELIABLE[proto] ? this.options.deliveryWindow.stream : this.options.deliveryWindow.udp;
  }

  /** Whether a local AOR has a live registered contact now. */
  hasContacts(aor: string): boolean {
    return this.registrar.lookup(aor).length > 0;
  }

  /**
   * Forks to every live device of a local AOR, or to the one device a GRUU names. A user with
   * remembered devices has it written once, for those that did not take it (DeviceDelivery). Else, with no
   * contact, or when every fork found nobody, the message is stored (202) if the user is known; an
   * unknown user gets 404. A GRUU's device that is not registered gets 480: nothing is stored for it.
   */
  private deliverLocal(
    target: SipUri, message: SipMessage, loop: string, storeOffline: boolean, turn?: DeliveryTurn, keptByOutbox = false, prepared?: PreparedMessage,
  ): Promise<LocalOutcome> {
    const destination = this.registrar.destinationOf(target);
    if (!destination) return Promise.resolve({ status: 404, reason: 'Not Found (unknown GRUU)' });
    const { aor, device } = destination;
    const perDevice = !device && storeOffline && this.options.offline.enabled && this.devices.keepsPerDevice(aor) && Number(message.get('max-forwards') ?? '70') > 0;
    // A user's only device, registered with nothing waiting, is forked to; stored for if not reached.
    const sole = perDevice ? this.devices.soleDevice(aor) : undefined;
    if (perDevice && sole === undefined) return this.deliverPerDevice(aor, message, loop, turn, keptByOutbox, prepared);
    if (sole === undefined) return this.forkOrStore(aor, device, message, loop, storeOffline, turn, prepared);
    // Under way until stored if not reached: a device that may be this one registering meanwhile
    // has its later messages stored after it (DeviceDelivery.soleSends).
    return this.devices.soleSend(aor, sole, this.forkOrStore(aor, device, message, loop, storeOffline, turn, prepared, { device: sole, since: Date.now() }));
  }

  /** A user with remembered devices: written once for those that did not take it (DeviceDelivery); without the store, forked the old way. */
  private async deliverPerDevice(aor: string, message: SipMessage, loop: string, turn?: DeliveryTurn, keptByOutbox = false, prepared?: PreparedMessage): Promise<LocalOutcome> {
    const written = (protocols: Protocol[]) => turn?.sent(protocols.length > 0 ? this.windowOf(protocols) : this.options.deliveryWindow.stream);
    const kept = keptByOutbox && turn ? { previous: turn.previous } : undefined;
    // Its legs share their bytes but for the request line and Via.
    this.legEncoders.set(message, prepared ?? new ForwardedMessage(message, this.options.realms));
    let unavailable: unknown;
    const outcome = await this.devices.deliver(aor, message, this.storedRecord(aor, message), betterFinal, written, { keptByCaller: kept, loop }).catch((error: unknown) => {
      if (!isStoreUnavailable(error)) throw error;
      unavailable = error;
      return undefined;
    });
    if (outcome) {
      if (outcome === ACCEPTED) this.stats.stored++;
      else if (outcome.response && outcome.status < 300) this.stats.relayed++;
      return outcome;
    }
    // Not kept per device: stored for whichever device registers when none takes it.
    if (unavailable === undefined) return this.forkOrStore(aor, undefined, message, loop, true, turn, prepared);
    // Without the store, registered devices are still reached the old way. What none of them takes
    // is refused as the outage is (503), not kept for whichever device registers, even should the
    // store be back by now: such a row is delivered before what already waits for each device.
    const forked = await this.forkOrStore(aor, undefined, message, loop, false, turn, prepared);
    if (wouldHaveBeenStored(forked)) throw unavailable;
    return forked;
  }

  /**
   * Forks to the live devices (`device`: the one a GRUU names), and stores what none of them took
   * (for `sole`, a user's only device, in its own row).
   * Not an async function: every leg of a room post comes through here, and what it awaits is
   * chained instead, with no frame kept per leg.
   */
  private forkOrStore(
    aor: string, device: Device | undefined, message: SipMessage, loop: string, storeOffline: boolean, turn?: DeliveryTurn, prepared?: PreparedMessage, sole?: SoleDevice,
  ): Promise<LocalOutcome> {
    const devices = this.registrar.flowsByDevice(this.registrar.lookup(aor, device));
    // The fork writes each device's first flow at once: from here on, the next message may follow.
    // With no device nothing is written, and only storing (below) has to wait its turn.
    if (devices.length === 0) {
      turn?.sent(this.options.deliveryWindow.stream);
      return this.storeUnreached(aor, device, message, storeOffline, turn, sole);
    }
    const forked = this.fork(message, devices, loop, prepared);
    turn?.sent(devices.length === 1 ? this.transportWindow(devices[0]![0].peer.proto) : this.windowOf(devices.map((flows) => flows[0].peer.proto)));
    return forked.then((best) => {
      if (best.status < 300) {
        this.stats.relayed++;
        return { status: best.status, reason: best.reason, response: best };
      }
      // What was meant for one device is not stored, to reach every device later.
      if (!UNREACHABLE.has(best.status) || device) return { status: best.status, reason: best.reason, response: best };
      return this.storeWhenDue(aor, message, storeOffline, turn, sole, best);
    });
  }

  /** No device to fork to: stored for the user if known (404 otherwise); a GRUU's device that is not registered gets 480. */
  private async storeUnreached(aor: string, device: Device | undefined, message: SipMessage, storeOffline: boolean, turn?: DeliveryTurn, sole?: SoleDevice): Promise<LocalOutcome> {
    if (!(await this.options.isKnownUser(aor))) return { status: 404, reason: 'Not Found' };
    if (device) return { status: 480, reason: 'Temporarily Unavailable (device not registered)' };
    return this.storeWhenDue(aor, message, storeOffline, turn, sole);
  }

  /**
   * Stores the message offline once the recipient's earlier messages have ended (480 when it is not
   * to be stored); `answer`, what the devices' fork ended with, when it was sent.
   */
  private async storeWhenDue(aor: string, message: SipMessage, storeOffline: boolean, turn?: DeliveryTurn, sole?: SoleDevice, answer?: SipMessage): Promise<LocalOutcome> {
    if (!storeOffline) return NOT_KEPT;
    await turn?.previous;
    if (sole === undefined) return this.store(aor, message);
    const outcome = await this.devices.storeUnreached(aor, message, this.storedRecord(aor, message), sole.device, sole.since, answer);
    if (outcome === ACCEPTED) this.stats.stored++;
    return outcome;
  }

  private async store(aor: string, message: SipMessage): Promise<{ status: number; reason: string }> {
    if (!this.options.offline.enabled) return { status: 480, reason: 'Temporarily Unavailable' };
    const id = await this.offline.add(this.storedRecord(aor, message), this.options.offline.maxPerUser);
    if (id === 'full') return { status: 486, reason: 'Busy Here (offline mailbox full)' };
    this.stats.stored++;
    this.log.debug({ aor, id }, 'message stored for offline delivery');
    return ACCEPTED;
  }

  private storedRecord(aor: string, message: SipMessage): Omit<StoredMessage, 'id'> {
    const now = Date.now();
    return {
      aor,
      fromHeader: withoutTag(message.get('from')!),
      toHeader: withoutTag(message.get('to')!),
      contentType: message.get('content-type') ?? 'text/plain',
      body: Buffer.from(message.body),
      // The limit and the expiry count from Parley's clock: a sender's Date could be anything.
      receivedAt: now,
      sentAt: dateOf(message),
      expiresAt: now + this.options.offline.expires * 1000,
      origin: requestOrigin(message),
    };
  }

  /** Parallel fork of a non-INVITE request to devices (RFC 3261 §16.7): the first 2xx wins, else the best final. */
  private fork(message: SipMessage, devices: Flow[][], loop: string, prepared?: PreparedMessage): Promise<SipMessage> {
    if (Number(message.get('max-forwards') ?? '70') <= 0) return Promise.resolve(createResponse(message, 483, 'Too Many Hops'));
    // One device (a room member's phone, most often): its answer is the best, with nothing to gather.
    if (devices.length === 1) return this.sendToDevice(message, devices[0]!, loop, prepared);
    return new Promise((resolve) => {
      let pending = devices.length;
      let best: SipMessage | undefined;
      let done = false;
      for (const flows of devices) {
        void this.sendToDevice(message, flows, loop, prepared).then((response) => {
          pending--;
          if (done) return;
          if (response.status < 300) {
            done = true;
            resolve(response);
            return;
          }
          if (!best || betterFinal(response.status, best.status)) best = response;
          if (pending === 0) {
            done = true;
            resolve(best);
          }
        });
      }
    });
  }

  /**
   * Sends to a device over its first flow (`from`), and over the next one each time a flow fails
   * (RFC 5626 §5.3). A copy of a prepared message (without a Path to put in a Route) is written from
   * its shared bytes.
   */
  private sendToDevice(message: SipMessage, flows: Flow[], loop: string, prepared?: LegEncoder, from = 0): Promise<SipMessage> {
    const { binding, peer } = flows[from]!;
    // The push parameters are for the provider alone (RFC 8599 §4.1.2).
    const requestUri = binding.contact.includes(';pn-') ? stripPushParams(binding.contact) : binding.contact;
    const timeout = this.options.forkTimeout * 1000;
    const sent =
      prepared && !binding.path
        ? // Bound rather than an arrow function: tsx names every arrow function made in an object literal, a cost per leg.
          this.stack.request(message, peer, { loopKey: loop, timeout, encode: prepared.wire.bind(prepared, message, requestUri) })
        : this.stack.request(forwardCopy(message, requestUri, this.options.realms, binding.path)!, peer, { loopKey: loop, timeout });
    if (from + 1 === flows.length) return sent;
    return sent.then((response) => (FLOW_FAILED.has(response.status) ? this.sendToDevice(message, flows, loop, prepared, from + 1) : response));
  }

  /**
   * Delivers stored messages to an AOR that just registered, oldest first, removing each on 2xx.
   * They are read a page at a time, the next page once the previous one is delivered, so a user
   * with thousands waiting does not have them all in memory at once. Never rejects; a delivery
   * under way for the AOR is the one returned.
   */
  deliverStored(aor: string): Promise<void> {
    let delivery = this.delivering.get(aor);
    if (!delivery) {
      delivery = this.deliverStoredPages(aor).finally(() => this.delivering.delete(aor));
      this.delivering.set(aor, delivery);
    }
    return delivery;
  }

  private async deliverStoredPages(aor: string): Promise<void> {
    try {
      let afterId = 0;
      for (;;) {
        const page = await this.offline.listFor(aor, Date.now(), { afterId, limit: OFFLINE_PAGE_SIZE, anyDevice: true });
        for (const stored of page) {
          if (!(await this.deliverOne(aor, stored))) return;
          afterId = stored.id;
        }
        if (page.length < OFFLINE_PAGE_SIZE) return;
      }
    } catch (error) {
      if (isStoreUnavailable(error)) this.log.debug({ aor }, 'offline delivery paused: store unavailable; kept for the next registration');
      else this.log.error({ err: error, aor }, 'offline delivery error');
    }
  }

  /** Sends one stored message to the AOR's contacts; true when it was taken and removed from the store. */
  private async deliverOne(aor: string, stored: StoredMessage): Promise<boolean> {
    const message = storedRequest(this.stack, stored);
    const devices = this.registrar.flowsByDevice(this.registrar.lookup(aor));
    if (devices.length === 0) return false;
    const response = await this.fork(message, devices, loopKey(message));
    if (response.status >= 300) {
      this.stats.failed++;
      this.log.info({ aor, id: stored.id, status: response.status }, 'offline delivery failed; kept for the next registration');
      return false;
    }
    await this.offline.remove(stored.id);
    this.stats.delivered++;
    return true;
  }
}

/**
 * A copy of `message` for the next hop, or undefined when Max-Forwards is exhausted. What vouches for
 * the sender does not travel on: credentials for Parley's own realms (RFC 3261 §22.3), and
 * P-Asserted-Identity and Identity, which only a trusted source may assert (RFC 3325 §5, RFC 8224 §6)
 * and Parley trusts no source yet.
 */
function forwardCopy(message: SipMessage, requestUri: string, realms: ReadonlySet<string>, path?: string): SipMessage | undefined {
  const maxForwardsText = message.get('max-forwards');
  const maxForwards = maxForwardsText === undefined ? 70 : Number(maxForwardsText);
  if (maxForwards <= 0) return undefined;
  const headers: Header[] = [];
  let maxForwardsAt = -1;
  for (const header of message.headers) {
    if (header.name === 'max-forwards') {
      // The parser lets only one Max-Forwards through: it is replaced in place below.
      if (maxForwardsAt < 0) maxForwardsAt = headers.length;
      else continue;
    } else if (!travelsOn(header, realms)) continue;
    headers.push(header);
  }
  const decremented = { name: 'max-forwards', value: String(maxForwards - 1) };
  if (maxForwardsAt < 0) headers.push(decremented);
  else headers[maxForwardsAt] = decremented;
  const copy = withHeadersOf(message, headers, { method: message.method, uri: requestUri, body: message.body });
  if (path) copy.prepend('route', path);
  return copy;
}

function travelsOn(header: Header, realms: ReadonlySet<string>): boolean {
  if (UNTRUSTED_IDENTITY.has(header.name)) return false;
  if (header.name !== 'authorization' && header.name !== 'proxy-authorization') return true;
  const realm = digestRealm(header.value);
  return realm === undefined || !realms.has(realm);
}

const UNTRUSTED_IDENTITY = new Set(['p-asserted-identity', 'identity', 'identity-info']);

/** RFC 3261 §16.7 step 6: 6xx beats everything, then the lowest class, 408/503-like answers last. */
function betterFinal(candidate: number, current: number): boolean {
  if (current >= 600) return false;
  if (candidate >= 600) return true;
  const rank = (s: number) => (UNREACHABLE.has(s) ? 1000 + s : s);
  return rank(candidate) < rank(current);
}

/**
 * The hash that marks a request in Parley's branch: a request that comes back with a Via of ours
 * carrying the same hash has looped (RFC 3261 §16.3 step 4); a different hash is a spiral.
 */
export function loopKey(message: SipMessage): string {
  return loopKeyOf(message.uri, message.from.params.get('tag') ?? '', message.get('to'), message.callId, message.cseq.seq);
}

function loopKeyOf(uri: string, fromTag: string, to: string | undefined, callId: string, cseq: number): string {
  return fnv1a(uri, fromTag, to ?? '', callId, String(cseq));
}

/** Whether a message may wait in the offline store: not one asked for now or never (Expires: 0), nor an isComposing state, stale once late. */
function storesOffline(message: SipMessage): boolean {
  return message.get('expires')?.trim() !== '0' && mediaTypeOf(message.get('content-type') ?? '') !== ISCOMPOSING_TYPE;
}

function withoutTag(value: string): string {
  try {
    const addr = parseNameAddr(value);
    addr.params.delete('tag');
    return formatNameAddr(addr);
  } catch {
    return value;
  }
}

function dateOf(message: SipMessage): number | undefined {
  const date = message.get('date');
  if (!date) return undefined;
  const time = Date.parse(date);
  return Number.isFinite(time) ? time : undefined;
}

async function resolveHop(uri: SipUri): Promise<Peer | undefined> {
  const transport = (uri.params.get('transport') ?? (uri.scheme === 'sips' ? 'tls' : 'udp')).toLowerCase();
  if (!['udp', 'tcp', 'tls', 'ws', 'wss'].includes(transport)) return undefined;
  const { lookup } = await import('node:dns/promises');
  const host = uri.host.replace(/^\[|\]$/g, '');
  try {
    const address = (await lookup(host)).address;
    return { proto: transport as Peer['proto'], host: address, port: uri.port ?? (transport === 'tls' ? 5061 : 5060) };
  } catch {
    return undefined;
  }
}
