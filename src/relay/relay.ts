// MESSAGE relay (RFC 3428): a request for a local user is forked statefully to every live contact
// (the first 2xx wins), stored for later when nobody can take it, and refused when the user is
// unknown. The same path serves messages Parley itself originates (rooms, gateways), so they too
// reach WebSocket members and the offline store.
import type { Logger } from 'pino';
import type { Binding, OfflineStore } from '../store/types.js';
import {
  type IncomingRequest, type Peer, SipMessage, type SipStack, type SipUri, createResponse, parseNameAddr, formatNameAddr,
  parseUri, aorOf,
} from '../sip/index.js';
import type { Header } from '../sip/message.js';
import type { Registrar } from '../registrar/registrar.js';
import { digestRealm } from '../registrar/digest.js';

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
  /** Next hop for a recipient in another domain, instead of relay.outbound_proxy. */
  outboundProxy?: string;
  /** Call-ID of the MESSAGE (e.g. an XMPP thread); a new one when absent. */
  callId?: string;
}

/** Statuses that mean "nobody took it now", after which storing is the right thing (RFC 3428 §7). */
const UNREACHABLE = new Set([408, 480, 503, 504]);

export interface RelayStats {
  relayed: number;
  stored: number;
  delivered: number;
  failed: number;
}

export class Relay {
  readonly stats: RelayStats = { relayed: 0, stored: 0, delivered: 0, failed: 0 };
  private readonly delivering = new Set<string>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stack: SipStack,
    private readonly registrar: Registrar,
    private readonly offline: OfflineStore,
    private readonly options: RelayOptions,
    private readonly log: Logger,
  ) {
    registrar.on('registered', (aor) => void this.deliverStored(aor));
  }

  start(): void {
    this.sweepTimer = setInterval(() => void this.offline.removeExpired(Date.now()), 60_000).unref();
  }

  stop(): void {
    clearInterval(this.sweepTimer);
  }

  isLocal(uri: SipUri): boolean {
    return this.options.domains.has(uri.host);
  }

  /** Handles a MESSAGE that arrived from the network. */
  async handle(request: IncomingRequest): Promise<void> {
    const message = request.message;
    if (message.body.length > this.options.maxBody) {
      request.reply(413, 'Request Entity Too Large', { headers: [{ name: 'retry-after', value: '0' }] });
      return;
    }
    const target = message.requestUri;
    if (!this.isLocal(target)) {
      await this.forwardForeign(request, target);
      return;
    }
    const aor = aorOf(target);
    const result = await this.deliverLocal(aor, message, loopKey(message));
    if (result.response) {
      result.response.removeFirstValue('via');
      request.respond(result.response);
    } else request.reply(result.status, result.reason);
  }

  /** Sends a MESSAGE Parley originates; resolves with what became of it, never rejects. */
  async send(outgoing: OutgoingMessage): Promise<DeliveryResult> {
    const body = typeof outgoing.body === 'string' ? Buffer.from(outgoing.body, 'utf8') : outgoing.body;
    const headers = [...(outgoing.headers ?? [])];
    if (outgoing.date) headers.push({ name: 'date', value: outgoing.date.toUTCString() });
    const message = this.stack.createRequest({
      method: 'MESSAGE', uri: stripToUri(outgoing.to), from: outgoing.from, to: outgoing.to, headers, body,
      contentType: outgoing.contentType, callId: outgoing.callId,
    });
    let target: SipUri;
    try {
      target = message.requestUri;
    } catch {
      return { status: 416, reason: 'Unsupported URI', stored: false };
    }
    if (!this.isLocal(target)) {
      const response = await this.sendForeign(message, target, outgoing.outboundProxy ?? this.options.outboundProxy);
      return { status: response.status, reason: response.reason, stored: false };
    }
    const result = await this.deliverLocal(aorOf(target), message, loopKey(message));
    return { status: result.status, reason: result.reason, stored: result.status === 202 };
  }

  private async forwardForeign(request: IncomingRequest, target: SipUri): Promise<void> {
    if (!this.options.outboundProxy) {
      request.reply(this.options.foreignDomainStatus, this.options.foreignDomainStatus === 404 ? 'Not Found' : 'Forbidden (domain not served here)');
      return;
    }
    const copy = forwardCopy(request.message, request.message.uri, this.options.realms);
    if (!copy) {
      request.reply(483, 'Too Many Hops');
      return;
    }
    const response = await this.sendForeign(copy, target, this.options.outboundProxy);
    response.removeFirstValue('via');
    request.respond(response);
  }

  private async sendForeign(message: SipMessage, target: SipUri, proxy: string | undefined): Promise<SipMessage> {
    const hop = proxy ? parseUri(proxy) : target;
    const peer = await resolveHop(hop);
    if (!peer) return createResponse(message, 404, 'Not Found (domain not served here)');
    if (proxy) message.prepend('route', `<${proxy};lr>`);
    return this.stack.request(message, peer, { timeout: this.options.forkTimeout * 1000 });
  }

  /**
   * Forks to every live contact of a local AOR. With no contact, or when every fork found nobody,
   * the message is stored (202) if the user is known; an unknown user gets 404.
   */
  private async deliverLocal(aor: string, message: SipMessage, loop: string): Promise<{ status: number; reason: string; response?: SipMessage }> {
    const bindings = this.registrar.lookup(aor);
    const targets = bindings.map((b) => ({ binding: b, peer: this.registrar.targetOf(b) })).filter((t) => t.peer);
    if (targets.length > 0) {
      const best = await this.fork(message, targets as Array<{ binding: Binding; peer: Peer }>, loop);
      if (best.status < 300) {
        this.stats.relayed++;
        return { status: best.status, reason: best.reason, response: best };
      }
      if (!UNREACHABLE.has(best.status)) return { status: best.status, reason: best.reason, response: best };
    } else if (!(await this.options.isKnownUser(aor))) {
      return { status: 404, reason: 'Not Found' };
    }
    return this.store(aor, message);
  }

  private async store(aor: string, message: SipMessage): Promise<{ status: number; reason: string }> {
    if (!this.options.offline.enabled) return { status: 480, reason: 'Temporarily Unavailable' };
    const now = Date.now();
    const id = await this.offline.add(
      {
        aor,
        fromHeader: withoutTag(message.get('from')!),
        toHeader: withoutTag(message.get('to')!),
        contentType: message.get('content-type') ?? 'text/plain',
        body: Buffer.from(message.body),
        receivedAt: dateOf(message) ?? now,
        expiresAt: now + this.options.offline.expires * 1000,
      },
      this.options.offline.maxPerUser,
    );
    if (id === 'full') return { status: 486, reason: 'Busy Here (offline mailbox full)' };
    this.stats.stored++;
    this.log.debug({ aor, id }, 'message stored for offline delivery');
    return { status: 202, reason: 'Accepted (stored for offline delivery)' };
  }

  /** Parallel fork of a non-INVITE request (RFC 3261 §16.7): the first 2xx wins, else the best final. */
  private fork(message: SipMessage, targets: Array<{ binding: Binding; peer: Peer }>, loop: string): Promise<SipMessage> {
    return new Promise((resolve) => {
      let pending = targets.length;
      let best: SipMessage | undefined;
      let done = false;
      for (const { binding, peer } of targets) {
        const copy = forwardCopy(message, binding.contact, this.options.realms, binding.path);
        if (!copy) {
          resolve(createResponse(message, 483, 'Too Many Hops'));
          return;
        }
        void this.stack.request(copy, peer, { loopKey: loop, timeout: this.options.forkTimeout * 1000 }).then((response) => {
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

  /** Delivers stored messages to an AOR that just registered, oldest first, removing each on 2xx. */
  async deliverStored(aor: string): Promise<void> {
    if (this.delivering.has(aor)) return;
    this.delivering.add(aor);
    try {
      for (const stored of await this.offline.listFor(aor, Date.now())) {
        const message = this.stack.createRequest({
          method: 'MESSAGE',
          uri: stripToUri(stored.toHeader),
          from: stored.fromHeader,
          to: stored.toHeader,
          headers: [{ name: 'date', value: new Date(stored.receivedAt).toUTCString() }],
          body: stored.body,
          contentType: stored.contentType,
        });
        const bindings = this.registrar.lookup(aor);
        const targets = bindings.map((b) => ({ binding: b, peer: this.registrar.targetOf(b) })).filter((t) => t.peer);
        if (targets.length === 0) break;
        const response = await this.fork(message, targets as Array<{ binding: Binding; peer: Peer }>, loopKey(message));
        if (response.status >= 300) {
          this.stats.failed++;
          this.log.info({ aor, id: stored.id, status: response.status }, 'offline delivery failed; kept for the next registration');
          break;
        }
        await this.offline.remove(stored.id);
        this.stats.delivered++;
      }
    } catch (error) {
      this.log.error({ err: error, aor }, 'offline delivery error');
    } finally {
      this.delivering.delete(aor);
    }
  }
}

/**
 * A copy of `message` for the next hop, or undefined when Max-Forwards is exhausted. What vouches for
 * the sender does not travel on: credentials for Parley's own realms (RFC 3261 §22.3), and
 * P-Asserted-Identity and Identity, which only a trusted source may assert (RFC 3325 §5, RFC 8224 §6)
 * and Parley trusts no source yet.
 */
function forwardCopy(message: SipMessage, requestUri: string, realms: ReadonlySet<string>, path?: string): SipMessage | undefined {
  const maxForwards = Number(message.get('max-forwards') ?? '70');
  if (maxForwards <= 0) return undefined;
  const headers = message.headers.filter((h) => {
    if (UNTRUSTED_IDENTITY.has(h.name)) return false;
    if (h.name !== 'authorization' && h.name !== 'proxy-authorization') return true;
    const realm = digestRealm(h.value);
    return realm === undefined || !realms.has(realm);
  });
  const copy = new SipMessage({ method: message.method, uri: requestUri, headers, body: message.body });
  copy.set('max-forwards', String(maxForwards - 1));
  if (path) copy.prepend('route', path);
  return copy;
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
  return fnv1a(`${message.uri}|${message.from.params.get('tag') ?? ''}|${message.get('to')}|${message.callId}|${message.cseq.seq}`);
}

/** A fast non-cryptographic hash: loop detection needs to tell requests apart, not to resist forgery. */
function fnv1a(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  return (a >>> 0).toString(36) + (b >>> 0).toString(36);
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

function stripToUri(value: string): string {
  try {
    return parseNameAddr(value).uri;
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
