// Parley as the XMPP server of xmpp_domain (server mode): server-to-server streams (RFC 6120) in
// both directions, STARTTLS, and Server Dialback (XEP-0220) to authenticate domains both ways.
// Incoming streams carry stanzas from remote domains once their db:result is verified with the
// domain's authoritative server; one outgoing stream per remote domain, found through SRV
// (resolve.ts), carries Parley's stanzas once the remote server accepts its dialback key, and
// stanzas wait on it while it connects. A domain whose server cannot be reached (no address, the
// connection refused or timed out, the TLS handshake failed) is dialled again with exponential
// backoff while stanzas wait for it, each up to delay_time. A stanza that cannot be delivered
// (waited too long, refused by the peer) comes back to the gateway as the stanza error a remote
// server would have sent.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { type Server as TlsServer, TLSSocket, checkServerIdentity, connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import xml from '@xmpp/xml';
import { parseJid } from '../addresses.js';
import { errorReply } from '../errors.js';
import { OutboundQueue } from '../queue.js';
import type { LinkState, OutboundStanza, PeerStatus, XmppLinkEvents } from '../backend.js';
import { dialbackKey, verifyDialbackKey } from './dialback.js';
import { ServerResolver } from './resolve.js';
import type { XmlLimits } from '../xml-guard.js';
import { NS_DIALBACK_FEATURE, NS_SASL, NS_SERVER, NS_TLS, XmlStream } from './stream.js';
import { Backoff } from '../../util/backoff.js';

export interface S2sLinkOptions {
  /** The XMPP domain Parley serves (xmpp_domain). */
  domain: string;
  listenHost: string;
  /** 0: any free port (tests). */
  port: number;
  /** DNS server for SRV and address lookups, "host:port"; undefined: the system's. */
  resolver?: string;
  /** PEM files for STARTTLS; without them no STARTTLS is offered (outgoing streams still use it). */
  tls?: { cert: string; key: string };
  /** Secret of the dialback keys (XEP-0185). */
  secret: string;
  /** Streams without a stanza for this long are closed. */
  idleMs: number;
  /** Longest time one outgoing connection may take to be authenticated. */
  connectTimeoutMs: number;
  /** Longest time a stanza waits for an outgoing stream to its domain (xmpp.delay_time). */
  delayTimeMs: number;
  /** Wait before dialling an unreachable domain again (a Backoff: jittered, doubled at each failure up to reconnectMaxMs). */
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** Most stanzas waiting per remote domain. */
  maxQueue: number;
  /** Outgoing streams must be encrypted: a peer that offers no STARTTLS is not sent anything. */
  requireTls: boolean;
  /** Outgoing streams: the peer's certificate must be valid for its domain (or the stream is closed). */
  verifyCertificates: boolean;
  /** PEM file of the certificate authorities trusted for that; undefined: Node's bundled ones. */
  ca?: string;
  /** What Parley accepts of a peer's XML. */
  xml: XmlLimits;
  /** Most incoming streams not authenticated yet, in total and from one IP address. */
  maxUnauthenticated: number;
  maxUnauthenticatedPerIp: number;
  /** Time an incoming stream has to authenticate a domain. */
  authTimeoutMs: number;
  /** Most outgoing connections to one domain in a minute. */
  dialsPerMinute: number;
}

const SOCKET_TIMEOUT_MS = 10_000;
const VERIFY_TIMEOUT_MS = 30_000;
const LISTEN_RETRY_MS = 5_000;
const NS_PING = 'urn:xmpp:ping';
/** Most dialback requests one incoming stream may have waiting for their authoritative servers. */
const MAX_PENDING_DIALBACKS = 10;
const DIAL_WINDOW_MS = 60_000;
/** Domains whose recent dials are remembered before the ones not dialled for a minute are forgotten. */
const MAX_TRACKED_DOMAINS = 1000;
const STANZAS = new Set(['message', 'presence', 'iq']);

export class S2sLink extends EventEmitter<XmppLinkEvents> {
  state: LinkState = 'stopped';
  /** Stream errors and failed connections. */
  errors = 0;
  /** Times listening had to be retried. */
  reconnects = 0;
  private readonly resolver: ServerResolver;
  /** Does the TLS handshakes of incoming STARTTLS (sockets are given to it; it never listens). */
  private readonly tlsAcceptor: TlsServer | undefined;
  /** Remote address and port -> the incoming session whose STARTTLS handshake is under way. */
  private readonly handshakes = new Map<string, Incoming>();
  private cas: string | undefined;
  private server: Server | undefined;
  private readonly incoming = new Set<Incoming>();
  private readonly outgoing = new Map<string, Outgoing>();
  private downSince = Date.now();
  private retryTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Remote domain -> times of the outgoing connections to it in the last minute. */
  private readonly dials = new Map<string, number[]>();

  constructor(
    readonly options: S2sLinkOptions,
    private readonly log: Logger,
  ) {
    super();
    this.resolver = new ServerResolver(options.resolver);
    if (options.tls) {
      // A tls.Server, unlike a bare server-side TLSSocket, checks the certificate a peer presents
      // (against the authorities of s2s_ca): asked for, not required, it may authenticate the
      // peer's domain (SASL EXTERNAL); without one, dialback does.
      this.tlsAcceptor = createTlsServer({ cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key), ca: this.trustedCas(), requestCert: true, rejectUnauthorized: false });
      this.tlsAcceptor.on('secureConnection', (socket: TLSSocket) => {
        const session = this.takeHandshake(socket);
        if (session) session.stream.upgrade(socket);
        else socket.destroy();
      });
      this.tlsAcceptor.on('tlsClientError', (error, socket) => {
        this.log.info({ err: error.message }, 's2s TLS handshake failed (incoming)');
        const session = this.takeHandshake(socket);
        if (session) this.forgetIncoming(session);
        socket.destroy();
      });
    }
  }

  /** Incoming streams must be encrypted before anything but STARTTLS: always when Parley offers it. */
  private get incomingNeedsTls(): boolean {
    return this.options.requireTls || this.tlsAcceptor !== undefined;
  }

  get online(): boolean {
    return this.state === 'online';
  }

  /** Server-to-server streams confirm nothing: a stanza is done once written (what waits for a stream is queued). */
  get unconfirmed(): number {
    return 0;
  }

  /** The certificate authorities of options.ca, read once. */
  trustedCas(): string | undefined {
    if (this.options.ca === undefined) return undefined;
    this.cas ??= readFileSync(this.options.ca, 'utf8');
    return this.cas;
  }

  downFor(now: number): number {
    return this.online ? 0 : now - this.downSince;
  }

  /** The address the s2s listener is bound to, once online. */
  address(): AddressInfo | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address : undefined;
  }

  peers(): PeerStatus[] {
    return [
      ...[...this.incoming].flatMap((session) =>
        [...session.domains].map((domain) => ({ domain, direction: 'in' as const, state: 'authenticated', secure: session.stream.secure })),
      ),
      ...[...this.outgoing.values()].map((session) => ({ domain: session.domain, direction: 'out' as const, state: session.state, secure: session.stream?.secure ?? false })),
    ];
  }

  start(): void {
    this.state = 'down';
    this.downSince = Date.now();
    this.listen();
    this.sweepTimer = setInterval(() => {
      const now = Date.now();
      for (const session of [...this.outgoing.values()]) session.expire(now);
    }, Math.min(1000, this.options.delayTimeMs)).unref();
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    clearInterval(this.sweepTimer);
    const server = this.server;
    this.server = undefined;
    for (const session of this.outgoing.values()) session.shutdown('remote-server-timeout', 'the gateway stopped');
    this.outgoing.clear();
    for (const session of this.incoming) session.stream.close();
    this.incoming.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Sends a stanza to the server of its recipient's domain; false when the link is not online. */
  send(stanza: OutboundStanza): boolean {
    if (!this.online) return false;
    const to = parseJid(stanza.attrs.to ?? '');
    if (!to || to.domain === this.options.domain) {
      this.log.debug({ to: stanza.attrs.to }, 'stanza for no remote domain dropped');
      return true;
    }
    this.outgoingTo(to.domain).enqueue(stanza);
    return true;
  }

  private listen(): void {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    server.once('error', (error) => {
      this.log.error({ err: error.message, host: this.options.listenHost, port: this.options.port }, 's2s listener failed; retrying');
      this.errors++;
      server.close();
      if (this.state === 'stopped') return;
      this.retryTimer = setTimeout(() => {
        this.reconnects++;
        this.listen();
      }, LISTEN_RETRY_MS).unref();
    });
    server.listen(this.options.port, this.options.listenHost, () => {
      if (this.state === 'stopped' || this.server !== server) return void server.close();
      this.state = 'online';
      const { address, port } = this.address()!;
      this.log.info({ domain: this.options.domain, address, port, tls: Boolean(this.tlsAcceptor) }, 'XMPP server (s2s) listening');
      if (!this.tlsAcceptor && this.options.requireTls) {
        this.log.warn('xmpp.s2s_require_tls without a certificate (xmpp.tls_cert or tls.cert): incoming server-to-server streams cannot be encrypted and are refused');
      }
      this.emit('online');
    });
  }

  private outgoingTo(domain: string): Outgoing {
    let session = this.outgoing.get(domain);
    if (!session || session.state === 'closed') {
      session = new Outgoing(domain, this);
      this.outgoing.set(domain, session);
      void session.connect();
    }
    return session;
  }

  // ---- incoming streams ----

  private accept(socket: Socket): void {
    if (this.state !== 'online') return void socket.destroy();
    const { options } = this;
    let idle = false;
    const stream = new XmlStream(socket, this.log, options.idleMs, () => ((idle = true), stream.close()), options.xml);
    const unauthenticated = [...this.incoming].filter((session) => session.domains.size === 0);
    const fromSameIp = unauthenticated.filter((session) => session.ip === socket.remoteAddress).length;
    if (unauthenticated.length >= options.maxUnauthenticated || fromSameIp >= options.maxUnauthenticatedPerIp) {
      this.errors++;
      const limit = fromSameIp >= options.maxUnauthenticatedPerIp ? `${options.maxUnauthenticatedPerIp} from one address` : `${options.maxUnauthenticated}`;
      return stream.fail('policy-violation', `too many streams not authenticated yet (at most ${limit})`, { from: options.domain });
    }
    const session: Incoming = {
      id: randomBytes(12).toString('hex'),
      ip: socket.remoteAddress,
      stream,
      domains: new Set(),
      pending: new Set(),
      // A stream that never authenticates would hold its place for as long as the peer likes.
      authDeadline: setTimeout(() => {
        if (session.domains.size > 0) return;
        this.errors++;
        stream.fail('connection-timeout', `no domain authenticated within ${options.authTimeoutMs / 1000} s`);
      }, options.authTimeoutMs).unref(),
    };
    this.incoming.add(session);
    stream.on('closed', () => {
      this.forgetIncoming(session);
      // Closed for want of stanzas, the peer's server is not gone: it opens a stream again when it has something to say.
      if (!idle) for (const domain of session.domains) this.incomingLost(domain);
    });
    stream.on('open', (attrs) => this.onIncomingOpen(session, attrs));
    stream.on('element', (element) => this.onIncomingElement(session, element));
  }

  private onIncomingOpen(session: Incoming, attrs: Record<string, string | undefined>): void {
    const { stream } = session;
    const header = { from: this.options.domain, to: attrs.from, id: session.id };
    if (attrs.to !== undefined && attrs.to !== this.options.domain) {
      this.errors++;
      return stream.fail('host-unknown', `this server is ${this.options.domain}`, header);
    }
    if (attrs.version === undefined ? this.incomingNeedsTls : !/^1\.\d+$/.test(attrs.version)) {
      // Without version 1.0 there are no stream features, so no STARTTLS (RFC 6120 §4.7.5).
      this.errors++;
      return stream.fail('unsupported-version', 'Parley speaks XMPP 1.0 streams, with STARTTLS', { ...header, version: '1.0' });
    }
    if (this.options.requireTls && !this.tlsAcceptor) {
      this.errors++;
      return stream.fail('policy-violation', 'Parley accepts only encrypted server-to-server streams but has no certificate to offer STARTTLS with', header);
    }
    session.peerDomain = attrs.from;
    stream.open(header);
    if (attrs.version === undefined) return; // RFC 3920 peers: no features
    const features =
      this.tlsAcceptor && !stream.secure
        ? xml('stream:features', {}, xml('starttls', { xmlns: NS_TLS }, xml('required')))
        : xml(
            'stream:features',
            {},
            this.externalProblem(session) === undefined ? xml('mechanisms', { xmlns: NS_SASL }, xml('mechanism', {}, 'EXTERNAL')) : null,
            xml('dialback', { xmlns: NS_DIALBACK_FEATURE }, xml('errors')),
          );
    stream.send(features);
  }

  /**
   * Why the certificate the peer presented does not authenticate the domain its stream header
   * names (XEP-0178): certificates not verified, none, untrusted, for another domain, or that
   * domain authenticated already. Undefined when it does: SASL EXTERNAL is offered then.
   */
  private externalProblem(session: Incoming): string | undefined {
    const { stream, peerDomain } = session;
    if (!this.options.verifyCertificates) return 'certificates are not verified (xmpp.s2s_verify_certificates)';
    if (!(stream.socket instanceof TLSSocket)) return 'the stream is not encrypted';
    if (peerDomain === undefined || !parseJid(peerDomain) || peerDomain.includes('@') || peerDomain.includes('/')) return 'the stream header names no domain';
    if (session.domains.has(peerDomain)) return `${peerDomain} is authenticated already`;
    return certificateProblem(stream.socket, peerDomain);
  }

  /** SASL EXTERNAL (RFC 6120 §6, XEP-0178): the peer's certificate authenticates its domain; the stream restarts. */
  private onSaslAuth(session: Incoming, element: xml.Element): void {
    const { stream, peerDomain } = session;
    const fail = (condition: string, why: string) => {
      this.errors++;
      this.log.info({ domain: peerDomain, why }, 's2s SASL EXTERNAL refused; dialback may still authenticate the stream');
      stream.send(xml('failure', { xmlns: NS_SASL }, xml(condition)));
    };
    if (element.attrs.mechanism !== 'EXTERNAL') return fail('invalid-mechanism', `mechanism ${element.attrs.mechanism ?? 'none'}`);
    const problem = this.externalProblem(session);
    if (problem !== undefined) return fail('not-authorized', problem);
    // The authorization identity, when given, must be the domain the certificate is valid for.
    const given = element.text().trim();
    const authzid = given === '' || given === '=' ? peerDomain : Buffer.from(given, 'base64').toString('utf8');
    if (authzid !== peerDomain) return fail('invalid-authzid', `authorization identity ${authzid ?? ''}`);
    this.authenticated(session, peerDomain!);
    this.log.info({ domain: peerDomain }, 's2s incoming stream authenticated (certificate, SASL EXTERNAL)');
    stream.write(`<success xmlns='${NS_SASL}'/>`);
    stream.restart();
  }

  private onIncomingElement(session: Incoming, element: xml.Element): void {
    const { stream } = session;
    if (element.is('starttls') && element.attrs.xmlns === NS_TLS) {
      if (!this.tlsAcceptor || stream.secure) {
        stream.write(`<failure xmlns='${NS_TLS}'/>`);
        return stream.close();
      }
      stream.write(`<proceed xmlns='${NS_TLS}'/>`);
      const socket = stream.detach();
      this.handshakes.set(endpointOf(socket), session);
      this.tlsAcceptor.emit('connection', socket);
      return;
    }
    if (this.incomingNeedsTls && !stream.secure) {
      this.errors++;
      return stream.fail('policy-violation', 'STARTTLS is required');
    }
    if (element.is('auth') && element.attrs.xmlns === NS_SASL) return this.onSaslAuth(session, element);
    if (element.name === 'db:result' || element.name === 'db:verify') {
      // Parley sends its dialback requests on its outgoing streams: answers have no place here (XEP-0220 §2.1).
      if (element.attrs.type !== undefined) {
        this.errors++;
        return stream.fail('not-authorized', `Parley asked nothing this <${element.name} type='${element.attrs.type}'/> could answer on this stream`);
      }
      return element.name === 'db:result' ? this.onDialbackResult(session, element) : this.onDialbackVerify(session, element);
    }
    if (!STANZAS.has(element.name)) {
      this.errors++;
      return stream.fail('unsupported-stanza-type', `<${element.name}/> is not a stanza`);
    }
    if (element.attrs.xmlns !== undefined && element.attrs.xmlns !== NS_SERVER) {
      this.errors++;
      return stream.fail('invalid-namespace', `stanzas between servers are of ${NS_SERVER}`);
    }
    const from = parseJid(element.attrs.from ?? '');
    const to = parseJid(element.attrs.to ?? '');
    if (!from || !to) {
      this.errors++;
      return stream.fail('improper-addressing', 'stanzas need valid from and to addresses');
    }
    if (!session.domains.has(from.domain)) {
      this.errors++;
      return stream.fail('not-authorized', `${from.domain} is not authenticated on this stream`);
    }
    if (to.domain !== this.options.domain) {
      this.errors++;
      return stream.fail('host-unknown', `this server is ${this.options.domain}`);
    }
    if (element.is('iq')) return this.answerIq(element);
    this.emit('stanza', element);
  }

  /** A remote server asks to be accepted as `from` (XEP-0220 §2.1.2): check the key with it. */
  private onDialbackResult(session: Incoming, element: xml.Element): void {
    const { stream } = session;
    const from = element.attrs.from ?? '';
    const to = element.attrs.to ?? '';
    if (to !== this.options.domain) {
      this.errors++;
      return stream.fail('host-unknown', `this server is ${this.options.domain}`);
    }
    if (!parseJid(from) || from.includes('@') || from.includes('/')) {
      return stream.send(xml('db:result', { from: to, to: from, type: 'error' }, xml('error', { type: 'cancel' }, xml('item-not-found', { xmlns: 'urn:ietf:params:xml:ns:xmpp-stanzas' }))));
    }
    // A request repeated while the first is checked, or for a domain accepted already, needs no second check.
    if (session.pending.has(from) || session.domains.has(from)) return;
    if (session.pending.size >= MAX_PENDING_DIALBACKS) {
      this.errors++;
      return stream.fail('policy-violation', `at most ${MAX_PENDING_DIALBACKS} dialback requests may wait on one stream`);
    }
    session.pending.add(from);
    const key = element.text().trim();
    void this.verifyWith(from, session.id, key).then((valid) => {
      session.pending.delete(from);
      if (!stream.isOpen) return;
      stream.send(xml('db:result', { from: to, to: from, type: valid ? 'valid' : 'invalid' }));
      if (valid) {
        this.authenticated(session, from);
        this.log.info({ domain: from, secure: stream.secure }, 's2s incoming stream authenticated (dialback)');
      } else {
        this.errors++;
        this.log.warn({ domain: from }, 's2s dialback key refused by its authoritative server');
        stream.close();
      }
    });
  }

  /** A receiving server checks a key Parley sent it (XEP-0220 §2.1.3): Parley is authoritative. */
  private onDialbackVerify(session: Incoming, element: xml.Element): void {
    const receiving = element.attrs.from ?? '';
    const originating = element.attrs.to ?? '';
    const id = element.attrs.id ?? '';
    const valid = originating === this.options.domain && verifyDialbackKey(this.options.secret, receiving, originating, id, element.text());
    session.stream.send(xml('db:verify', { from: originating, to: receiving, id, type: valid ? 'valid' : 'invalid' }));
  }

  /** Asks the authoritative server of `domain` whether it issued `key` for our stream `streamId`. */
  verifyWith(domain: string, streamId: string, key: string): Promise<boolean> {
    if (this.state !== 'online') return Promise.resolve(false);
    return this.outgoingTo(domain).verify(streamId, key);
  }

  /** Parley answers pings; any other request gets service-unavailable (RFC 6120 §8.4). */
  private answerIq(iq: xml.Element): void {
    const type = iq.attrs.type;
    if (type !== 'get' && type !== 'set') return;
    const reply = iq.getChild('ping', NS_PING) && type === 'get'
      ? xml('iq', { type: 'result', from: iq.attrs.to, to: iq.attrs.from, id: iq.attrs.id })
      : errorReply(iq, { condition: 'service-unavailable' });
    this.send(reply);
  }

  // ---- for Outgoing ----

  /** @internal */
  context(): OutgoingContext {
    return { options: this.options, log: this.log, resolver: this.resolver, link: this };
  }

  /** @internal A stanza that could not be delivered comes back as the error a server would send. */
  bounce(stanza: OutboundStanza, condition: string, text: string): void {
    const type = stanza.attrs.type;
    if (type === 'error' || type === 'result' || !stanza.is('message')) return;
    this.emit('stanza', errorReply(stanza, { condition, text }));
  }

  /**
   * @internal Records a connection to `domain` about to be made; false (and nothing recorded) when
   * there were dialsPerMinute in the last minute already: a domain that keeps failing, or that a
   * peer keeps naming in dialback requests, is not dialled without end.
   */
  mayDial(domain: string, now = Date.now()): boolean {
    if (this.dials.size > MAX_TRACKED_DOMAINS) {
      for (const [known, times] of this.dials) if (now - times.at(-1)! >= DIAL_WINDOW_MS) this.dials.delete(known);
    }
    const recent = (this.dials.get(domain) ?? []).filter((time) => now - time < DIAL_WINDOW_MS);
    const allowed = recent.length < this.options.dialsPerMinute;
    if (allowed) recent.push(now);
    if (recent.length > 0) this.dials.set(domain, recent);
    else this.dials.delete(domain);
    return allowed;
  }

  /** The incoming session whose STARTTLS handshake gave `socket` (the TLS one: it has the same remote end). */
  private takeHandshake(socket: Socket): Incoming | undefined {
    const key = endpointOf(socket);
    const session = this.handshakes.get(key);
    this.handshakes.delete(key);
    return session;
  }

  /** A remote domain authenticated on an incoming stream: its users' stanzas come on it. */
  private authenticated(session: Incoming, domain: string): void {
    session.domains.add(domain);
    this.emit('stream-up', domain);
  }

  /** An incoming stream of `domain` is gone: unless another one carries it, its users' presence can no longer come. */
  private incomingLost(domain: string): void {
    if ([...this.incoming].some((other) => other.domains.has(domain))) return;
    this.streamDown(domain);
  }

  /** @internal No stream of `domain` is up: told to the gateway (but not as Parley stops). */
  streamDown(domain: string): void {
    if (this.state !== 'stopped') this.emit('stream-down', domain);
  }

  private forgetIncoming(session: Incoming): void {
    clearTimeout(session.authDeadline);
    this.incoming.delete(session);
    session.stream.destroy();
  }

  /** @internal */
  forget(session: Outgoing): void {
    if (this.outgoing.get(session.domain) === session) this.outgoing.delete(session.domain);
  }

  /** @internal */
  countError(): void {
    this.errors++;
  }
}

interface Incoming {
  id: string;
  ip: string | undefined;
  stream: XmlStream;
  /** The domain the peer's stream header names (from). */
  peerDomain?: string;
  /** Remote domains authenticated on this stream, through dialback or the peer's certificate. */
  domains: Set<string>;
  /** Remote domains whose dialback key is being checked with their authoritative server. */
  pending: Set<string>;
  authDeadline: NodeJS.Timeout;
}

interface OutgoingContext {
  options: S2sLinkOptions;
  log: Logger;
  resolver: ServerResolver;
  link: S2sLink;
}

type OutgoingState = 'connecting' | 'retrying' | 'negotiating' | 'authenticating' | 'ready' | 'closed';

/** The stream Parley opens to one remote domain, for its stanzas and dialback verifications. */
class Outgoing {
  state: OutgoingState = 'connecting';
  stream: XmlStream | undefined;
  private streamId: string | undefined;
  /** Stanzas waiting for the stream to be authenticated, each up to delay_time. */
  private readonly queue: OutboundQueue<OutboundStanza>;
  private readonly verifications = new Map<string, { key: string; resolve: (valid: boolean) => void; sent: boolean }>();
  private resultSent = false;
  /** Why the session ended: what stanzas given to it afterwards bounce with. */
  private closedWith = { condition: 'remote-server-not-found', text: '' };
  /** Time the connection under way has to be authenticated. */
  private deadline: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private dialled = false;
  /** Why the latest connection attempt failed, told to the senders of stanzas that waited in vain. */
  private lastFailure: string | undefined;
  /** Whether the TLS handshake after STARTTLS is under way: a connection lost then is a failure to reach the server. */
  private tlsHandshaking = false;
  private readonly log: Logger;

  constructor(
    readonly domain: string,
    private readonly link: S2sLink,
  ) {
    const { log, options } = link.context();
    this.log = log.child({ peer: domain });
    this.queue = new OutboundQueue(options.maxQueue, options.delayTimeMs);
    this.backoff = new Backoff(options.reconnectMinMs, options.reconnectMaxMs);
  }

  enqueue(stanza: OutboundStanza): void {
    if (this.state === 'closed') return this.link.bounce(stanza, this.closedWith.condition, this.closedWith.text);
    if (this.state === 'ready' && this.stream?.isOpen) return this.stream.send(stanza);
    if (!this.queue.push(stanza, Date.now())) this.link.bounce(stanza, 'resource-constraint', `too many stanzas waiting for ${this.domain}`);
  }

  /** Stanzas that waited delay_time fail back to their senders; with nothing left to wait for, retrying stops. */
  expire(now: number): void {
    const expired = this.queue.takeExpired(now);
    if (expired.length === 0) return;
    const seconds = this.link.options.delayTimeMs / 1000;
    const text = `no XMPP server of ${this.domain} could be reached within ${seconds} s${this.lastFailure ? ` (${this.lastFailure})` : ''}`;
    this.log.info({ stanzas: expired.length, failure: this.lastFailure }, 's2s stanzas waited delay_time in vain');
    for (const stanza of expired) this.link.bounce(stanza, 'remote-server-timeout', text);
    if (this.state === 'retrying') this.closeIfUnneeded();
  }

  /** Whether anything waits for a stream: stanzas, or dialback verifications. */
  private waitedFor(): boolean {
    return this.queue.size > 0 || this.verifications.size > 0;
  }

  verify(streamId: string, key: string): Promise<boolean> {
    if (this.state === 'closed') return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), VERIFY_TIMEOUT_MS).unref();
      const finish = (valid: boolean) => {
        clearTimeout(timer);
        this.verifications.delete(streamId);
        resolve(valid);
      };
      this.verifications.get(streamId)?.resolve(false);
      this.verifications.set(streamId, { key, resolve: finish, sent: false });
      if (this.state === 'authenticating' || this.state === 'ready') this.sendVerifications();
    });
  }

  async connect(): Promise<void> {
    const { resolver, options } = this.link.context();
    if (!this.link.mayDial(this.domain)) {
      // Retries keep within the bound and wait; a domain that keeps failing anew is not dialled.
      if (this.dialled) return this.retryLater();
      this.log.warn({ limit: options.dialsPerMinute }, 'too many s2s connections to this domain in the last minute (xmpp.s2s_dials_per_minute); not dialling');
      return this.shutdown('remote-server-timeout', `Parley connected to ${this.domain} ${options.dialsPerMinute} times in the last minute; try again later`);
    }
    this.dialled = true;
    let socket: Socket | undefined;
    let failure = `no address found for ${this.domain}`;
    try {
      const targets = await resolver.targets(this.domain);
      // Said by the domain itself, not a failure to reach it: not worth retrying.
      if (targets.length === 0) return this.shutdown('remote-server-not-found', `${this.domain} offers no XMPP service`);
      for (const target of targets) {
        for (const address of await resolver.addresses(target.host)) {
          if (this.state === 'closed') return;
          socket = await openSocket(address, target.port).catch((error: Error) => {
            this.log.debug({ address, port: target.port, err: error.message }, 's2s connection attempt failed');
            failure = error.message;
            return undefined;
          });
          if (socket) break;
        }
        if (socket) break;
      }
    } catch (error) {
      this.log.debug({ err: (error as Error).message }, 's2s resolution failed');
      failure = (error as Error).message;
    }
    if (this.state === 'closed') return void socket?.destroy();
    if (!socket) return this.unreachable(failure);
    this.state = 'negotiating';
    this.resultSent = false;
    this.streamId = undefined;
    this.deadline = setTimeout(() => {
      if (this.state !== 'ready') this.shutdown('remote-server-timeout', `no authenticated stream to ${this.domain} within ${options.connectTimeoutMs / 1000} s`);
    }, options.connectTimeoutMs).unref();
    const stream = new XmlStream(socket, this.log, options.idleMs, () => this.idle(), options.xml);
    this.stream = stream;
    stream.on('open', (attrs) => this.onOpen(attrs));
    stream.on('element', (element) => this.onElement(element));
    stream.on('closed', () => this.onClosed());
    stream.open({ from: options.domain, to: this.domain });
  }

  private onOpen(attrs: Record<string, string | undefined>): void {
    this.streamId = attrs.id;
    if (attrs.from !== undefined && attrs.from !== this.domain) return this.stream!.fail('invalid-from', `expected ${this.domain}`);
    // Without version 1.0 no features come: dialback at once.
    if (attrs.version === undefined) this.authenticate();
  }

  private onElement(element: xml.Element): void {
    const stream = this.stream!;
    if (element.name === 'stream:features') {
      if (!stream.secure && element.getChild('starttls', NS_TLS)) {
        stream.write(`<starttls xmlns='${NS_TLS}'/>`);
        return;
      }
      if (!stream.secure && this.link.options.requireTls) {
        this.link.countError();
        this.log.warn('s2s peer offers no STARTTLS; nothing is sent unencrypted (xmpp.s2s_require_tls)');
        return this.shutdown('remote-server-not-found', `${this.domain} offers no encryption (STARTTLS), which Parley requires`);
      }
      return this.authenticate();
    }
    if (element.is('proceed') && element.attrs.xmlns === NS_TLS) {
      const { verifyCertificates, ca } = this.link.options;
      // Verification is ours (after the handshake) so that a refusal is logged and bounced with its reason.
      const tlsSocket = tlsConnect({ socket: stream.detach(), servername: this.domain, rejectUnauthorized: false, ca: ca === undefined ? undefined : this.link.trustedCas() });
      this.tlsHandshaking = true;
      tlsSocket.once('secureConnect', () => (this.tlsHandshaking = false));
      tlsSocket.on('error', (error) => this.log.info({ err: error.message }, 's2s TLS handshake failed (outgoing)'));
      if (verifyCertificates) {
        tlsSocket.once('secureConnect', () => {
          const problem = certificateProblem(tlsSocket, this.domain);
          if (!problem) return;
          this.link.countError();
          this.log.warn({ problem }, 's2s peer certificate refused (xmpp.s2s_verify_certificates)');
          this.shutdown('remote-server-not-found', `the certificate of ${this.domain} is not valid for it: ${problem}`);
        });
      }
      stream.upgrade(tlsSocket);
      stream.open({ from: this.link.options.domain, to: this.domain });
      return;
    }
    if (element.is('failure') && element.attrs.xmlns === NS_TLS) return stream.close();
    if (element.name === 'db:result') {
      const type = element.attrs.type;
      // Only the answer to the one request Parley made on this stream, for this domain pair (XEP-0220 §2.1.4).
      if (!this.resultSent || this.state !== 'authenticating' || !this.isOurPair(element)) {
        this.link.countError();
        return stream.fail('not-authorized', `Parley asked for no dialback result from ${element.attrs.from ?? 'nobody'} to ${element.attrs.to ?? 'nobody'} on this stream`);
      }
      if (type === 'valid') {
        this.state = 'ready';
        clearTimeout(this.deadline);
        this.backoff.reset();
        this.lastFailure = undefined;
        this.log.info({ secure: stream.secure }, 's2s outgoing stream authenticated (dialback)');
        for (const stanza of this.queue.drain()) stream.send(stanza);
      } else {
        this.link.countError();
        this.log.warn({ type }, 's2s dialback refused by the remote server');
        this.shutdown('remote-server-not-found', `${this.domain} refused Parley's dialback key`);
      }
      return;
    }
    if (element.name === 'db:verify') {
      // An answer for a verification Parley did not ask on this stream is ignored (XEP-0220 §2.4).
      const pending = this.verifications.get(element.attrs.id ?? '');
      if (pending?.sent && this.isOurPair(element)) pending.resolve(element.attrs.type === 'valid');
    }
    // Anything else has no business on an outgoing stream (RFC 6120 §4.1): ignored.
  }

  /** Whether a dialback answer is from the remote domain to Parley's. */
  private isOurPair(element: xml.Element): boolean {
    return element.attrs.from?.toLowerCase() === this.domain && element.attrs.to?.toLowerCase() === this.link.options.domain;
  }

  /** After the features (and TLS): verifications waiting, and our own dialback key. */
  private authenticate(): void {
    if (this.state === 'negotiating') this.state = 'authenticating';
    this.sendVerifications();
    if (this.resultSent || this.streamId === undefined) return;
    this.resultSent = true;
    const { domain, secret } = this.link.options;
    this.stream!.send(xml('db:result', { from: domain, to: this.domain }, dialbackKey(secret, this.domain, domain, this.streamId)));
  }

  private sendVerifications(): void {
    for (const [id, pending] of this.verifications) {
      if (pending.sent) continue;
      pending.sent = true;
      this.stream?.send(xml('db:verify', { from: this.link.options.domain, to: this.domain, id }, pending.key));
    }
  }

  private idle(): void {
    if (this.waitedFor()) return;
    this.log.debug('idle s2s stream closed');
    this.shutdown('remote-server-timeout', 'idle');
  }

  private onClosed(): void {
    if (this.state === 'closed') return;
    if (this.tlsHandshaking) return this.unreachable(`the TLS handshake with ${this.domain} failed`);
    this.shutdown('remote-server-not-found', `the stream to ${this.domain} closed before the stanza could be sent`);
  }

  /** A connection attempt that did not reach the server: what waits, waits for the next one. */
  private unreachable(reason: string): void {
    this.link.countError();
    if (this.lastFailure === undefined) {
      this.log.warn({ reason }, 'XMPP server of this domain unreachable; retrying while messages wait for it');
      this.link.streamDown(this.domain);
    }
    else this.log.debug({ reason }, 's2s connection attempt failed');
    this.lastFailure = reason;
    this.retryLater();
  }

  /** Dials again after the backoff, while something waits for a stream. */
  private retryLater(): void {
    clearTimeout(this.deadline);
    this.tlsHandshaking = false;
    this.stream?.removeAllListeners();
    this.stream?.destroy();
    this.stream = undefined;
    if (this.closeIfUnneeded()) return;
    this.state = 'retrying';
    // Verifications written on the lost stream go out again on the next.
    for (const pending of this.verifications.values()) pending.sent = false;
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      // Dialback verifications give up by themselves: nothing may be left to dial for.
      if (this.closeIfUnneeded()) return;
      this.state = 'connecting';
      void this.connect();
    }, delay).unref();
  }

  /** Ends the session when nothing waits for a stream any more; whether it did. */
  private closeIfUnneeded(): boolean {
    if (this.waitedFor()) return false;
    this.shutdown('remote-server-timeout', this.lastFailure ?? `nothing waits for a stream to ${this.domain}`);
    return true;
  }

  /** Ends this session: waiting stanzas bounce, pending verifications fail. */
  shutdown(condition: string, text: string): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.closedWith = { condition, text };
    clearTimeout(this.deadline);
    clearTimeout(this.retryTimer);
    this.link.forget(this);
    if (!wasReady && condition !== 'remote-server-timeout') this.link.countError();
    this.stream?.close();
    for (const pending of [...this.verifications.values()]) pending.resolve(false);
    for (const stanza of this.queue.drain()) this.link.bounce(stanza, condition, text);
  }
}

function endpointOf(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function openSocket(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(SOCKET_TIMEOUT_MS);
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', fail);
    socket.once('timeout', () => fail(new Error('connection timed out')));
    socket.once('connect', () => {
      socket.off('error', fail);
      socket.setTimeout(0);
      socket.removeAllListeners('timeout');
      resolve(socket);
    });
  });
}

/** Why a peer's certificate does not vouch for `domain` (untrusted, expired, another name); undefined when it does. */
function certificateProblem(socket: TLSSocket, domain: string): string | undefined {
  if (!socket.authorized) return String(socket.authorizationError ?? 'not trusted');
  return checkServerIdentity(domain, socket.getPeerCertificate())?.message;
}
