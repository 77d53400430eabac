// Non-INVITE transactions (RFC 3261 §17.1.2, §17.2.2) over the transport layer, with Via
// stamping (RFC 3581) and response routing (§18.2.2). Everything above talks to the network
// through this: `on('request')` for what arrives, `request()` for what Parley sends.
import { EventEmitter } from 'node:events';
import { EMPTY, type Header, SipMessage, createResponse, fnv1aHex, headerLine, headerLines, randomToken, responseHead, wireForm } from './message.js';
import { canAnswer, type SipParseError } from './parser.js';
import { type Via, paramOf, parseVia, restampVia, topViaBranch } from './headers.js';
import { AnsweredTransactions } from './answered.js';
import { ownString } from '../util/own-string.js';
import { type TimerHandle, type TimerQueue } from './timers.js';
import type { TransportLayer } from './transport/layer.js';
import { type Peer, type Protocol, RELIABLE } from './transport/types.js';

export const BRANCH_COOKIE = 'z9hG4bK';

export interface StackOptions {
  t1: number;
  t2: number;
  /** Host[:port] put in Via and Contact instead of the listen address (behind NAT, or a name). */
  advertise?: string;
  /** Bytes above which a UDP request goes over TCP when Parley can (RFC 3261 §18.1.1). */
  mtu: number;
  userAgent: string;
  /**
   * Server transactions kept at once, waiting for their answer and, apart, answered ones kept to
   * absorb retransmissions: past it a new request gets 503, and the oldest answered one is let go.
   */
  maxTransactions: number;
}

export interface ReplyOptions {
  headers?: Header[];
  body?: Buffer | string;
  contentType?: string;
  /**
   * Answer as a stateless UAS (RFC 3261 §8.2.7), for an answer with no side effect and a final
   * status: nothing is kept once it is sent, and a retransmission of the request is handled again and
   * gets the same bytes, its To tag being made from the request (statelessToTag).
   */
  stateless?: boolean;
}

/** A request that arrived, with the one way to answer it: its server transaction. */
export interface IncomingRequest {
  readonly message: SipMessage;
  readonly source: Peer;
  readonly replied: boolean;
  /** "user@domain" proven by digest authentication on this request, when it was checked. */
  identity?: string;
  reply(status: number, reason?: string, options?: ReplyOptions): void;
  respond(response: SipMessage): void;
}

export interface StackStats {
  requestsIn: number;
  responsesOut: number;
  requestsOut: number;
  retransmissionsAbsorbed: number;
  /**
   * Final responses sent with the stateless option, nothing kept after them: a retransmission of such a
   * request is answered again and counted here (and in requestsIn), not in retransmissionsAbsorbed.
   */
  answeredStatelessly: number;
  malformed: number;
  serverTransactions: number;
  clientTransactions: number;
  /** New requests answered 503 because sip.max_transactions were in progress. */
  overloaded: number;
}

export declare interface SipStack {
  on(event: 'request', listener: (request: IncomingRequest) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}

/** What a reply without options is given: one object for all of them. */
const NO_OPTIONS: ReplyOptions = Object.freeze({});

/** Writes a request Parley sends, given the value of its own Via to put on top. */
export type Encode = (via: string) => Buffer;

/** What a client transaction settles with before request() gives it its promise's resolve. */
const ignoreResponse = (): void => {};

/** The final responses Parley made up for requests nothing answered (a timeout, a transport error): see isMadeUp. */
const madeUp = new WeakSet<SipMessage>();

/**
 * Whether `response`, which request() resolved with, was made up by Parley because nothing came
 * back (Timer F fired, the transport failed) rather than received from the peer: then nothing is
 * known to listen at the peer's address.
 */
export function isMadeUp(response: SipMessage): boolean {
  return madeUp.has(response);
}

/** A protocol as a Via names it: a table rather than a string made per request sent. */
const VIA_TRANSPORT: Record<Protocol, string> = { udp: 'UDP', tcp: 'TCP', tls: 'TLS', ws: 'WS', wss: 'WSS' };

/** Seconds an overloaded Parley asks a client to wait before sending again. */
const OVERLOAD_RETRY_AFTER_S = 5;

export class SipStack extends EventEmitter {
  /** Requests being handled, and answered ones kept through Timer J: apart, so either is bounded on its own. */
  private readonly inProgress = new Map<string, InProgress>();
  private readonly answered: AnsweredTransactions;
  private readonly client = new Map<string, ClientTransaction>();
  private readonly sentByOf = new Map<Protocol, string>();
  /** The Server header line of every 2xx Parley sends, made once. */
  private readonly serverLine: string;
  readonly stats: StackStats;

  constructor(
    readonly transports: TransportLayer,
    readonly timers: TimerQueue,
    readonly options: StackOptions,
  ) {
    super();
    // Timer J: answered requests' retransmissions are absorbed for 64·T1 on unreliable transports.
    const answered = (this.answered = new AnsweredTransactions(timers, 64 * options.t1, options.t1, options.maxTransactions));
    const inProgress = this.inProgress;
    this.stats = {
      requestsIn: 0, responsesOut: 0, requestsOut: 0, retransmissionsAbsorbed: 0, answeredStatelessly: 0, malformed: 0,
      // Counted when read: answered ones are let go on the answered set's own timer.
      get serverTransactions() {
        return inProgress.size + answered.size;
      },
      clientTransactions: 0, overloaded: 0,
    };
    this.serverLine = headerLine('server', options.userAgent);
    transports.on('message', (message, source) => {
      if (message.isRequest) this.onRequest(message, source);
      else this.onResponse(message);
    });
    transports.on('malformed', (error, source) => this.onMalformed(error, source));
    // No transaction for these: a source over its rate must not make Parley keep anything.
    transports.on('rateLimited', (request, source, retryAfter) =>
      this.answerStatelessly(request, source, 503, 'Service Unavailable (too many requests from this address)', [
        { name: 'retry-after', value: String(retryAfter) },
      ]),
    );
  }

  /** The sent-by Parley puts in its Via for a protocol. */
  sentBy(proto: Protocol): string {
    if (this.options.advertise) return this.options.advertise;
    const known = this.sentByOf.get(proto);
    if (known !== undefined) return known;
    const own = this.transports.local(proto);
    const local = own ?? this.transports.bound[0];
    if (!local) return '127.0.0.1';
    const host = local.host.includes(':') ? `[${local.host}]` : local.host;
    const sentBy = `${host}:${local.port}`;
    // A listener of the protocol itself, once bound, stays: what stands in for it may still change.
    if (own) this.sentByOf.set(proto, sentBy);
    return sentBy;
  }

  /** A URI at which peers reach Parley, e.g. for Contact headers of requests it originates. */
  localUri(proto: Protocol = 'udp', user?: string): string {
    const transport = proto === 'udp' ? '' : `;transport=${proto}`;
    return `sip:${user ? `${user}@` : ''}${this.sentBy(proto)}${transport}`;
  }

  private onRequest(message: SipMessage, source: Peer): void {
    this.stats.requestsIn++;
    // An ACK gets no answer and ends nothing Parley keeps: it keeps no dialog, and its answer to an
    // INVITE is not retransmitted on a timer but resent for each retransmitted INVITE, for 64·T1 (as
    // long as Timer H would wait for the ACK of a non-2xx).
    if (message.method === 'ACK') return;
    // With no transaction kept, as under a load answered statelessly, there is nothing to match: the
    // key is neither hashed nor, for a request with an RFC 3261 branch, even written until it is kept.
    const nothingKept = this.inProgress.size === 0 && this.answered.size === 0;
    const topVia = message.via;
    const key = nothingKept && topVia.branch?.startsWith(BRANCH_COOKIE) ? undefined : transactionKey(message);
    const existing = key === undefined || nothingKept ? undefined : (this.inProgress.get(key)?.transaction ?? this.answered.get(key));
    if (existing) {
      this.stats.retransmissionsAbsorbed++;
      if (existing.lastResponse) this.transmit(existing.lastResponse, existing.responseTarget);
      return;
    }
    if (this.inProgress.size >= this.options.maxTransactions) {
      this.stats.overloaded++;
      return this.answerStatelessly(message, source, 503, 'Service Unavailable (too many requests in progress)', [
        { name: 'retry-after', value: String(OVERLOAD_RETRY_AFTER_S) },
      ]);
    }
    const responseTarget = stampVia(message, topVia, source);
    const transaction = new ServerTransaction(this, key, topVia, message, source, responseTarget);
    this.emit('request', transaction);
    // Kept as in progress only when not answered while handed over: nothing else runs meanwhile, so a
    // request answered at once, as most are, goes straight to the answered ones.
    if (transaction.replied) return;
    transaction.kept = { transaction };
    this.inProgress.set(transaction.key, transaction.kept);
  }

  /** Sends a server transaction's response; a final one ends it (RFC 3261 §17.2.2). For ServerTransaction only. */
  sendResponse(transaction: ServerTransaction, bytes: Buffer): void {
    this.stats.responsesOut++;
    this.transmit(bytes, transaction.responseTarget);
    if (!transaction.replied) return;
    // A request answered while it is handed over was never kept in progress, nor its key written.
    if (transaction.kept) {
      transaction.kept.transaction = undefined;
      this.inProgress.delete(transaction.key);
    }
    if (transaction.stateless) this.stats.answeredStatelessly++;
    // Timer J: 64·T1 on unreliable transports, none on reliable ones.
    // Only the response is kept: the request goes with the transaction, now answered.
    else if (!RELIABLE[transaction.source.proto]) this.answered.add(transaction.key, bytes, transaction.responseTarget);
  }

  /** The wire form of the response a server transaction's reply() sends: a Server header on a 2xx, then what `options` adds. */
  responseBytes(request: SipMessage, status: number, reason?: string, options: ReplyOptions = NO_OPTIONS, toTag?: string): Buffer {
    let head = responseHead(request, status, reason, toTag);
    if (options.headers) head += headerLines(options.headers, true);
    if (status >= 200 && status < 300) head += this.serverLine;
    let body: Buffer = EMPTY;
    if (options.body !== undefined) {
      body = typeof options.body === 'string' ? Buffer.from(options.body, 'utf8') : options.body;
      head += headerLine('content-type', options.contentType ?? 'text/plain;charset=utf-8');
    }
    return wireForm(head, body);
  }

  private onMalformed(error: SipParseError, source: Peer): void {
    this.stats.malformed++;
    if (error.partial) this.answerStatelessly(error.partial, source, error.status, error.reason);
  }

  /** Answers a request outside any transaction (RFC 3261 §8.2.6): malformed ones, refused ones. */
  private answerStatelessly(request: SipMessage, source: Peer, status: number, reason: string, headers: Header[] = []): void {
    if (!canAnswer(request)) return;
    try {
      // Only the top Via is read: one further down may be what made the request malformed.
      const target = stampVia(request, parseVia(request.getAll('via')[0]!), source);
      const bytes = this.responseBytes(request, status, reason, { headers });
      this.stats.responsesOut++;
      this.transmit(bytes, target);
    } catch {
      // Not even a response could be formed: dropping is what RFC 3261 §16.3 leaves.
    }
  }

  private transmit(bytes: Buffer, target: Peer): void {
    this.transports.sendOrReport(bytes, target, this.reportSendFailure);
  }

  private readonly reportSendFailure = (error: Error): void => {
    // An 'error' event nobody listens to would throw here, inside a rejection handler.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  };

  /**
   * A response ends the client transaction its top Via's branch and its CSeq method name (RFC 3261
   * §17.1.3); nothing else of it is read here. One whose top Via's branch is malformed is dropped, as
   * malformed, whatever its status.
   */
  private onResponse(response: SipMessage): void {
    let branch: string | undefined;
    try {
      branch = topViaBranch(response.get('via')!);
    } catch {
      this.stats.malformed++;
      return;
    }
    if (response.status < 200) return;
    const transaction = branch === undefined ? undefined : this.client.get(branch);
    if (!transaction || response.cseq.method !== transaction.message.method) return;
    transaction.complete(response);
  }

  /**
   * Sends a request in a non-INVITE client transaction and resolves with its final response;
   * a timeout resolves with a synthesized 408 and an unreachable peer with 503, never a rejection.
   * The caller's request must not carry Parley's Via yet: it is added here, its branch starting
   * with `loopKey` when given so the request can be recognised if it ever comes back.
   * `timeout` (ms) bounds the wait for a final response below Timer F. With `encode`, the caller
   * writes the request itself, given the value of Parley's Via (many copies of one message sharing
   * most of their bytes), and `message` is left as it is: it only answers for the request.
   */
  request(message: SipMessage, target: Peer, options: { loopKey?: string; timeout?: number; encode?: Encode } = {}): Promise<SipMessage> {
    const { loopKey, timeout = 64 * this.options.t1, encode } = options;
    let proto = target.proto;
    const branch = `${BRANCH_COOKIE}${loopKey ? `${loopKey}.` : ''}${randomToken(16)}`;
    // RFC 3261 §18.1.1: a large request goes over a congestion-controlled transport when possible.
    let bytes = this.withVia(message, proto, branch, encode);
    if (proto === 'udp' && bytes.length > this.options.mtu && this.transports.has('tcp')) {
      proto = 'tcp';
      if (!encode) message.removeFirstValue('via');
      bytes = this.withVia(message, proto, branch, encode);
    }
    this.stats.requestsOut++;
    const transaction = new ClientTransaction(this, message, branch, target, proto, bytes, encode);
    // The promise's executor holds the transaction alone, not every variable of this call: a request per room leg.
    const response = new Promise<SipMessage>((resolve) => (transaction.settle = resolve));
    this.client.set(branch, transaction);
    this.stats.clientTransactions = this.client.size;
    transaction.start(Math.min(timeout, 64 * this.options.t1));
    return response;
  }

  /**
   * Lets a finished client transaction go at once. Timer K (RFC 3261 §17.1.2.2) is there to absorb
   * retransmissions of its response, and a response that matches no transaction is absorbed here
   * anyway (onResponse drops it): keeping the branch for T4 would change nothing but what is kept,
   * a branch per request sent for seconds. For ClientTransaction only.
   */
  finishClient(branch: string): void {
    this.client.delete(branch);
    this.stats.clientTransactions = this.client.size;
  }

  /** Puts Parley's Via with `branch` on top of the request; its wire form (`encode`'s, when given, and the message is left as it is). */
  withVia(message: SipMessage, proto: Protocol, branch: string, encode?: Encode): Buffer {
    // What formatVia would write for this Via, without building it first.
    const via = `SIP/2.0/${VIA_TRANSPORT[proto]} ${this.sentBy(proto)};branch=${branch};rport`;
    if (encode) return encode(via);
    message.prepend('via', via);
    return message.toBuffer();
  }

  /** Builds a request Parley originates (no Via yet: request() adds it). */
  createRequest(init: {
    method: string;
    uri: string;
    from: string;
    to: string;
    callId?: string;
    cseq?: number;
    headers?: Header[];
    body?: Buffer;
    contentType?: string;
  }): SipMessage {
    const headers: Header[] = [
      { name: 'max-forwards', value: '70' },
      { name: 'from', value: init.from.includes(';tag=') ? init.from : `${init.from};tag=${randomToken()}` },
      { name: 'to', value: init.to },
      { name: 'call-id', value: init.callId ?? `${randomToken(20)}@parley` },
      { name: 'cseq', value: `${init.cseq ?? 1} ${init.method}` },
      { name: 'user-agent', value: this.options.userAgent },
      ...(init.headers ?? []),
    ];
    if (init.body && init.body.length > 0) headers.push({ name: 'content-type', value: init.contentType ?? 'text/plain;charset=utf-8' });
    return new SipMessage({ method: init.method, uri: init.uri, headers, body: init.body });
  }

  /**
   * True when one of the request's Vias is Parley's own, sent for the same request: a loop.
   * The key is computed only when a Via of Parley's is present, which ordinary requests lack.
   */
  hasLooped(message: SipMessage, loopKey: (message: SipMessage) => string): boolean {
    let mark: string | undefined;
    for (const via of message.vias) {
      if (!via.branch?.startsWith(BRANCH_COOKIE) || !this.isOwnAddress(via.host, via.port)) continue;
      mark ??= `${BRANCH_COOKIE}${loopKey(message)}.`;
      if (via.branch.startsWith(mark)) return true;
    }
    return false;
  }

  /** Whether host[:port] is one of Parley's listening addresses (or the advertised one). */
  isOwnAddress(host: string, port?: number): boolean {
    const bare = host.charCodeAt(0) === 91 /* [ */ ? host.slice(1, -1) : host;
    if (this.options.advertise) {
      const advertised = this.options.advertise;
      if (advertised === host || advertised === `${host}:${port}` || (port === undefined && advertised.startsWith(`${host}:`))) return true;
    }
    for (const b of this.transports.bound) if (bare === b.host && (port === undefined || port === b.port)) return true;
    return false;
  }
}

/**
 * What inProgress holds for a request being handled: a slot emptied once it is answered. A Map's
 * entries stay in the hash tables it outgrew or rebuilt (V8 links each to the next) until a full
 * collection, and one such table promoted keeps every later one alive through scavenges: a
 * transaction held there would keep its whole parsed request, so it is held through the slot.
 */
interface InProgress {
  transaction: ServerTransaction | undefined;
}

/** A request that arrived and its server transaction, until its final response. */
class ServerTransaction implements IncomingRequest {
  identity?: string;
  lastResponse?: Buffer;
  /** Whether its final response was sent. */
  replied = false;
  /** Answered with the stateless option: the stack keeps nothing once the answer is sent. */
  stateless = false;
  /** Its slot in the stack's requests in progress: kept there as it was not answered while handed over. */
  kept: InProgress | undefined = undefined;

  constructor(
    private readonly stack: SipStack,
    /** The matching key when it was needed on arrival; else written from `topVia` once asked for. */
    private matchingKey: string | undefined,
    /** The top Via as the request came: a handler may edit the message, not what it is matched on. */
    private readonly topVia: Via,
    readonly message: SipMessage,
    readonly source: Peer,
    readonly responseTarget: Peer,
  ) {}

  /** RFC 3261 §17.2.3 matching key, as transactionKey() writes it. */
  get key(): string {
    return (this.matchingKey ??= branchKey(this.topVia, this.message.method));
  }

  reply(status: number, reason?: string, options?: ReplyOptions): void {
    if (this.replied) return;
    let toTag: string | undefined;
    if (options?.stateless) {
      // A provisional answer says more is coming: only a final one can leave nothing behind.
      if (status < 200) throw new RangeError(`a stateless answer is final (200-699), not ${status}`);
      this.stateless = true;
      toTag = statelessToTag(this.message);
    }
    this.send(this.stack.responseBytes(this.message, status, reason, options, toTag), status);
  }

  respond(response: SipMessage): void {
    if (!this.replied) this.send(response.toBuffer(), response.status);
  }

  private send(bytes: Buffer, status: number): void {
    this.lastResponse = bytes;
    if (status >= 200) this.replied = true;
    this.stack.sendResponse(this, bytes);
  }
}

/** A request Parley sent (RFC 3261 §17.1.2), until its final response or a timeout. */
class ClientTransaction {
  done = false;
  /** Resolves the promise request() returned; set as soon as the transaction is made. */
  settle: (response: SipMessage) => void = ignoreResponse;
  private timeout: TimerHandle | undefined;
  private retransmit: TimerHandle | undefined;
  private interval = 0;
  private sendTarget: Peer;

  constructor(
    private readonly stack: SipStack,
    readonly message: SipMessage,
    readonly branch: string,
    private readonly target: Peer,
    private proto: Protocol,
    private bytes: Buffer,
    private readonly encode: Encode | undefined,
  ) {
    this.sendTarget = proto === target.proto ? target : { ...target, proto };
  }

  /** Sends the request and arms Timer F (`timeout`) and, on an unreliable transport, Timer E. */
  start(timeout: number): void {
    this.timeout = this.stack.timers.schedule(timeout, () => this.fail(408, 'Request Timeout'));
    if (!RELIABLE[this.proto]) this.armRetransmit();
    this.send();
  }

  /** Ends the transaction with its final response. */
  complete(response: SipMessage): void {
    if (this.done) return;
    this.done = true;
    this.timeout?.cancel();
    this.retransmit?.cancel();
    this.stack.finishClient(this.branch);
    this.settle(response);
  }

  private fail(status: number, reason: string): void {
    if (this.done) return;
    const response = createResponse(this.message, status, reason);
    madeUp.add(response);
    this.complete(response);
  }

  // Methods rather than arrow-function fields: a transaction per relayed request makes no closures it may never use.
  private send(): void {
    this.stack.transports.sendOrReport(this.bytes, this.sendTarget, () => this.onSendFailed());
  }

  private onSendFailed(): void {
    if (this.proto === 'tcp' && this.target.proto === 'udp') {
      // RFC 3261 §18.1.1: when the TCP attempt fails, the request is retried over UDP.
      if (!this.encode) this.message.removeFirstValue('via');
      this.proto = 'udp';
      this.sendTarget = { ...this.target, proto: 'udp' };
      this.bytes = this.stack.withVia(this.message, 'udp', this.branch, this.encode);
      this.armRetransmit();
      this.send();
      return;
    }
    this.fail(503, 'Service Unavailable (transport error)');
  }

  /** Timer E: retransmit at T1, doubling up to T2, until a final response or Timer F. */
  private armRetransmit(): void {
    this.interval = this.stack.options.t1;
    this.retransmit = this.stack.timers.schedule(this.interval, () => this.onRetransmitTimer());
  }

  private onRetransmitTimer(): void {
    if (this.done) return;
    this.send();
    this.interval = Math.min(this.interval * 2, this.stack.options.t2);
    this.retransmit = this.stack.timers.schedule(this.interval, () => this.onRetransmitTimer());
  }
}

/**
 * The To tag of a stateless answer: the same for the same request, retransmissions included (RFC
 * 3261 §8.2.7), different for another one. Made of what tells requests apart (§16.11 hashes the same
 * for a stateless branch): Call-ID, From tag, CSeq and the top Via's branch, as they arrived (the
 * parser read From and the Via): a retransmission repeats them. The From tag rather than the whole
 * From: its URI tells no two requests apart that the rest does not, and is most of what would be hashed.
 */
function statelessToTag(message: SipMessage): string {
  return fnv1aHex(message.callId, paramOf(message.from, 'tag') ?? '', message.get('cseq') ?? '', message.via.branch ?? '');
}

/**
 * RFC 3261 §17.2.3 matching key; RFC 2543 peers without the magic cookie fall back to dialog fields.
 * In a string of its own, as branchKey's: kept through Timer J, a key made of parts cut from the
 * request would keep the request's whole text alive as long.
 */
function transactionKey(message: SipMessage): string {
  const via = message.via;
  if (via.branch?.startsWith(BRANCH_COOKIE)) return branchKey(via, message.method);
  return ownString(`${message.uri}|${paramOf(message.from, 'tag') ?? ''}|${message.callId}|${message.get('cseq')}|${via.host}:${via.port ?? ''}`);
}

/** The key of a request whose top Via carries an RFC 3261 branch: the branch, the sent-by and the method. */
function branchKey(via: Via, method: string): string {
  return ownString(`${via.branch}|${via.host}:${via.port ?? ''}|${method}`);
}

/**
 * Adds received/rport to the top Via (RFC 3261 §18.2.1, RFC 3581) and works out where
 * responses go (§18.2.2): the same connection on streams, the source address on UDP when rport
 * was asked for, else the source host with the Via port.
 */
function stampVia(message: SipMessage, via: Via, source: Peer): Peer {
  const wantsRport = paramOf(via, 'rport') !== undefined;
  if (wantsRport || (via.host !== source.host && via.host !== `[${source.host}]`)) {
    const line = message.get('via')!;
    const text = stampedViaText(line, via, source, wantsRport);
    // The parameters as the text now has them, or else edited as formatVia is to write them.
    if (text === undefined || !restampVia(via, line, text)) {
      via.params.set('received', source.host);
      if (wantsRport) via.params.set('rport', String(source.port));
    }
    message.replaceTopVia(via, text);
  }
  // Over UDP with rport, the source itself: no address of its own to keep through Timer J.
  if (RELIABLE[source.proto] || wantsRport) return source;
  return { proto: 'udp', host: source.host, port: via.port ?? 5060 };
}

const BARE_RPORT = ';rport';
const ANY_RPORT = /rport/i;

/** An rport parameter of a Via, with or without a value, and the blanks RFC 3261 §25.1 allows around it. */
const RPORT_PARAM = /;[ \t]*rport[ \t]*(?:=[ \t]*[^; \t]*)?(?=[ \t]*(?:;|$))/i;

/**
 * The top Via as the sender wrote it (`line`, the first Via header line), with received and rport as stampVia sets them: rport filled in
 * where it stands, received added at the end, as formatVia would write them. Undefined when the text
 * cannot simply be edited (several Vias on the line, a quoted value, a received or rport already
 * there twice): then formatVia writes the value anew.
 */
function stampedViaText(line: string, via: Via, source: Peer, wantsRport: boolean): string | undefined {
  if (paramOf(via, 'received') !== undefined || line.includes(',') || line.includes('"')) return undefined;
  const received = `;received=${source.host}`;
  if (!wantsRport) return line + received;
  // ";rport" last, as most clients write it, and "rport" nowhere before it: filled in without the regular expression.
  if (line.endsWith(BARE_RPORT) && line.search(ANY_RPORT) === line.length - BARE_RPORT.length + 1) return `${line}=${source.port}${received}`;
  const rport = RPORT_PARAM.exec(line);
  if (!rport) return undefined;
  const after = line.slice(rport.index + rport[0].length);
  if (RPORT_PARAM.test(after)) return undefined;
  return `${line.slice(0, rport.index)};rport=${source.port}${after}${received}`;
}
