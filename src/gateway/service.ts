// The per-user gateway service (Kamailio's jabber and purple modules): SIP users link their own
// accounts on other networks, and the `gateway` routing handler takes MESSAGEs to the gateway's
// address (#commands) and to the networks' SIP domains (messages sent from the user's own account).
// One session per linked account goes online when its SIP user registers or asks (#online), and
// offline on #offline, on unregistration, or after cache_time without traffic. What comes from a
// network enters SIP through the relay (every contact of the user, or the offline store).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { OrderedDeliveries, type Relay } from '../relay/index.js';
import type { Registrar } from '../registrar/index.js';
import { type IncomingRequest, type SipUri, escapeUser, parseUri } from '../sip/index.js';
import type { GatewayAccount, GatewayAccountStore, GatewayTlsMode } from '../store/types.js';
import { type InstantMessage, TEXT_PLAIN, readSipMessage, sipHeaders } from '../xmpp/messages.js';
import type { NetworkAdapter, NetworkSession, SessionState } from './adapter.js';
import { gatewayHelp, parseGatewayCommand, type GatewayCommand } from './commands.js';
import type { GatewayOptions } from './options.js';
import { type NetworkId, networkOf } from './protocols.js';
import { SecretBox, sealContext } from './secrets.js';
import { XmppNetwork } from './xmpp-network.js';

export interface GatewayDependencies {
  accounts: GatewayAccountStore;
  relay: Relay;
  registrar: Registrar;
}

export interface GatewayStats {
  /** Sessions by state. */
  sessions: Record<SessionState, number>;
  /** SIP MESSAGEs taken to a network (answered 202). */
  sipToNetwork: number;
  /** Network messages the relay delivered or stored. */
  networkToSip: number;
  commands: number;
  /** SIP requests refused (unauthenticated, no account, bad input, limits). */
  refused: number;
  /** Messages from SIP that never reached the network (error notification sent). */
  undelivered: number;
  /** Accounts the network refused (wrong password...). */
  accountFailures: number;
}

/** Who to tell when a message from SIP fails after its MESSAGE was answered. */
interface Origin {
  sender: string;
  target: string;
  contact: string;
  excerpt: string;
}

interface Pending {
  id: string;
  contact: string;
  im: InstantMessage;
  origin: Origin;
  since: number;
}

interface Live {
  account: GatewayAccount;
  adapter: NetworkAdapter;
  session: NetworkSession;
  lastTraffic: number;
  pending: Pending[];
  sent: Map<string, Origin & { at: number }>;
}

const SENT_TTL_MS = 10 * 60_000;
const MAX_SENT = 1000;
const EXCERPT_LENGTH = 80;
const HOST = /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/i;
const TLS_MODES = new Set<GatewayTlsMode>(['starttls', 'direct', 'none']);

export class GatewayService {
  private readonly box: SecretBox;
  private readonly byAlias = new Map<string, NetworkAdapter>();
  private readonly byNetwork = new Map<NetworkId, NetworkAdapter>();
  private readonly live = new Map<number, Live>();
  private readonly deliveries = new OrderedDeliveries((error, recipient) => this.log.error({ err: error, recipient }, 'gateway delivery into SIP failed'));
  private readonly counters = { sipToNetwork: 0, networkToSip: 0, commands: 0, refused: 0, undelivered: 0, accountFailures: 0 };
  private readonly idPrefix = randomBytes(4).toString('hex');
  private lastId = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly onRegistered = (aor: string) => void this.registered(aor).catch((error: unknown) => this.log.error({ err: error, aor }, 'gateway: bringing sessions online failed'));
  private readonly onUnregistered = (aor: string) => {
    if (this.deps.registrar.lookup(aor).length === 0) void this.takeOffline(`sip:${aor}`, undefined, 'you unregistered');
  };

  constructor(
    private readonly options: GatewayOptions,
    private readonly deps: GatewayDependencies,
    private readonly log: Logger,
    adapters: NetworkAdapter[] = [new XmppNetwork(options.xmpp.alias, options.xmpp.delimiter, log.child({ network: 'xmpp' }))],
  ) {
    this.box = new SecretBox(options.secretKey);
    for (const adapter of adapters) {
      this.byAlias.set(adapter.alias, adapter);
      this.byNetwork.set(adapter.id, adapter);
    }
  }

  /** The SIP domains of the networks. */
  get aliases(): string[] {
    return [...this.byAlias.keys()];
  }

  get stats(): GatewayStats {
    const sessions: Record<SessionState, number> = { connecting: 0, online: 0, stopped: 0, failed: 0 };
    for (const live of this.live.values()) sessions[live.session.state]++;
    return { sessions, ...this.counters };
  }

  /** The state of an account's session; 'stopped' when it has none. */
  sessionState(accountId: number): SessionState {
    return this.live.get(accountId)?.session.state ?? 'stopped';
  }

  start(): void {
    this.deps.registrar.on('registered', this.onRegistered);
    this.deps.registrar.on('unregistered', this.onUnregistered);
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(1000, this.options.delayTimeMs)).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.deps.registrar.off('registered', this.onRegistered);
    this.deps.registrar.off('unregistered', this.onUnregistered);
    await Promise.allSettled([...this.live.values()].map((live) => this.end(live, 'the gateway stopped')));
    await this.deliveries.drain();
  }

  /** The `gateway` routing handler: a MESSAGE to the gateway's address or to a network's domain. */
  async handle(request: IncomingRequest): Promise<void> {
    const message = request.message;
    let sender: SipUri;
    try {
      sender = parseUri(message.from.uri);
    } catch {
      return this.refuse(request, 400, 'Bad Request (From URI)');
    }
    const target = message.requestUri;
    if (!this.options.localDomains.has(sender.host) || !sender.user) {
      return this.refuse(request, 403, 'Forbidden (the gateway serves local users only)');
    }
    const aor = `${sender.user}@${sender.host}`;
    const sipUser = `sip:${escapeUser(sender.user)}@${sender.host}`;
    const authenticated = request.identity === aor || this.options.allowUnauthenticated;
    const isCommand = target.host === this.options.registrar.host && target.user === this.options.registrar.user;
    if (!authenticated) {
      this.refuse(request, 403, 'Forbidden (the gateway takes authenticated senders only)');
      if (isCommand) this.reply(sipUser, 'Refused: the gateway takes commands only from a sender who passed digest authentication. Nothing was changed.');
      return;
    }
    if (isCommand) return this.command(request, sipUser, aor);
    const adapter = this.byAlias.get(target.host);
    if (!adapter) return this.refuse(request, 404, 'Not Found (no such network)');
    return this.forward(request, adapter, sipUser, target);
  }

  // --- SIP -> network --------------------------------------------------------------------------

  private async forward(request: IncomingRequest, adapter: NetworkAdapter, sipUser: string, target: SipUri): Promise<void> {
    const accounts = (await this.deps.accounts.listFor(sipUser)).filter((a) => networkOf(a.extProt) === adapter.id);
    if (accounts.length === 0) {
      return this.refuse(request, 403, `Forbidden (no ${adapter.id} account linked; send #link to ${this.options.registrarAddress})`);
    }
    const account = accounts.find((a) => a.enabled);
    if (!account) {
      return this.refuse(request, 480, `Temporarily Unavailable (your ${adapter.id} account is disabled: ${accounts[0]!.lastError ?? 'refused'}; #link it again)`);
    }
    const contact = adapter.contactOf(target);
    if (!contact) return this.refuse(request, 404, `Not Found (write to user${this.options.xmpp.delimiter}server@${adapter.alias})`);
    const im = readSipMessage(request.message, this.options.maxBody);
    if ('status' in im) return this.refuse(request, im.status, im.reason, im.headers);
    const live = this.bringOnline(account);
    if (typeof live === 'string') return this.refuse(request, 503, `Service Unavailable (${live})`);
    const now = Date.now();
    live.lastTraffic = now;
    const origin: Origin = { sender: sipUser, target: `sip:${escapeUser(target.user)}@${target.host}`, contact, excerpt: excerptOf(im.body) };
    const pending: Pending = { id: this.newId(), contact, im, origin, since: now };
    if (!this.transmit(live, pending)) live.pending.push(pending);
    this.counters.sipToNetwork++;
    request.reply(202, 'Accepted');
  }

  private transmit(live: Live, pending: Pending): boolean {
    if (!live.session.send(pending.contact, pending.im, pending.id)) return false;
    live.sent.set(pending.id, { ...pending.origin, at: Date.now() });
    if (live.sent.size > MAX_SENT) live.sent.delete(live.sent.keys().next().value!);
    return true;
  }

  // --- sessions --------------------------------------------------------------------------------

  /** The account's session, started when there is none; a string saying why not when a limit or the key stops it. */
  private bringOnline(account: GatewayAccount): Live | string {
    const existing = this.live.get(account.id);
    if (existing) {
      existing.session.start();
      return existing;
    }
    const adapter = this.byNetwork.get(networkOf(account.extProt)!);
    if (!adapter) return `the ${account.extProt} network is not served here`;
    if (this.live.size >= this.options.maxSessions) return 'the gateway has as many sessions as it may';
    const mine = [...this.live.values()].filter((l) => l.account.sipUser === account.sipUser).length;
    if (mine >= this.options.maxSessionsPerUser) return `you have ${mine} sessions, the most allowed`;
    let password: string;
    try {
      password = this.box.open(account.extPass ?? '', sealContext(account));
    } catch {
      void this.deps.accounts.setStatus(account.id, { enabled: false, lastError: 'the stored password cannot be read; link the account again' });
      return 'the stored password cannot be read; link the account again';
    }
    const session = adapter.createSession(
      { id: account.id, extUser: account.extUser, password, server: account.server, port: account.port, tls: account.tls },
      { priority: this.options.priority, reconnectMinMs: this.options.reconnectMinMs, reconnectMaxMs: this.options.reconnectMaxMs },
    );
    const live: Live = { account, adapter, session, lastTraffic: Date.now(), pending: [], sent: new Map() };
    this.live.set(account.id, live);
    session.on('online', () => {
      for (const pending of live.pending.splice(0)) this.transmit(live, pending);
    });
    session.on('message', (from, im) => this.fromNetwork(live, from, im));
    session.on('undelivered', (id, status, explanation) => {
      const origin = live.sent.get(id);
      if (!origin) return;
      live.sent.delete(id);
      this.notify(origin, status, explanation);
    });
    session.on('failed', (reason) => void this.failed(live, reason));
    this.log.info({ sipUser: account.sipUser, network: adapter.id, account: account.extUser }, 'gateway session starting');
    session.start();
    return live;
  }

  private async failed(live: Live, reason: string): Promise<void> {
    this.counters.accountFailures++;
    const { account, adapter } = live;
    if (this.live.get(account.id) === live) this.live.delete(account.id);
    this.failPending(live, 403, `your ${adapter.id} account ${account.extUser} was refused`);
    await this.deps.accounts.setStatus(account.id, { enabled: false, lastError: reason });
    this.log.warn({ sipUser: account.sipUser, network: adapter.id, account: account.extUser, reason }, 'gateway account refused; disabled');
    this.reply(
      account.sipUser,
      `Your ${adapter.id} account ${account.extUser} was refused: ${reason}. It stays offline and will not be retried; ` +
        `send #link ${adapter.id} ${account.extUser} <password> with the right password, or #online to try again.`,
    );
  }

  private fromNetwork(live: Live, from: string, im: InstantMessage): void {
    live.lastTraffic = Date.now();
    const address = live.adapter.sipAddressOf(from);
    if (!address) return;
    const to = live.account.sipUser;
    this.deliveries.add(to, async () => {
      const result = await this.deps.relay.send({ from: `<${address}>`, to, body: Buffer.from(im.body, 'utf8'), contentType: TEXT_PLAIN, headers: sipHeaders(im) });
      if (result.status < 300) this.counters.networkToSip++;
      else this.log.info({ to, status: result.status }, 'message from the network not delivered into SIP');
    });
  }

  /** Ends the user's sessions (all, or those matching `which`); resolves with the accounts ended. */
  private async takeOffline(sipUser: string, which: ((account: GatewayAccount) => boolean) | undefined, why: string): Promise<GatewayAccount[]> {
    const ended = [...this.live.values()].filter((l) => l.account.sipUser === sipUser && (!which || which(l.account)));
    await Promise.all(ended.map((live) => this.end(live, why)));
    return ended.map((live) => live.account);
  }

  private async end(live: Live, why: string): Promise<void> {
    if (this.live.get(live.account.id) === live) this.live.delete(live.account.id);
    this.failPending(live, 503, `the session went offline (${why})`);
    this.log.info({ sipUser: live.account.sipUser, account: live.account.extUser, why }, 'gateway session offline');
    await live.session.stop();
  }

  private async registered(aor: string): Promise<void> {
    const accounts = await this.deps.accounts.listFor(`sip:${aor}`);
    for (const account of accounts) {
      if (!account.enabled || this.live.has(account.id) || !this.byNetwork.has(networkOf(account.extProt)!)) continue;
      const live = this.bringOnline(account);
      if (typeof live === 'string') this.log.info({ aor, account: account.extUser, reason: live }, 'gateway session not started');
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const live of [...this.live.values()]) {
      const expired = live.pending.filter((p) => now - p.since > this.options.delayTimeMs);
      if (expired.length > 0) {
        live.pending = live.pending.filter((p) => !expired.includes(p));
        for (const pending of expired) {
          this.counters.undelivered++;
          this.notify(pending.origin, 408, `your ${live.adapter.id} session was not online within ${this.options.delayTimeMs / 1000} s`);
        }
      }
      for (const [id, { at }] of live.sent) {
        if (now - at <= SENT_TTL_MS) break;
        live.sent.delete(id);
      }
      const aor = live.account.sipUser.replace(/^sips?:/, '');
      const idle = now - live.lastTraffic > this.options.cacheTimeMs && live.pending.length === 0;
      if (idle && this.deps.registrar.lookup(aor).length === 0) void this.end(live, `no traffic for ${this.options.cacheTimeMs / 1000} s`);
    }
  }

  private failPending(live: Live, status: number, explanation: string): void {
    for (const pending of live.pending.splice(0)) {
      this.counters.undelivered++;
      this.notify(pending.origin, status, explanation);
    }
  }

  // --- commands --------------------------------------------------------------------------------

  private async command(request: IncomingRequest, sipUser: string, aor: string): Promise<void> {
    const contentType = (request.message.get('content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
    if (contentType !== 'text/plain') return this.refuse(request, 415, 'Unsupported Media Type (commands are text/plain)', [{ name: 'accept', value: 'text/plain' }]);
    this.counters.commands++;
    request.reply(200, 'OK');
    const parsed = parseGatewayCommand(request.message.body.toString('utf8'));
    if (!parsed.ok) return this.reply(sipUser, parsed.error);
    try {
      this.reply(sipUser, await this.run(parsed.command, sipUser, aor));
    } catch (error) {
      // The command line may hold a password: it is not logged, only which command failed.
      this.log.error({ err: error, command: parsed.command.name, sipUser }, 'gateway command failed');
      this.reply(sipUser, `#${parsed.command.name} failed: internal error`);
    }
  }

  private async run(command: GatewayCommand, sipUser: string, aor: string): Promise<string> {
    const args = command.args;
    switch (command.name) {
      case 'help':
        return gatewayHelp();
      case 'link':
        return this.link(args, sipUser, aor, command.syntax);
      case 'unlink': {
        const account = await this.findAccount(sipUser, args[0]!);
        if (!account) return `No linked account "${args[0]}"; #accounts lists them.`;
        await this.takeOffline(sipUser, (a) => a.id === account.id, 'unlinked');
        await this.deps.accounts.remove(account.id);
        return `Unlinked ${networkName(account)} account ${account.extUser}; its password is deleted.`;
      }
      case 'accounts': {
        const accounts = await this.deps.accounts.listFor(sipUser);
        if (accounts.length === 0) return 'No linked accounts. Link one with #link xmpp <you@server> <password>.';
        return ['Your linked accounts:', ...accounts.map((a) => `${a.id}. ${this.describe(a)}`)].join('\n');
      }
      case 'online': {
        const accounts = await this.selectAccounts(sipUser, args[0]);
        if (typeof accounts === 'string') return accounts;
        const lines: string[] = [];
        for (let account of accounts) {
          if (!account.enabled) {
            // An explicit #online tries a refused account once more.
            await this.deps.accounts.setStatus(account.id, { enabled: true, lastError: null });
            account = { ...account, enabled: true, lastError: undefined };
          }
          const live = this.bringOnline(account);
          lines.push(`${networkName(account)} ${account.extUser}: ${typeof live === 'string' ? `not started, ${live}` : live.session.state === 'online' ? 'online' : 'connecting'}`);
        }
        return lines.join('\n');
      }
      case 'offline': {
        const accounts = await this.selectAccounts(sipUser, args[0]);
        if (typeof accounts === 'string') return accounts;
        const ids = new Set(accounts.map((a) => a.id));
        const ended = await this.takeOffline(sipUser, (a) => ids.has(a.id), 'you asked');
        if (ended.length === 0) return 'No session was online.';
        return ended.map((a) => `${networkName(a)} ${a.extUser}: offline`).join('\n');
      }
      case 'status': {
        const accounts = await this.deps.accounts.listFor(sipUser);
        const registered = this.deps.registrar.lookup(aor).length > 0;
        const lines = [`You are ${registered ? '' : 'not '}registered; sessions go online when you register, offline when you unregister.`];
        for (const account of accounts) {
          const live = this.live.get(account.id);
          const state = live ? live.session.state : account.enabled ? 'offline' : `disabled (${account.lastError ?? 'refused'})`;
          const queued = live && live.pending.length > 0 ? `, ${live.pending.length} message(s) waiting` : '';
          lines.push(`${account.id}. ${networkName(account)} ${account.extUser}: ${state}${queued}`);
        }
        if (accounts.length === 0) lines.push('No linked accounts.');
        return lines.join('\n');
      }
    }
  }

  private async link(args: string[], sipUser: string, aor: string, syntax: string): Promise<string> {
    const [networkName_, user, password, ...rest] = args as [string, string, string, ...string[]];
    const network = networkOf(networkName_);
    if (!network) return `Unknown network "${networkName_}"; usage: ${syntax}`;
    const adapter = this.byNetwork.get(network);
    if (!adapter) return `The ${network} network is not served here yet.`;
    const extUser = adapter.normalizeUser(user);
    if (!extUser) return `"${user}" is not a ${network} account (expected user@server); usage: ${syntax}`;
    let server: string | undefined;
    let port: number | undefined;
    let tls: GatewayTlsMode = 'starttls';
    for (const option of rest) {
      const tlsMode = /^tls=(.*)$/i.exec(option)?.[1]?.toLowerCase();
      if (tlsMode !== undefined) {
        if (!TLS_MODES.has(tlsMode as GatewayTlsMode)) return `tls must be starttls, direct or none; usage: ${syntax}`;
        tls = tlsMode as GatewayTlsMode;
        continue;
      }
      const hostPort = /^([^:]+)(?::(\d{1,5}))?$/.exec(option);
      if (!hostPort || !HOST.test(hostPort[1]!) || (hostPort[2] !== undefined && (Number(hostPort[2]) < 1 || Number(hostPort[2]) > 65535))) {
        return `"${option}" is not host[:port] nor tls=...; usage: ${syntax}`;
      }
      server = hostPort[1]!.toLowerCase();
      port = hostPort[2] === undefined ? undefined : Number(hostPort[2]);
    }
    const identity = { sipUser, extProt: network, extUser };
    const account = await this.deps.accounts.put({ ...identity, extPass: this.box.seal(password, sealContext(identity)), server, port, tls });
    // New credentials: a session with the old ones ends.
    await this.takeOffline(sipUser, (a) => a.id === account.id, 'account linked again');
    const registered = this.deps.registrar.lookup(aor).length > 0;
    let next = 'It goes online when you register, or now with #online.';
    if (registered) {
      const live = this.bringOnline(account);
      next = typeof live === 'string' ? `It cannot go online now: ${live}.` : 'Connecting now.';
    }
    return `Linked ${network} account ${extUser} as number ${account.id}${server ? ` through ${server}${port ? `:${port}` : ''}` : ''} (TLS: ${tls}). ` +
      `Write to its contacts as user${this.options.xmpp.delimiter}server@${adapter.alias}. ${next}`;
  }

  private describe(account: GatewayAccount): string {
    const via = account.server ? ` via ${account.server}${account.port ? `:${account.port}` : ''}` : '';
    const state = !account.enabled ? `disabled: ${account.lastError ?? 'refused'}` : this.live.get(account.id)?.session.state ?? 'offline';
    return `${networkName(account)} ${account.extUser}${via} (TLS ${account.tls}): ${state}`;
  }

  /** An account by its number, its address, or network:address. */
  private async findAccount(sipUser: string, name: string): Promise<GatewayAccount | undefined> {
    const accounts = await this.deps.accounts.listFor(sipUser);
    const colon = name.indexOf(':');
    const network = colon > 0 ? networkOf(name.slice(0, colon)) : undefined;
    const user = (network ? name.slice(colon + 1) : name).toLowerCase();
    return accounts.find((a) => String(a.id) === name || (a.extUser.toLowerCase() === user && (!network || networkOf(a.extProt) === network)));
  }

  private async selectAccounts(sipUser: string, name: string | undefined): Promise<GatewayAccount[] | string> {
    if (name !== undefined) {
      const account = await this.findAccount(sipUser, name);
      return account ? [account] : `No linked account "${name}"; #accounts lists them.`;
    }
    const accounts = await this.deps.accounts.listFor(sipUser);
    return accounts.length > 0 ? accounts : 'No linked accounts. Link one with #link xmpp <you@server> <password>.';
  }

  // --- into SIP --------------------------------------------------------------------------------

  private refuse(request: IncomingRequest, status: number, reason: string, headers?: Array<{ name: string; value: string }>): void {
    this.counters.refused++;
    request.reply(status, reason, { headers });
  }

  /** A notice from the gateway's address. */
  private reply(sipUser: string, text: string): void {
    this.deliveries.add(sipUser, async () => {
      const result = await this.deps.relay.send({ from: `<${this.options.registrarAddress}>`, to: sipUser, body: text, contentType: TEXT_PLAIN });
      if (result.status >= 300) this.log.info({ sipUser, status: result.status }, 'gateway notice not delivered');
    });
  }

  /** The error notification for a message from SIP: to its sender, from the address it wrote to. */
  private notify(origin: Origin, status: number, explanation: string): void {
    this.log.info({ sender: origin.sender, contact: origin.contact, status, explanation }, 'message from SIP not delivered to the network');
    const body = `Your message to ${origin.contact} was not delivered: ${explanation} (${status}).\n> ${origin.excerpt}`;
    this.deliveries.add(origin.sender, async () => {
      await this.deps.relay.send({ from: `<${origin.target}>`, to: origin.sender, body, contentType: TEXT_PLAIN });
    });
  }


  private newId(): string {
    return `${this.idPrefix}-${++this.lastId}`;
  }
}

function networkName(account: GatewayAccount): string {
  return networkOf(account.extProt) ?? account.extProt;
}

function excerptOf(text: string): string {
  const characters = [...text.replace(/\s+/g, ' ').trim()];
  return characters.length > EXCERPT_LENGTH ? `${characters.slice(0, EXCERPT_LENGTH - 1).join('')}…` : characters.join('');
}
