// The gateway's connection to the XMPP server as a component (XEP-0114), through @xmpp/component:
// handshake, whitespace keepalive, reconnection with exponential backoff, and a stream that bad
// input from the server closes (to be opened again) instead of crashing Parley.
import { EventEmitter, once } from 'node:events';
import type { Logger } from 'pino';
import xml from '@xmpp/xml';
import { component, type Component, type XmppError } from '@xmpp/component';
import { type XmlLimits, guardConnection } from './xml-guard.js';

export type LinkState = 'down' | 'online' | 'stopped';

/** One XMPP server Parley has a stream with: the component's server, or an s2s peer domain. */
export interface PeerStatus {
  domain: string;
  direction: 'in' | 'out';
  state: string;
  secure: boolean;
}

export interface ComponentLinkOptions {
  host: string;
  port: number;
  /** The component's domain, as the XMPP server knows it. */
  domain: string;
  password: string;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  keepaliveMs: number;
  /** What the link accepts of the server's XML. */
  xml: XmlLimits;
}

interface LinkEvents {
  online: [];
  stanza: [xml.Element];
}

/** Time allowed for connecting, opening the stream and the handshake, together. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Time a stream being closed may take before its socket is dropped. */
const CLOSE_GRACE_MS = 5_000;

export class ComponentLink extends EventEmitter<LinkEvents> {
  state: LinkState = 'stopped';
  /** Stream and connection errors. */
  errors = 0;
  reconnects = 0;
  private readonly entity: Component;
  private readonly service: string;
  private downSince = Date.now();
  private retryDelay: number;
  private failedAttempts = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private lastError: Error | undefined;

  constructor(
    private readonly options: ComponentLinkOptions,
    private readonly log: Logger,
  ) {
    super();
    this.service = `xmpp://${options.host}:${options.port}`;
    this.retryDelay = options.reconnectMinMs;
    this.entity = component({ service: this.service, domain: options.domain, password: options.password });
    // The backoff below replaces the library's retry, which waits one second every time.
    this.entity.reconnect.stop();
    // Bad input from the server closes the stream (to be opened again) instead of crashing Parley.
    guardConnection(this.entity, options.xml);
    this.entity.on('status', (status: string) => this.onStatus(status));
    this.entity.on('error', (error: Error) => this.onError(error));
    this.entity.on('stanza', (stanza: xml.Element) => this.emit('stanza', stanza));
  }

  get online(): boolean {
    return this.state === 'online';
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
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    clearInterval(this.keepaliveTimer);
    try {
      await this.entity.stop();
    } catch {
      // Closed already.
    }
  }

  /** Writes a stanza; false when the link is not online. */
  send(stanza: xml.Element): boolean {
    if (!this.online) return false;
    // A failed write is followed by the socket closing, which takes the link down.
    this.entity.write(serialize(stanza)).catch((error: Error) => this.log.debug({ err: error.message }, 'XMPP write failed'));
    return true;
  }

  private async attempt(): Promise<void> {
    try {
      await Promise.all([
        once(this.entity, 'online', { signal: AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS) }),
        this.entity.connect(this.service).then(() => this.entity.open({ domain: this.options.domain })),
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
      this.retryDelay = this.options.reconnectMinMs;
      this.failedAttempts = 0;
      this.lastError = undefined;
      this.keepaliveTimer = setInterval(() => this.keepalive(), this.options.keepaliveMs).unref();
      this.log.info({ domain: this.options.domain, server: this.service }, 'XMPP component link online');
      this.emit('online');
    } else if (this.online) {
      this.state = 'down';
      this.downSince = Date.now();
      clearInterval(this.keepaliveTimer);
      this.log.warn({ domain: this.options.domain, status }, 'XMPP component link lost; reconnecting');
      const socket = this.entity.socket;
      setTimeout(() => socket?.destroy(), CLOSE_GRACE_MS).unref();
    }
    if (status === 'disconnect') this.scheduleRetry();
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.options.reconnectMaxMs);
    this.retryTimer = setTimeout(() => {
      this.reconnects++;
      void this.attempt();
    }, delay).unref();
  }

  private keepalive(): void {
    this.entity.write(' ').catch((error: Error) => this.log.debug({ err: error.message }, 'XMPP keepalive failed'));
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
 * The stanza as XML text. Carriage returns are written as character references: a literal one
 * would reach the recipient as a line feed (XML 1.0 §2.11 end-of-line handling).
 */
function serialize(stanza: xml.Element): string {
  return stanza.toString().replace(/\r/g, '&#13;');
}
