// The XMPP network: each linked account is its own @xmpp/client session (STARTTLS or direct TLS,
// SCRAM; PLAIN only inside TLS), online with presence priority `priority`, reconnecting with
// backoff after a lost or failed connection. A refused password, a server that does not host the
// account's domain, or a TLS requirement the server cannot meet fail the session for good: the
// service tells the user once, and nothing retries.
import { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { client, type Client, type SaslAuthenticate } from '@xmpp/client';
import xml from '@xmpp/xml';
import type { Logger } from 'pino';
import type { SipUri } from '../sip/index.js';
import { type Jid, addressMapping, formatJid, parseJid } from '../xmpp/addresses.js';
import { readStanzaError, statusForCondition } from '../xmpp/errors.js';
import { type InstantMessage, messageStanza, readStanza } from '../xmpp/messages.js';
import type { NetworkAdapter, NetworkSession, SessionAccount, SessionEvents, SessionSettings, SessionState } from './adapter.js';

const DEFAULT_PORT = 5222;
const DIRECT_TLS_PORT = 5223;
/** Time allowed for connecting, TLS, authentication and binding, together. */
const CONNECT_TIMEOUT_MS = 20_000;
/** SASL conditions (RFC 6120 §6.5) and stream errors (§4.9.3) after which retrying cannot help. */
const PERMANENT_CONDITIONS = new Set([
  'not-authorized', 'account-disabled', 'credentials-expired', 'encryption-required', 'invalid-mechanism',
  'mechanism-too-weak', 'host-unknown', 'improper-addressing', 'policy-violation', 'not-authorized',
]);

class PermanentError extends Error {}

export class XmppNetwork implements NetworkAdapter {
  readonly id = 'xmpp' as const;
  private readonly mapping;

  constructor(
    readonly alias: string,
    delimiter: string,
    private readonly log: Logger,
  ) {
    // The jabber seed's addresses are the xmpp gateway's separator convention under another domain.
    this.mapping = addressMapping({ convention: 'separator', separator: delimiter, gatewayDomain: alias, xmppDomain: alias });
  }

  normalizeUser(extUser: string): string | undefined {
    const jid = parseJid(extUser);
    return jid && jid.local && !jid.resource ? formatJid(jid) : undefined;
  }

  contactOf(target: SipUri): string | undefined {
    const jid = this.mapping.xmppRecipient(target);
    return jid && formatJid(jid);
  }

  sipAddressOf(contact: string): string | undefined {
    const jid = parseJid(contact);
    return jid && this.mapping.sipSender({ ...jid, resource: '' });
  }

  createSession(account: SessionAccount, settings: SessionSettings): NetworkSession {
    return new XmppSession(account, settings, this.log.child({ account: account.extUser }));
  }
}

export class XmppSession extends EventEmitter<SessionEvents> implements NetworkSession {
  state: SessionState = 'stopped';
  private readonly jid: Jid;
  private entity: Client | undefined;
  private retryDelay: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly account: SessionAccount,
    private readonly settings: SessionSettings,
    private readonly log: Logger,
  ) {
    super();
    const jid = parseJid(account.extUser);
    if (!jid?.local) throw new Error(`not a JID: ${account.extUser}`);
    this.jid = jid;
    this.retryDelay = settings.reconnectMinMs;
  }

  start(): void {
    if (this.state === 'online' || this.state === 'connecting') return;
    this.state = 'connecting';
    this.retryDelay = this.settings.reconnectMinMs;
    void this.attempt();
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    await this.drop();
  }

  send(to: string, im: InstantMessage, id: string): boolean {
    const entity = this.entity;
    if (this.state !== 'online' || !entity) return false;
    const stanza = messageStanza(im, { from: entity.jid?.toString() ?? formatJid(this.jid), to, id, type: 'chat' });
    entity.send(stanza).catch((error: Error) => this.log.debug({ err: error.message }, 'XMPP write failed'));
    return true;
  }

  private get service(): string {
    const { server, port, tls } = this.account;
    const host = server ?? this.jid.domain;
    return tls === 'direct' ? `xmpps://${host}:${port ?? DIRECT_TLS_PORT}` : `xmpp://${host}:${port ?? DEFAULT_PORT}`;
  }

  private async attempt(): Promise<void> {
    const entity = this.createEntity();
    this.entity = entity;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        entity.start(),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('connection timed out')), CONNECT_TIMEOUT_MS))),
      ]);
    } catch (error) {
      if (this.entity !== entity || this.state !== 'connecting') return;
      await this.drop();
      if (this.state !== 'connecting') return;
      const reason = describe(error);
      if (isPermanent(error)) {
        this.state = 'failed';
        this.log.warn({ reason }, 'XMPP account refused; not retrying');
        this.emit('failed', reason);
        return;
      }
      if (this.failures++ === 0) this.log.info({ reason, service: this.service }, 'XMPP session could not connect; retrying');
      this.scheduleRetry();
      return;
    } finally {
      clearTimeout(timer);
    }
    if (this.entity !== entity || this.state !== 'connecting') return;
    this.state = 'online';
    this.failures = 0;
    this.retryDelay = this.settings.reconnectMinMs;
    // Available, with the priority that makes the server route messages for the bare JID here.
    await entity.send(xml('presence', {}, xml('priority', {}, String(this.settings.priority)))).catch(() => {});
    this.log.info({ jid: entity.jid?.toString() }, 'XMPP session online');
    this.emit('online');
  }

  private createEntity(): Client {
    const { tls, password } = this.account;
    const username = this.jid.local;
    const entity = client({
      service: this.service,
      domain: this.jid.domain,
      resource: `parley-${this.account.id}`,
      credentials: async (authenticate: SaslAuthenticate, mechanisms: string[], _fast: unknown, session: Client) => {
        const secure = session.isSecure();
        if (tls !== 'none' && !secure) throw new PermanentError('the server offers no TLS (STARTTLS), and the account requires it');
        // The password never crosses an unencrypted connection in the clear: SCRAM there, anything inside TLS.
        const mechanism = secure ? mechanisms[0] : mechanisms.find((m) => m !== 'PLAIN');
        if (!mechanism) throw new PermanentError('the server offers no authentication usable without TLS');
        await authenticate({ username, password }, mechanism);
      },
    });
    // Reconnection is this session's (with backoff and a stop after a refusal), not the library's.
    entity.reconnect.stop();
    // @xmpp/connection decodes each chunk on its own, garbling a character split between two.
    const onData = entity._onData.bind(entity);
    let decoder = new StringDecoder('utf8');
    entity.on('connect', () => (decoder = new StringDecoder('utf8')));
    entity._onData = (data) => onData(typeof data === 'string' ? data : decoder.write(data));
    entity.on('error', (error: Error) => this.log.debug({ err: describe(error) }, 'XMPP session error'));
    entity.on('stanza', (stanza: xml.Element) => this.onStanza(stanza));
    entity.on('status', (status: string) => {
      if (status !== 'disconnect' || this.entity !== entity || this.state !== 'online') return;
      this.state = 'connecting';
      this.log.info('XMPP session lost; reconnecting');
      this.emit('offline', 'connection lost');
      void this.drop();
      this.scheduleRetry();
    });
    return entity;
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.settings.reconnectMaxMs);
    this.retryTimer = setTimeout(() => {
      if (this.state === 'connecting') void this.attempt();
    }, delay).unref();
  }

  private async drop(): Promise<void> {
    const entity = this.entity;
    this.entity = undefined;
    if (!entity) return;
    entity.removeAllListeners('stanza');
    entity.removeAllListeners('status');
    entity.on('error', () => {});
    await entity.stop().catch(() => {});
  }

  private onStanza(stanza: xml.Element): void {
    if (!stanza.is('message')) return;
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'error') {
      const { condition, text } = readStanzaError(stanza);
      this.emit('undelivered', stanza.attrs.id ?? '', statusForCondition(condition), `XMPP error ${condition}${text ? ` (${text})` : ''}`);
      return;
    }
    // Group chats are not mapped yet; headlines and bodiless stanzas (chat states) have no SIP form.
    if (type === 'groupchat') return;
    const im = readStanza(stanza);
    const from = parseJid(stanza.attrs.from ?? '');
    if (!im || !from?.local) return;
    this.emit('message', formatJid({ ...from, resource: '' }), im);
  }
}

function isPermanent(error: unknown): boolean {
  if (error instanceof PermanentError) return true;
  const condition = (error as { condition?: unknown }).condition;
  return typeof condition === 'string' && PERMANENT_CONDITIONS.has(condition);
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { condition, text } = error as Error & { condition?: string; text?: string };
  if (condition) return `${condition}${text ? ` (${text})` : ''}`;
  if (error instanceof AggregateError && error.message === '') return error.errors.map(describe).join('; ');
  return error.message || error.name;
}
