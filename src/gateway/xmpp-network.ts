// The XMPP network: each linked account is its own @xmpp/client session (STARTTLS or direct TLS,
// SCRAM; PLAIN only inside TLS), online with presence priority `priority`, reconnecting with
// backoff after a lost or failed connection. A refused password, a server that does not host the
// account's domain, or a TLS requirement the server cannot meet fail the session for good: the
// service tells the user once, and nothing retries.
//
// Group chats are XEP-0045 rooms: the jabber seed's nick<delim>room<delim>conference.server names
// one with a nick; room@conference.server/nick is joined without history (a SIP user has no
// scrollback to merge it into), and re-joined after each reconnection. Presence is the account's
// own roster (RFC 6121): watch() asks a contact for a subscription, and the contact's resources are
// composed into one state, the way the XMPP gateway composes them.
import { EventEmitter } from 'node:events';
import { client, type Client, type SaslAuthenticate } from '@xmpp/client';
import xml from '@xmpp/xml';
import type { Logger } from 'pino';
import type { PresenceState } from '../presence/index.js';
import { type SipUri, sipAddress } from '../sip/index.js';
import { Backoff } from '../util/backoff.js';
import { type Jid, addressMapping, escapeLocal, formatJid, parseJid, unescapeLocal } from '../xmpp/addresses.js';
import { readStanzaError, statusForCondition } from '../xmpp/errors.js';
import type { InstantMessage } from '../bridge/index.js';
import { messageStanza, readStanza } from '../xmpp/messages.js';
import { type ResourceStates, applyPresence, stanzaOfState } from '../xmpp/presence.js';
import { type XmlLimits, XmlViolation, guardConnection } from '../xmpp/xml-guard.js';
import { type HttpProxy, xmppThroughProxy } from './http-proxy.js';
import { installFastScram } from './scram.js';
import type { GatewayTlsMode } from '../store/types.js';
import type { ConfiguredServer, Endpoint, NetworkAdapter, NetworkSession, RefusalCause, SessionAccount, SessionEvents, SessionSettings, SessionState } from './adapter.js';
import { connectionFailure } from './failures.js';

const DEFAULT_PORT = 5222;
const DIRECT_TLS_PORT = 5223;
/** Time allowed for connecting, TLS, authentication and binding, together, once a login slot is had. */
const CONNECT_TIMEOUT_MS = 20_000;
/** Time the library waits for each step (stream open, close): its 2 s default fails under load. */
const STEP_TIMEOUT_MS = 10_000;
/** SASL conditions (RFC 6120 §6.5) and stream errors (§4.9.3) after which retrying cannot help, and what each is about. */
const PERMANENT_CONDITIONS: ReadonlyMap<string, RefusalCause> = new Map([
  ['not-authorized', 'authentication'],
  ['credentials-expired', 'authentication'],
  ['encryption-required', 'tls'],
  ['mechanism-too-weak', 'tls'],
  ['account-disabled', 'account'],
  ['invalid-mechanism', 'account'],
  ['host-unknown', 'account'],
  ['improper-addressing', 'account'],
  ['policy-violation', 'account'],
]);

const MUC = 'http://jabber.org/protocol/muc';
const MUC_USER = 'http://jabber.org/protocol/muc#user';
/** XEP-0045 status codes: 110 this is you, 301 banned, 307 kicked, 321/322 removed by affiliation or members-only, 332 shutdown. */
const LEFT_BECAUSE: Record<string, string> = {
  '301': 'you were banned from the room',
  '307': 'you were kicked from the room',
  '321': 'your affiliation was removed',
  '322': 'the room became members-only',
  '332': 'the room service is shutting down',
};

const AVAILABLE: PresenceState = { basic: 'open', notes: [], activities: [] };

class PermanentError extends Error {
  constructor(
    message: string,
    readonly refusal: RefusalCause,
  ) {
    super(message);
  }
}

export interface XmppNetworkSettings {
  /** The network's SIP domain and the delimiter of its addresses (the jabber seed's jdomain). */
  alias: string;
  delimiter: string;
  /** Where accounts linked without a server of their own connect (jaddress, jport); undefined: their domain's server. */
  host?: string;
  port?: number;
  /** Transports to other networks: their JID, a SIP domain too, and the delimiter their addresses use. */
  transports: Array<{ alias: string; delimiter: string }>;
  /** Most sessions logging in at once; the others wait their turn (a mass bring-up must not starve the event loop). */
  maxConnecting: number;
  /** The HTTP proxy sessions connect through; undefined: directly. */
  proxy?: HttpProxy;
  /** What sessions accept of their servers' XML. */
  xml: XmlLimits;
  /** The servers configured for accounts' domains (xmpp_servers). */
  servers: ReadonlyMap<string, ConfiguredServer>;
}

export class XmppNetwork implements NetworkAdapter {
  readonly id = 'xmpp' as const;
  private readonly mapping;

  readonly alias: string;
  readonly extraAliases: readonly string[];
  private readonly delimiter: string;
  private readonly logins: Slots;
  private readonly transports: ReadonlyMap<string, string>;

  constructor(
    private readonly settings: XmppNetworkSettings,
    private readonly log: Logger,
  ) {
    this.alias = settings.alias;
    this.delimiter = settings.delimiter;
    this.transports = new Map(settings.transports.map((t) => [t.alias, t.delimiter]));
    this.extraAliases = [...this.transports.keys()];
    this.logins = new Slots(settings.maxConnecting);
    installFastScram();
    // The jabber seed's addresses are the xmpp gateway's separator convention under another domain.
    this.mapping = addressMapping({ convention: 'separator', separator: this.delimiter, gatewayDomain: this.alias, xmppDomain: this.alias });
  }

  get addressHint(): string {
    return `user${this.delimiter}server@${this.alias}`;
  }

  get servers(): ReadonlyMap<string, ConfiguredServer> {
    return this.settings.servers;
  }

  /** With jaddress, every domain's accounts connect there. */
  get servesEveryServer(): boolean {
    return this.settings.host !== undefined;
  }

  serverNameOf(extUser: string): string {
    return parseJid(extUser)?.domain ?? extUser;
  }

  /** The account's own server when it has one, else the one configured for its domain, else jaddress, else its domain's. */
  endpointOf(account: Pick<SessionAccount, 'extUser' | 'server' | 'port' | 'tls'>): Endpoint {
    const defaultPort = (tls: GatewayTlsMode) => (tls === 'direct' ? DIRECT_TLS_PORT : DEFAULT_PORT);
    if (account.server) return { host: account.server, port: account.port ?? defaultPort(account.tls), tls: account.tls };
    const domain = this.serverNameOf(account.extUser);
    const configured = this.settings.servers.get(domain);
    if (configured) return { host: configured.host ?? domain, port: configured.port ?? defaultPort(configured.tls), tls: configured.tls };
    const { host, port } = this.settings;
    return { host: host ?? domain, port: account.port ?? (host ? port : undefined) ?? defaultPort(account.tls), tls: account.tls };
  }

  normalizeUser(extUser: string): string | undefined {
    const jid = parseJid(extUser);
    return jid && jid.local && !jid.resource ? formatJid(jid) : undefined;
  }

  contactOf(target: SipUri): string | undefined {
    const transportDelimiter = this.transports.get(target.host);
    if (transportDelimiter !== undefined) {
      // The seed's aliases: sip:bob*hotmail.com@msn.example.com is bob%hotmail.com@msn.example.com.
      const jid = parseJid(`${escapeLocal(target.user.split(this.delimiter).join(transportDelimiter)) ?? ''}@${target.host}`);
      return jid?.local && !jid.resource ? formatJid(jid) : undefined;
    }
    const jid = this.mapping.xmppRecipient(target);
    return jid && formatJid(jid);
  }

  sipAddressOf(contact: string): string | undefined {
    const jid = parseJid(contact);
    if (!jid) return undefined;
    const transportDelimiter = this.transports.get(jid.domain);
    if (transportDelimiter !== undefined && jid.local) {
      return sipAddress(unescapeLocal(jid.local).split(transportDelimiter).join(this.delimiter), jid.domain);
    }
    return this.mapping.sipSender({ ...jid, resource: '' });
  }

  roomOf(target: SipUri): { room: string; nick?: string } | undefined {
    if (target.host !== this.alias) return undefined;
    const parts = target.user.split(this.delimiter);
    if (parts.length !== 3 || parts.some((part) => part === '')) return undefined;
    const [nick, local, domain] = parts as [string, string, string];
    const room = parseJid(`${local}@${domain}`);
    return room?.local && !room.resource ? { room: formatJid(room), nick } : undefined;
  }

  roomAddressOf(room: string): string | undefined {
    return this.sipAddressOf(room);
  }

  createSession(account: SessionAccount, settings: SessionSettings): NetworkSession {
    const network = { transports: this.extraAliases, logins: this.logins, proxy: this.settings.proxy, xml: this.settings.xml };
    return new XmppSession(account, this.endpointOf(account), settings, network, this.log.child({ account: account.extUser }));
  }
}

export class XmppSession extends EventEmitter<SessionEvents> implements NetworkSession {
  state: SessionState = 'stopped';
  /** Room JID -> nick, for the rooms joined or being joined. */
  readonly rooms = new Map<string, string>();
  private readonly jid: Jid;
  private presence: PresenceState | undefined;
  /** Contact bare JID -> what its resources said. */
  private readonly contacts = new Map<string, ResourceStates>();
  private entity: Client | undefined;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  /** Transport JID -> why it is offline, for those that said so. */
  private readonly transportsDown = new Map<string, string>();

  private readonly transports: readonly string[];
  private readonly logins: Slots;
  private readonly proxy: HttpProxy | undefined;
  private readonly xmlLimits: XmlLimits;
  private attempts = 0;

  constructor(
    private readonly account: SessionAccount,
    private readonly endpoint: Endpoint,
    private readonly settings: SessionSettings,
    network: { transports: readonly string[]; logins: Slots; proxy?: HttpProxy; xml: XmlLimits },
    private readonly log: Logger,
  ) {
    super();
    const jid = parseJid(account.extUser);
    if (!jid?.local) throw new Error(`not a JID: ${account.extUser}`);
    this.jid = jid;
    this.backoff = new Backoff(settings.reconnectMinMs, settings.reconnectMaxMs);
    this.transports = network.transports;
    this.logins = network.logins;
    this.proxy = network.proxy;
    this.xmlLimits = network.xml;
  }

  start(): void {
    if (this.state === 'online' || this.state === 'connecting') return;
    this.state = 'connecting';
    this.backoff.reset();
    void this.attempt();
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    this.forgetContacts();
    await this.drop();
  }

  /** Without a connection nothing is known of the contacts: each one known available becomes unavailable. */
  private forgetContacts(): void {
    for (const contact of this.contacts.keys()) this.emit('presence', contact, null);
    this.contacts.clear();
    this.transportsDown.clear();
  }

  send(to: string, im: InstantMessage, id: string): boolean {
    const entity = this.entity;
    if (this.state !== 'online' || !entity) return false;
    const stanza = messageStanza(im, { from: entity.jid?.toString() ?? formatJid(this.jid), to, id, type: 'chat' });
    entity.send(stanza).catch((error: Error) => this.log.debug({ err: error.message }, 'XMPP write failed'));
    return true;
  }

  join(room: string, nick: string): boolean {
    this.rooms.set(room, nick);
    if (this.state !== 'online') return false;
    this.enter(room, nick);
    return true;
  }

  leave(room: string): void {
    const nick = this.rooms.get(room);
    if (nick === undefined) return;
    this.rooms.delete(room);
    this.emit('left', room, undefined);
    this.write(xml('presence', { to: `${room}/${nick}`, type: 'unavailable' }));
  }

  sendToRoom(room: string, im: InstantMessage, id: string): boolean {
    const entity = this.entity;
    if (this.state !== 'online' || !entity || !this.rooms.has(room)) return false;
    this.write(messageStanza(im, { from: entity.jid?.toString() ?? formatJid(this.jid), to: room, id, type: 'groupchat' }));
    return true;
  }

  setPresence(state: PresenceState): void {
    this.presence = state;
    if (this.state === 'online') this.write(this.ownPresence());
  }

  watch(contact: string): void {
    // A subscription already approved is answered at once by the contact's server; a new one waits for the contact.
    this.write(xml('presence', { to: contact, type: 'subscribe' }));
  }

  unwatch(): void {
    // The roster subscription is the user's, kept for their other clients: SIP watchers coming and going do not change it.
  }

  answerSubscription(contact: string, allow: boolean): void {
    this.write(xml('presence', { to: contact, type: allow ? 'subscribed' : 'unsubscribed' }));
  }

  unreachable(contact: string): string | undefined {
    const domain = parseJid(contact)?.domain ?? '';
    const down = this.transportsDown.get(domain);
    return down === undefined ? undefined : `the ${domain} transport is offline${down ? `: ${down}` : ''}`;
  }

  private write(stanza: xml.Element): void {
    if (this.state !== 'online' || !this.entity) return;
    this.entity.send(stanza).catch((error: Error) => this.log.debug({ err: error.message }, 'XMPP write failed'));
  }

  private enter(room: string, nick: string): void {
    this.write(xml('presence', { to: `${room}/${nick}` }, xml('x', { xmlns: MUC }, xml('history', { maxstanzas: '0' }))));
  }

  /** Available with the priority that makes the server route messages for the bare JID here, and the published show/status. */
  private ownPresence(): xml.Element {
    // Closed is not sent as unavailable: the session stays online for messages, as the SIP user's other devices may.
    const state = this.presence ?? AVAILABLE;
    const shown = state.basic === 'open' ? state : { ...state, basic: 'open' as const, activities: ['away'] };
    return stanzaOfState(shown, {}, xml('priority', {}, String(this.settings.priority)));
  }

  /** host:port of the server. */
  private get where(): string {
    return `${this.endpoint.host}:${this.endpoint.port}`;
  }

  private get service(): string {
    return `${this.endpoint.tls === 'direct' ? 'xmpps' : 'xmpp'}://${this.where}`;
  }

  private async attempt(): Promise<void> {
    const attempt = ++this.attempts;
    const release = await this.logins.acquire();
    // Stopped meanwhile, or stopped and started again (that start made an attempt of its own).
    if (this.state !== 'connecting' || attempt !== this.attempts) return release();
    const entity = this.createEntity();
    this.entity = entity;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        startEntity(entity),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('connection timed out')), CONNECT_TIMEOUT_MS))),
      ]);
    } catch (error) {
      release();
      if (this.entity !== entity || this.state !== 'connecting') return;
      await this.drop();
      if (this.state !== 'connecting') return;
      const refusal = refusalOf(error);
      if (refusal) {
        const reason = describe(error);
        this.state = 'failed';
        this.log.warn({ reason }, 'XMPP account refused; not retrying');
        this.emit('failed', reason, refusal);
        return;
      }
      if (this.failures++ === 0) {
        const reason = connectionFailure(error, this.endpoint.host, this.endpoint.port) ?? `${this.where}: ${describe(error)}`;
        this.log.info({ reason, service: this.service }, 'XMPP session could not connect; retrying');
        this.emit('unreachable', reason);
      }
      this.scheduleRetry();
      return;
    } finally {
      clearTimeout(timer);
    }
    release();
    if (this.entity !== entity || this.state !== 'connecting') return;
    this.state = 'online';
    this.failures = 0;
    this.backoff.reset();
    await entity.send(this.ownPresence()).catch(() => {});
    for (const [room, nick] of this.rooms) this.enter(room, nick);
    this.log.info({ jid: entity.jid?.toString() }, 'XMPP session online');
    this.emit('online');
  }

  private createEntity(): Client {
    const { password } = this.account;
    const { tls } = this.endpoint;
    const username = this.jid.local;
    const entity = client({
      service: this.service,
      domain: this.jid.domain,
      resource: `parley-${this.account.id}`,
      timeout: STEP_TIMEOUT_MS,
      credentials: async (authenticate: SaslAuthenticate, mechanisms: string[], _fast: unknown, session: Client) => {
        const secure = session.isSecure();
        if (tls !== 'none' && !secure) throw new PermanentError(`${this.where} offers no TLS (STARTTLS), and the account requires it`, 'tls');
        // The password never crosses an unencrypted connection in the clear: SCRAM there, anything inside TLS.
        const mechanism = secure ? mechanisms[0] : mechanisms.find((m) => m !== 'PLAIN');
        if (!mechanism) throw new PermanentError(`${this.where} offers no authentication usable without TLS`, 'tls');
        await authenticate({ username, password }, mechanism);
      },
    });
    // Reconnection is this session's (with backoff and a stop after a refusal), not the library's.
    entity.reconnect.stop();
    if (this.proxy) xmppThroughProxy(entity, this.proxy);
    // The server may be hostile: its XML is bounded, and bad XML ends the stream (then a reconnection).
    guardConnection(entity, this.xmlLimits);
    entity.on('error', (error: Error) => {
      if (error instanceof XmlViolation) this.log.warn({ reason: describe(error), service: this.service }, 'bad XML from the XMPP server: stream closed');
      else this.log.debug({ err: describe(error) }, 'XMPP session error');
    });
    entity.on('stanza', (stanza: xml.Element) => this.onStanza(stanza));
    entity.on('status', (status: string) => {
      if (status !== 'disconnect' || this.entity !== entity || this.state !== 'online') return;
      this.state = 'connecting';
      this.log.info('XMPP session lost; reconnecting');
      this.emit('offline', 'connection lost');
      this.forgetContacts();
      void this.drop();
      this.scheduleRetry();
    });
    return entity;
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    const delay = this.backoff.next();
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
    entity.removeAllListeners('error');
    entity.on('error', () => {});
    // The library gives up waiting for the socket to close after its timeout and forgets it, still open.
    const socket = entity.socket;
    socket?.on('error', () => {});
    await entity.stop().catch(() => {});
    (socket && 'destroy' in socket ? socket : socket?.socket)?.destroy();
  }

  private onStanza(stanza: xml.Element): void {
    if (stanza.is('presence')) return this.onPresence(stanza);
    if (!stanza.is('message')) return;
    const type = stanza.attrs.type ?? 'normal';
    const from = parseJid(stanza.attrs.from ?? '');
    if (type === 'error') {
      const { condition, text } = readStanzaError(stanza);
      this.emit('undelivered', stanza.attrs.id ?? '', statusForCondition(condition), `XMPP error ${condition}${text ? ` (${text})` : ''}`);
      return;
    }
    // Headlines and bodiless stanzas (chat states, room subjects) have no SIP form.
    const im = readStanza(stanza);
    if (!im || !from?.local) return;
    const bareFrom = formatJid({ ...from, resource: '' });
    if (type === 'groupchat') {
      const nick = this.rooms.get(bareFrom);
      // Own messages come back as the room's echo; history replayed on joining carries <delay/>.
      if (nick === undefined || from.resource === '' || from.resource === nick || stanza.getChild('delay', 'urn:xmpp:delay')) return;
      this.emit('roomMessage', bareFrom, from.resource, im);
      return;
    }
    this.emit('message', bareFrom, im);
  }

  private onPresence(stanza: xml.Element): void {
    const from = parseJid(stanza.attrs.from ?? '');
    if (from && !from.local && this.transports.includes(from.domain)) return this.onTransportPresence(from.domain, stanza);
    if (!from?.local) return;
    const contact = formatJid({ ...from, resource: '' });
    const type = stanza.attrs.type;
    if (this.rooms.has(contact)) return this.onRoomPresence(contact, from.resource, stanza);
    // Presence of a room left already (our own unavailable echoed back) is not a contact's.
    if (stanza.getChild('x', MUC_USER)) return;
    if (type === 'subscribe') return void this.emit('subscriptionRequest', contact);
    if (type !== undefined && type !== 'unavailable') return;
    const resources = this.contacts.get(contact) ?? new Map();
    const state = applyPresence(resources, from.resource, stanza);
    if (resources.size > 0) this.contacts.set(contact, resources);
    else this.contacts.delete(contact);
    this.emit('presence', contact, state.basic === 'open' ? state : null);
  }

  /** Gateway detection (the jabber seed's): a transport's own presence says whether it can carry messages. */
  private onTransportPresence(transport: string, stanza: xml.Element): void {
    const type = stanza.attrs.type;
    if (type === undefined) this.transportsDown.delete(transport);
    else if (type === 'unavailable' || type === 'error') this.transportsDown.set(transport, stanza.getChildText('status')?.trim() ?? '');
  }

  private onRoomPresence(room: string, nick: string, stanza: xml.Element): void {
    const mine = this.rooms.get(room);
    if (stanza.attrs.type === 'error') {
      if (nick !== mine) return;
      const { condition, text } = readStanzaError(stanza);
      this.rooms.delete(room);
      this.emit('left', room, condition === 'conflict' ? `the nick ${mine} is taken` : `the room refused you: ${condition}${text ? ` (${text})` : ''}`);
      return;
    }
    const codes = new Set(stanza.getChild('x', MUC_USER)?.getChildren('status').map((s) => s.attrs.code as string) ?? []);
    if (!codes.has('110') && nick !== mine) return;
    if (stanza.attrs.type === 'unavailable') {
      // Our own unavailable after leave() has no room entry left; one we did not ask for says why.
      this.rooms.delete(room);
      const reason = [...codes].map((code) => LEFT_BECAUSE[code]).find(Boolean) ?? 'you left the room';
      this.emit('left', room, reason);
      return;
    }
    // The room may have changed our nick (status 210).
    this.rooms.set(room, nick);
    this.emit('joined', room, nick);
  }
}

/**
 * The library's start() (connect, open, wait for online) leaves its wait for "online" without a
 * handler when opening fails, so a later socket error would reject it unhandled; this one handles it.
 */
async function startEntity(entity: Client): Promise<void> {
  const online = new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      entity.off('online', onOnline);
      entity.off('error', settle);
      if (error) reject(error);
      else resolve();
    };
    const onOnline = () => settle();
    entity.on('online', onOnline);
    entity.on('error', settle);
  });
  online.catch(() => {});
  await entity.connect(entity.options.service);
  await entity.open({ domain: entity.options.domain });
  await online;
}

/** A counting semaphore: at most `size` holders at once, the others queued in order. */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Resolves with the function that gives the slot back (once). */
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

/** What a refusal that retrying cannot cure is about; undefined when the next attempt may succeed. */
function refusalOf(error: unknown): RefusalCause | undefined {
  if (error instanceof PermanentError) return error.refusal;
  // Bad XML from the server ended the stream on Parley's side: the next connection may go better.
  if (error instanceof XmlViolation) return undefined;
  const condition = (error as { condition?: unknown }).condition;
  return typeof condition === 'string' ? PERMANENT_CONDITIONS.get(condition) : undefined;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { condition, text } = error as Error & { condition?: string; text?: string };
  if (condition) return `${condition}${text ? ` (${text})` : ''}`;
  if (error instanceof AggregateError && error.message === '') return error.errors.map(describe).join('; ');
  return error.message || error.name;
}
