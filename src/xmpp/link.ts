// The gateway's connection to the XMPP server as a component (XEP-0114), through @xmpp/component:
// handshake, whitespace keepalive, reconnection with exponential backoff, and a stream that bad
// input from the server closes (to be opened again) instead of crashing Parley.
// XEP-0114 acknowledges nothing, and a stanza written as the server goes away may never be read.
// So every stanza written is kept until a later round trip covers it: an XEP-0199 ping written
// after it, whose answer (result or error) proves the server read everything before it on that
// stream. What no answer covered when the link is lost is written again, in order, on the next
// stream, before anything newer: delivery is at least once.
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import type { Logger } from 'pino';
import xml from '@xmpp/xml';
import { component, type Component, type XmppError } from '@xmpp/component';
import { parseJid } from './addresses.js';
import { PromptAcknowledgement } from './acknowledgement.js';
import { WrittenStanza, escapeAttribute } from './messages.js';
import type { LinkState, OutboundStanza, PeerStatus, XmppLinkEvents } from './backend.js';
import { type XmlLimits, guardConnection } from './xml-guard.js';
import { Backoff } from '../util/backoff.js';

export interface ComponentLinkOptions {
  host: string;
  port: number;
  /** The component's domain, as the XMPP server knows it. */
  domain: string;
  password: string;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  keepaliveMs: number;
  /** Most stanzas kept until the server confirms them (xmpp.max_queue); beyond that the oldest is taken as delivered. */
  maxUnconfirmed: number;
  /** What the link accepts of the server's XML. */
  xml: XmlLimits;
}


/** Time allowed for connecting, opening the stream and the handshake, together. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Time a stream being closed may take before its socket is dropped. */
const CLOSE_GRACE_MS = 5_000;
const NS_PING = 'urn:xmpp:ping';
/** How long the stanzas written gather before a ping covers them. */
const PING_DELAY_MS = 20;

export class ComponentLink extends EventEmitter<XmppLinkEvents> {
  state: LinkState = 'stopped';
  /** Stream and connection errors. */
  errors = 0;
  reconnects = 0;
  private readonly entity: Component;
  private readonly service: string;
  private downSince = Date.now();
  private readonly backoff: Backoff;
  private failedAttempts = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private lastError: Error | undefined;
  /** Stanzas written (on this stream or an earlier one) that no ping answer has covered yet, oldest first. */
  private unconfirmedStanzas: OutboundStanza[] = [];
  /** The ping in flight on this stream: its id, when it was written, and how many of `unconfirmed` precede it. */
  private ping: { id: string; at: number; covers: number } | undefined;
  /** Set while the stanzas a ping is to cover gather (see schedulePing). */
  private pingTimer: NodeJS.Timeout | undefined;
  /** What this turn of the event loop writes, serialised: written at once (one socket write) at its end. */
  private output: string[] = [];
  private flushScheduled = false;
  /** What the server writes is acknowledged at once (see attempt()). */
  private readonly acknowledgement = new PromptAcknowledgement(() => this.writeWhitespace());
  private pings = 0;
  private readonly pingPrefix = `parley-ping-${randomBytes(4).toString('hex')}`;

  constructor(
    private readonly options: ComponentLinkOptions,
    private readonly log: Logger,
  ) {
    super();
    this.service = `xmpp://${options.host}:${options.port}`;
    this.backoff = new Backoff(options.reconnectMinMs, options.reconnectMaxMs);
    this.entity = component({ service: this.service, domain: options.domain, password: options.password });
    // The backoff below replaces the library's retry, which waits one second every time.
    this.entity.reconnect.stop();
    // Bad input from the server closes the stream (to be opened again) instead of crashing Parley.
    guardConnection(this.entity, options.xml);
    this.entity.on('status', (status: string) => this.onStatus(status));
    this.entity.on('error', (error: Error) => this.onError(error));
    onlyIqThroughMiddleware(this.entity);
    this.entity.on('stanza', (stanza: xml.Element) => {
      if (!this.isPingAnswer(stanza)) this.emit('stanza', stanza);
    });
  }

  get online(): boolean {
    return this.state === 'online';
  }

  get unconfirmed(): number {
    return this.unconfirmedStanzas.length;
  }

  /** Milliseconds since the link was last usable (or since it started trying); 0 while online. */
  downFor(now: number): number {
    return this.online ? 0 : now - this.downSince;
  }

  /** The component's one peer: the XMPP server it is connected to. */
  peers(): PeerStatus[] {
    return [{ domain: `${this.options.host}:${this.options.port}`, direction: 'out', state: this.state, secure: false }];
  }

  start(): void {
    this.state = 'down';
    this.downSince = Date.now();
    void this.attempt();
  }

  async stop(): Promise<void> {
    // What was sent last (the unavailable presence of XMPP watchers' SIP users) goes before the stream closes.
    this.flush();
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    clearTimeout(this.pingTimer);
    clearInterval(this.keepaliveTimer);
    try {
      await this.entity.stop();
    } catch {
      // Closed already.
    }
  }

  /** Writes a stanza, kept until a ping answer confirms it; false when the link is not online. */
  send(stanza: OutboundStanza): boolean {
    if (!this.online) return false;
    this.write(stanza);
    this.unconfirmedStanzas.push(stanza);
    if (this.unconfirmedStanzas.length > this.options.maxUnconfirmed) {
      // Written long ago and most likely read: given up on rather than kept without bound.
      this.unconfirmedStanzas.shift();
      if (this.ping && this.ping.covers > 0) this.ping.covers--;
      this.log.debug({ limit: this.options.maxUnconfirmed }, 'XMPP stanza no longer kept for resending (xmpp.max_queue unconfirmed)');
    }
    this.schedulePing();
    return true;
  }

  private write(stanza: OutboundStanza): void {
    this.output.push(serialize(stanza));
    // Written at the end of this turn: that write carries the acknowledgement of what the server wrote.
    this.acknowledgement.written();
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes what this turn of the event loop wrote together. */
  private flush(): void {
    this.flushScheduled = false;
    const text = this.output.join('');
    this.output = [];
    if (text !== '') this.writeText(text);
  }

  private writeText(text: string): void {
    this.acknowledgement.written();
    // A failed write is followed by the socket closing, which takes the link down.
    this.entity.write(text).catch((error: Error) => this.log.debug({ err: error.message }, 'XMPP write failed'));
  }

  /** A whitespace: the keepalive, or the acknowledgement of what the server wrote when nothing else is written. */
  private writeWhitespace(): void {
    if (this.online) this.writeText(' ');
  }

  /**
   * One ping after the stanzas written in the next PING_DELAY_MS, unless one is in flight already:
   * at a few messages a second each would otherwise cost the server an iq of its own (and us its
   * answer and the acknowledgement of that), though nothing waits for the confirmation while the
   * link stays up.
   */
  private schedulePing(): void {
    if (this.ping || this.pingTimer) return;
    this.pingTimer = setTimeout(() => {
      this.pingTimer = undefined;
      if (!this.ping) this.sendPing();
    }, PING_DELAY_MS).unref();
  }

  /**
   * Pings the server of the latest unconfirmed stanza's recipient: the component's server answers
   * for its own domains, and routes the ping elsewhere only after it has read what came before.
   */
  private sendPing(): void {
    const last = this.unconfirmedStanzas.at(-1);
    if (!this.online || !last) return;
    const id = `${this.pingPrefix}-${++this.pings}`;
    const to = parseJid(last.attrs.to ?? '')?.domain;
    this.ping = { id, at: Date.now(), covers: this.unconfirmedStanzas.length };
    this.write(pingStanza(id, this.options.domain, to));
  }

  /** Whether `stanza` answers the ping in flight; if so, what it covers is confirmed. */
  private isPingAnswer(stanza: xml.Element): boolean {
    const ping = this.ping;
    const type = stanza.attrs.type;
    if (!ping || !stanza.is('iq') || stanza.attrs.id !== ping.id || (type !== 'result' && type !== 'error')) return false;
    this.ping = undefined;
    this.unconfirmedStanzas.splice(0, ping.covers);
    if (this.unconfirmedStanzas.length > 0) this.schedulePing();
    return true;
  }

  private async attempt(): Promise<void> {
    try {
      await Promise.all([
        once(this.entity, 'online', { signal: AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS) }),
        this.entity.connect(this.service).then(() => {
          // Each turn of the event loop is written at once (flush): Nagle's algorithm would only
          // hold a turn's stanzas back until the server acknowledged the previous turn's.
          this.entity.socket?.setNoDelay(true);
          // The same the other way: a server that keeps Nagle's algorithm (Prosody does by default)
          // holds its next stanzas until we acknowledge what it wrote, and a gateway that only reads
          // acknowledges late (delayed ACK). What we write in return carries the acknowledgement.
          this.entity.socket?.on('data', () => this.acknowledgement.read());
          return this.entity.open({ domain: this.options.domain });
        }),
      ]);
    } catch {
      // Reported through 'error'. Dropping the socket ends the attempt with the one 'disconnect'
      // that schedules the next.
      this.entity.socket?.destroy();
    }
  }

  private onStatus(status: string): void {
    if (this.state === 'stopped') return;
    if (status === 'online') {
      this.state = 'online';
      this.backoff.reset();
      this.failedAttempts = 0;
      this.lastError = undefined;
      this.keepaliveTimer = setInterval(() => this.keepalive(), this.options.keepaliveMs).unref();
      this.log.info({ domain: this.options.domain, server: this.service }, 'XMPP component link online');
      this.resendUnconfirmed();
      this.emit('online');
    } else if (this.online) {
      this.state = 'down';
      this.downSince = Date.now();
      clearInterval(this.keepaliveTimer);
      // Its answer, if any, would come on a stream that is gone; what was not written yet is written again from unconfirmedStanzas.
      this.ping = undefined;
      this.output = [];
      this.log.warn({ domain: this.options.domain, status }, 'XMPP component link lost; reconnecting');
      this.emit('stream-down');
      const socket = this.entity.socket;
      setTimeout(() => socket?.destroy(), CLOSE_GRACE_MS).unref();
    }
    if (status === 'disconnect') this.scheduleRetry();
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.reconnects++;
      void this.attempt();
    }, delay).unref();
  }

  /** What the lost stream may not have delivered goes first on the new one, in order. */
  private resendUnconfirmed(): void {
    if (this.unconfirmedStanzas.length === 0) return;
    this.log.info({ stanzas: this.unconfirmedStanzas.length }, 'writing again what the XMPP server had not confirmed before the link was lost');
    for (const stanza of this.unconfirmedStanzas) this.write(stanza);
    this.schedulePing();
  }

  private keepalive(): void {
    // A ping unanswered for a keepalive period (lost, or routed to a server that stays silent) is
    // replaced by one that covers everything written.
    if (this.unconfirmedStanzas.length > 0 && (!this.ping || Date.now() - this.ping.at >= this.options.keepaliveMs)) {
      this.ping = undefined;
      return this.sendPing();
    }
    this.writeWhitespace();
  }

  private onError(error: Error): void {
    // A refused handshake is emitted twice, as the stream error and as the handshake's failure.
    if (error === this.lastError) return;
    this.lastError = error;
    this.errors++;
    const domain = this.options.domain;
    const { condition, text } = error as XmppError;
    if (error instanceof xml.XMLError) {
      this.log.warn({ err: error.message, condition }, 'bad XML from the XMPP server: stream closed, reconnecting');
    } else if (condition === 'not-authorized') {
      this.log.error({ domain, server: this.service }, 'component handshake refused: check xmpp_password');
    } else if (condition === 'host-unknown') {
      this.log.error({ domain, server: this.service }, 'the XMPP server has no component of this domain: check xmpp_domain and its configuration');
    } else if (condition === 'conflict') {
      this.log.error({ domain, server: this.service }, 'another component is connected for this domain');
    } else if (condition) {
      this.log.warn({ condition, text }, 'XMPP stream error');
    } else if (this.failedAttempts++ === 0) {
      // Unreachable servers are retried for as long as they stay so: said once, not at every retry.
      this.log.warn({ err: error.message, server: this.service }, 'XMPP server unreachable; retrying');
    } else {
      this.log.debug({ err: error.message }, 'XMPP connection attempt failed');
    }
  }
}

/**
 * The library's middleware answers iq requests (and would take iq answers for its own requests);
 * it builds a context, parsing both JIDs, for every element it is given: only iq are given to it,
 * not the messages and presence that make up the traffic.
 */
function onlyIqThroughMiddleware(entity: Component): void {
  for (const listener of entity.listeners('element') as Array<(element: xml.Element) => void>) {
    entity.off('element', listener);
    entity.on('element', (element: xml.Element) => {
      if (element.name === 'iq') listener(element);
    });
  }
}

/**
 * The stanza as XML text. Carriage returns are written as character references: a literal one
 * would reach the recipient as a line feed (XML 1.0 §2.11 end-of-line handling). A stanza written
 * from a template has them so already.
 */
function serialize(stanza: OutboundStanza): string {
  return stanza instanceof WrittenStanza ? stanza.toString() : stanza.toString().replace(/\r/g, '&#13;');
}

/** An XEP-0199 ping, written from a template: one goes out every PING_DELAY_MS while stanzas are. */
function pingStanza(id: string, from: string, to: string | undefined): WrittenStanza {
  const toAttribute = to === undefined ? '' : ` to="${escapeAttribute(to)}"`;
  return new WrittenStanza('iq', { type: 'get', id, from, to }, `<iq type="get" id="${escapeAttribute(id)}" from="${escapeAttribute(from)}"${toAttribute}><ping xmlns="${NS_PING}"/></iq>`);
}
