// The IRC network: each linked account is one irc-framework connection with the account's nick,
// reconnecting with backoff after a lost connection and joining its channels again.
//
// Accounts and addresses. An account is `nick@server`, server being the IRC network's host
// (irc.libera.chat); the account's server/port override where to connect. One adapter serves every
// account, so the ids it exchanges with the service carry the network: a contact is `nick@server`,
// a channel (room) is `#channel@server` (split at the last "@": a channel name may hold one, a host
// never does). Under the alias they are sip:<nick><delim><server>@<alias> and
// sip:%23channel<delim><server>@<alias> (SIP user-part escaping; split at the last delimiter). A
// session reaches only its own network: the service picks the account that reaches() the contact
// or room; a session given another network's id all the same answers 'undelivered' (404).
//
// Networks the operator configured (irc_networks) are named by the account (nick@libera) and
// connect where and how the configuration says. TLS: 'direct' (the default), TLS from the first
// byte, port 6697 by default; 'starttls' means the same, since IRC has no STARTTLS in use, and is
// shown as direct; 'none' is plain text, port 6667. The password, when not
// empty, goes as the server password (PASS) and, when the server offers SASL, as SASL PLAIN for the
// nick's account; it is never logged.
//
// Refusals that retrying cannot cure fail the session for good: a wrong password (464, or ngIRCd's
// ERROR "Bad password" before registration), a ban (465, or an ERROR naming a ban/K-line), a SASL
// failure (902, 904), an invalid nick (432), and the nick in use (433) at the first registration. A
// 433 after the session was online once is the old connection not yet timed out: retried.
//
// Messages: IRC has no message ids, so an error (401, 404) is matched to the latest message sent to
// its target. Nor does it acknowledge a PRIVMSG: a message counts as sent once the server answered
// a PING written after it (a server handles a connection's lines in order), one PING for the
// messages written in the same turn of the event loop. When the connection is lost first, those
// messages are not sent (send() settles false) and go again after the reconnection: at least once;
// a message the server took just before the loss, its PONG not back yet, comes twice. A body goes
// line by line, each cut into pieces of at most `lineLimit` UTF-8 bytes at the last space that fits
// (that space dropped) or else between characters; a line starting with
// "/me " goes as CTCP ACTION, and an incoming ACTION becomes "/me text". Formatting codes are
// stripped from what arrives, control characters from what leaves. Presence: AWAY with the note
// when the SIP user is not plainly available; contacts are watched with MONITOR where the server
// has it (ngIRCd has not: then watching does nothing).
import { EventEmitter } from 'node:events';
import { Client, type ChannelEvent, type IrcMessage, type MessageEvent } from 'irc-framework';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { OPEN, type PresenceState } from '../presence/index.js';
import { type SipUri, sipAddress } from '../sip/index.js';
import { Backoff } from '../util/backoff.js';
import type { InstantMessage } from '../bridge/index.js';
import { type HttpProxy, ircTransportThrough } from './http-proxy.js';
import type { ConfiguredServer, Endpoint, NetworkAdapter, NetworkSession, RefusalCause, SessionAccount, SessionEvents, SessionSettings, SessionState, Sent } from './adapter.js';
import { connectionFailure } from './failures.js';

/** irc-framework's TCP/TLS transport, which a proxied session extends (the package exports only its default choice). */
const NetTransport = createRequire(import.meta.url)('irc-framework/src/transports/net') as new (...args: unknown[]) => object;

const PLAIN_PORT = 6667;
const TLS_PORT = 6697;
/** Time allowed for connecting, TLS and registration, together. */
const CONNECT_TIMEOUT_MS = 20_000;
/** Time a QUIT is given to close the connection before the socket is destroyed. */
const QUIT_TIMEOUT_MS = 2_000;
/** Targets remembered for matching errors to messages. */
const MAX_TRACKED = 1000;

/** RFC 2812 §2.3.1 nickname, with the longer lengths networks allow today. */
const NICK = /^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]{0,63}$/;
/** RFC 2812 §1.3 channel name: a prefix, then anything but NUL, BEL, CR, LF, space, comma and colon. */
const CHANNEL = /^[#&+!][^\x00\x07\r\n ,:]{1,199}$/;
const HOST = /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/;
/** Bold, colours (mIRC \x03 and hex \x04), reset, monospace, reverse, italic, strikethrough, underline. */
const FORMATTING = /\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9a-f]{6}(?:,[0-9a-f]{6})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]/gi;
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/g;
/** Pre-registration ERRORs (servers that answer with ERROR instead of 464/465) that retrying cannot cure. */
const PERMANENT_ERROR = /password|banned|[gkz]-?lined/i;
const BAD_PASSWORD_ERROR = /password/i;
const ACTION_PREFIX = '/me ';

const JOIN_REFUSALS: Readonly<Record<string, string>> = {
  '403': 'no such channel',
  '405': 'the account is in too many channels',
  '437': 'the channel is temporarily unavailable',
  '471': 'the channel is full',
  '473': 'the channel is invite-only',
  '474': 'the account is banned from the channel',
  '475': 'the channel needs a key',
  '477': 'the channel needs a registered nick',
};

interface IrcId {
  /** A nick or a channel name. */
  name: string;
  server: string;
}

/** A contact's or a channel's id split; undefined when it is neither. */
function parseId(id: string): IrcId | undefined {
  const at = id.lastIndexOf('@');
  return at > 0 ? checkedId(id.slice(0, at), id.slice(at + 1)) : undefined;
}

function checkedId(name: string, server: string): IrcId | undefined {
  const host = server.toLowerCase();
  return HOST.test(host) && (NICK.test(name) || CHANNEL.test(name)) ? { name, server: host } : undefined;
}

const formatId = ({ name, server }: IrcId): string => `${name}@${server}`;

export interface IrcNetworkSettings {
  /** The network's SIP domain and the delimiter of its addresses (irc_domain). */
  alias: string;
  delimiter: string;
  /** Most UTF-8 bytes of text in one PRIVMSG (irc_line_limit). */
  lineLimit: number;
  /** The HTTP proxy sessions connect through; undefined: directly. */
  proxy?: HttpProxy;
  /** The networks configured, by name (irc_networks). */
  networks: ReadonlyMap<string, ConfiguredServer>;
}

export class IrcNetwork implements NetworkAdapter {
  readonly id = 'irc' as const;
  readonly alias: string;
  private readonly delimiter: string;

  constructor(
    private readonly settings: IrcNetworkSettings,
    private readonly log: Logger,
  ) {
    this.alias = settings.alias;
    this.delimiter = settings.delimiter;
  }

  normalizeUser(extUser: string): string | undefined {
    const id = parseId(extUser);
    return id && NICK.test(id.name) ? formatId(id) : undefined;
  }

  contactOf(target: SipUri): string | undefined {
    const id = this.idOf(target);
    return id && NICK.test(id.name) ? formatId(id) : undefined;
  }

  roomOf(target: SipUri): { room: string } | undefined {
    const id = this.idOf(target);
    return id && CHANNEL.test(id.name) ? { room: formatId(id) } : undefined;
  }

  sipAddressOf(contact: string): string | undefined {
    return this.addressOf(contact, NICK);
  }

  roomAddressOf(room: string): string | undefined {
    return this.addressOf(room, CHANNEL);
  }

  get addressHint(): string {
    return `nick${this.delimiter}server@${this.alias} (channels %23channel${this.delimiter}server@${this.alias})`;
  }

  get servers(): ReadonlyMap<string, ConfiguredServer> {
    return this.settings.networks;
  }

  readonly servesEveryServer = false;

  serverNameOf(extUser: string): string {
    return parseId(extUser)?.server ?? extUser;
  }

  /** The account's own server when it has one, else the configured network it names, else the host it names. */
  endpointOf(account: Pick<SessionAccount, 'extUser' | 'server' | 'port' | 'tls'>): Endpoint {
    const name = this.serverNameOf(account.extUser);
    const configured = account.server ? undefined : this.settings.networks.get(name);
    const tls = (configured ?? account).tls === 'none' ? 'none' : 'direct';
    const port = (configured ?? account).port ?? (tls === 'none' ? PLAIN_PORT : TLS_PORT);
    return { host: account.server ?? configured?.host ?? name, port, tls };
  }

  /** An account reaches the contacts and channels of its own IRC network (host) only. */
  reaches(extUser: string, id: string): boolean {
    const server = parseId(id)?.server;
    return server !== undefined && server === parseId(extUser)?.server;
  }

  createSession(account: SessionAccount, settings: SessionSettings): NetworkSession {
    const { lineLimit, proxy } = this.settings;
    return new IrcSession(account, this.endpointOf(account), settings, { lineLimit, transport: proxy && ircTransportThrough(NetTransport, proxy) }, this.log.child({ account: account.extUser }));
  }

  private idOf(target: SipUri): IrcId | undefined {
    const at = target.user.lastIndexOf(this.delimiter);
    return at > 0 ? checkedId(target.user.slice(0, at), target.user.slice(at + this.delimiter.length)) : undefined;
  }

  private addressOf(id: string, form: RegExp): string | undefined {
    const parts = parseId(id);
    return parts && form.test(parts.name) ? sipAddress(`${parts.name}${this.delimiter}${parts.server}`, this.alias) : undefined;
  }
}

export class IrcSession extends EventEmitter<SessionEvents> implements NetworkSession {
  state: SessionState = 'stopped';
  private readonly nick: string;
  private readonly server: string;
  private client: Client | undefined;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private wasOnline = false;
  /** Why the server closed the connection (its ERROR line), for the log and the offline reason. */
  private closing: string | undefined;
  private readonly joined = new Map<string, string>();
  /** Lower-cased target -> id of the latest message sent to it, for matching 401/404. */
  private readonly lastSent = new Map<string, string>();
  private readonly watched = new Set<string>();
  /** Messages written and not confirmed: those a PING was sent after, by its token, and those written since. */
  private readonly awaitingPong = new Map<string, Array<(confirmed: boolean) => void>>();
  private unpinged: Array<(confirmed: boolean) => void> = [];
  private lastPingToken = 0;
  private away: string | undefined;
  private readonly lineLimit: number;
  /** irc-framework's transport through the HTTP proxy; undefined: its own, direct. */
  private readonly transport: unknown;

  constructor(
    private readonly account: SessionAccount,
    private readonly endpoint: Endpoint,
    settings: SessionSettings,
    network: { lineLimit: number; transport?: unknown },
    private readonly log: Logger,
  ) {
    super();
    const id = parseId(account.extUser);
    if (!id || !NICK.test(id.name)) throw new Error(`not an IRC account (nick@server): ${account.extUser}`);
    this.nick = id.name;
    this.server = id.server;
    this.backoff = new Backoff(settings.reconnectMinMs, settings.reconnectMaxMs);
    this.lineLimit = network.lineLimit;
    this.transport = network.transport;
  }

  get rooms(): ReadonlyMap<string, string> {
    return this.joined;
  }

  start(): void {
    if (this.state === 'online' || this.state === 'connecting') return;
    this.state = 'connecting';
    this.backoff.reset();
    this.connect();
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    await this.drop('Parley gateway session ended');
  }

  send(to: string, im: InstantMessage, id: string): Sent {
    const client = this.client;
    if (this.state !== 'online' || !client) return false;
    const contact = this.resolve(to, NICK, 'a nick');
    if (typeof contact === 'string') {
      // After the caller has recorded the id, which it does once send() returns.
      setImmediate(() => this.emit('undelivered', id, 404, contact));
      return true;
    }
    return this.write(client, contact.name, im.body, id);
  }

  /** The nick or channel an id names on the account's network, or why it names none. */
  private resolve(id: string, form: RegExp, what: string): IrcId | string {
    const reason = this.elsewhere(id);
    if (reason) return reason;
    const parsed = parseId(id)!;
    return form.test(parsed.name) ? parsed : `${id} is not ${what}`;
  }

  /** Why an id is not on the account's network (the service picks accounts that reach() their contact; this guards the session). */
  private elsewhere(contact: string): string | undefined {
    const id = parseId(contact);
    if (!id) return `${contact} is not an IRC nick@server or #channel@server`;
    return id.server === this.server ? undefined : `${contact} is on ${id.server}; your IRC account ${this.account.extUser} is on ${this.server}`;
  }

  /** `_nick` is ignored: IRC has one nick per connection, the account's. */
  join(room: string, _nick: string): boolean {
    const channel = this.resolve(room, CHANNEL, 'a channel');
    if (typeof channel === 'string') {
      setImmediate(() => this.emit('left', room, channel));
      return true;
    }
    // Kept while connecting: channels are joined (again) each time the session comes online.
    this.joined.set(room, this.nick);
    const client = this.client;
    if (this.state !== 'online' || !client) return false;
    client.join(channel.name);
    return true;
  }

  leave(room: string): void {
    if (!this.joined.delete(room)) return;
    this.client?.part(parseId(room)!.name);
    this.emit('left', room, undefined);
  }

  sendToRoom(room: string, im: InstantMessage, id: string): Sent {
    const client = this.client;
    if (this.state !== 'online' || !client || !this.joined.has(room)) return false;
    return this.write(client, parseId(room)!.name, im.body, id);
  }

  setPresence(state: PresenceState): void {
    const away = awayMessage(state);
    if (away === this.away) return;
    this.away = away;
    if (this.state === 'online') this.client?.raw(away ? `AWAY :${away}` : 'AWAY');
  }

  watch(contact: string): void {
    const id = parseId(contact);
    if (!id || id.server !== this.server || this.watched.has(id.name)) return;
    this.watched.add(id.name);
    this.monitor('+', [id.name]);
  }

  unwatch(contact: string): void {
    const id = parseId(contact);
    if (!id || !this.watched.delete(id.name)) return;
    this.monitor('-', [id.name]);
  }

  /** IRC has no presence subscriptions to answer. */
  answerSubscription(): void {}

  private connect(): void {
    const { password } = this.account;
    const { host, port, tls } = this.endpoint;
    const client = new Client();
    this.client = client;
    this.closing = undefined;
    // Events of a connection this session dropped are ignored.
    const on = <T extends unknown[]>(emitter: { on(event: string, listener: (...args: T) => void): unknown }, event: string, listener: (...args: T) => void) =>
      emitter.on(event, (...args: T) => {
        if (this.client === client) listener(...args);
      });
    on(client, 'registered', () => this.onRegistered(client));
    on(client, 'socket close', (error?: Error) => this.onClose(error));
    on(client.connection, 'message', (message: IrcMessage) => this.onLine(message));
    on(client, 'privmsg', (event: MessageEvent) => this.onMessage(client, event, false));
    on(client, 'notice', (event: MessageEvent) => this.onMessage(client, event, false));
    on(client, 'action', (event: MessageEvent) => this.onMessage(client, event, true));
    on(client, 'join', (event: ChannelEvent) => this.onJoin(client, event));
    on(client, 'part', (event: ChannelEvent) => this.onPart(client, event));
    on(client, 'kick', (event: ChannelEvent) => this.onKick(client, event));
    this.connectTimer = setTimeout(() => {
      if (this.client === client && this.state === 'connecting') this.retry('no registration within the time allowed');
    }, CONNECT_TIMEOUT_MS).unref();
    client.connect({
      host,
      port,
      tls: tls !== 'none',
      nick: this.nick,
      username: 'parley',
      gecos: this.nick,
      password: password || undefined,
      encoding: 'utf8',
      version: 'Parley SIP gateway',
      // Reconnection is this session's (with backoff, and never after a refusal), not the library's.
      auto_reconnect: false,
      ...(this.transport ? { transport: this.transport } : {}),
    });
  }

  private onRegistered(client: Client): void {
    if (this.state !== 'connecting') return;
    clearTimeout(this.connectTimer);
    this.state = 'online';
    this.wasOnline = true;
    this.failures = 0;
    this.backoff.reset();
    for (const room of this.joined.keys()) client.join(parseId(room)!.name);
    if (this.away) client.raw(`AWAY :${this.away}`);
    this.monitor('+', [...this.watched]);
    this.log.info({ nick: client.user.nick }, 'IRC session online');
    this.emit('online');
  }

  private onClose(error: Error | undefined): void {
    this.client = undefined;
    this.unconfirmedLost();
    clearTimeout(this.connectTimer);
    const reason = this.closing ?? error?.message ?? 'connection closed';
    if (this.state === 'online') {
      this.state = 'connecting';
      this.log.info({ reason }, 'IRC session lost; reconnecting');
      this.emit('offline', `connection lost (${reason})`);
      this.scheduleRetry();
    } else if (this.state === 'connecting') {
      this.couldNotConnect(connectionFailure(error, this.endpoint.host, this.endpoint.port) ?? `${this.where}: ${reason}`);
      this.scheduleRetry();
    }
  }

  /** An attempt failed: the first of a run is logged and told (`unreachable`), the others only retried. */
  private couldNotConnect(reason: string): void {
    if (this.failures++ > 0) return;
    this.log.info({ reason }, 'IRC session could not connect; retrying');
    this.emit('unreachable', reason);
  }

  /** host:port of the server. */
  private get where(): string {
    return `${this.endpoint.host}:${this.endpoint.port}`;
  }

  /** Numerics and ERROR, as the server sent them. */
  private onLine({ command, params }: IrcMessage): void {
    const text = params.at(-1) ?? '';
    const subject = params[1] ?? '';
    if (Object.hasOwn(JOIN_REFUSALS, command)) return this.refused(subject, `${JOIN_REFUSALS[command]} (${command}: ${text})`);
    switch (command) {
      case '464':
        return this.fail(`${this.server} refused the password (464: ${text})`, 'authentication');
      case '465':
        return this.fail(`banned from ${this.server} (465: ${text})`, 'account');
      case '902':
      case '904':
        return this.fail(`SASL authentication as ${this.nick} failed (${command}: ${text})`, 'authentication');
      case '432':
        return this.fail(`${this.server} does not accept the nick ${this.nick} (432: ${text})`, 'account');
      case '433':
        if (this.state !== 'connecting') return;
        if (!this.wasOnline) return this.fail(`the nick ${this.nick} is in use on ${this.server} (433)`, 'account');
        // Most likely this account's own connection that was lost, not yet timed out by the server.
        return this.retry(`the nick ${this.nick} is still in use (433)`);
      case 'ERROR':
        this.closing = text;
        if (this.state === 'connecting' && PERMANENT_ERROR.test(text)) this.fail(`${this.server} refused the account: ${text}`, BAD_PASSWORD_ERROR.test(text) ? 'authentication' : 'account');
        return;
      case 'PONG':
        return this.confirmed(text);
      case '401':
        return this.undeliverable(subject, 404, `no one on ${this.server} uses the nick ${subject}`);
      case '404':
        return this.undeliverable(subject, 403, `${subject} on ${this.server} does not take the message (404: ${text})`);
      case '730':
        for (const mask of text.split(',')) this.emit('presence', `${mask.split('!')[0]}@${this.server}`, OPEN);
        return;
      case '731':
        for (const nick of text.split(',')) this.emit('presence', `${nick}@${this.server}`, null);
        return;
    }
  }

  private onMessage(client: Client, event: MessageEvent, action: boolean): void {
    if (event.from_server || !event.nick) return;
    const text = event.message.replace(FORMATTING, '').replace(CONTROL, '');
    if (!text) return;
    const im: InstantMessage = { body: action ? `${ACTION_PREFIX}${text}` : text };
    if (client.network.isChannelName(event.target)) {
      const room = this.roomOfChannel(client, event.target);
      if (room && !client.caseCompare(event.nick, client.user.nick)) this.emit('roomMessage', room, event.nick, im);
    } else if (client.caseCompare(event.target, client.user.nick)) {
      this.emit('message', formatId({ name: event.nick, server: this.server }), im);
    }
  }

  private onJoin(client: Client, event: ChannelEvent): void {
    const room = client.caseCompare(event.nick, client.user.nick) && this.roomOfChannel(client, event.channel);
    if (room) this.emit('joined', room, this.nick);
  }

  private onPart(client: Client, event: ChannelEvent): void {
    // A part the session asked for was told by leave(); this one is the server's doing.
    const room = client.caseCompare(event.nick, client.user.nick) && this.roomOfChannel(client, event.channel);
    if (room && this.joined.delete(room)) this.emit('left', room, `the server removed the account${event.message ? `: ${event.message}` : ''}`);
  }

  private onKick(client: Client, event: ChannelEvent): void {
    const room = client.caseCompare(event.kicked ?? '', client.user.nick) && this.roomOfChannel(client, event.channel);
    if (room && this.joined.delete(room)) this.emit('left', room, `kicked by ${event.nick}${event.message ? `: ${event.message}` : ''}`);
  }

  private refused(channel: string, reason: string): void {
    const room = this.client && this.roomOfChannel(this.client, channel);
    if (room && this.joined.delete(room)) this.emit('left', room, `cannot join ${channel}: ${reason}`);
  }

  private roomOfChannel(client: Client, channel: string): string | undefined {
    for (const room of this.joined.keys()) if (client.caseCompare(parseId(room)!.name, channel)) return room;
    return undefined;
  }

  private undeliverable(target: string, status: number, explanation: string): void {
    const key = target.toLowerCase();
    const id = this.lastSent.get(key);
    if (id === undefined) return;
    // One error per message, though each of its lines draws one.
    this.lastSent.delete(key);
    this.emit('undelivered', id, status, explanation);
  }

  /** Writes the message; settles true once the server confirmed it, false when the connection is lost first. */
  private write(client: Client, target: string, body: string, id: string): Promise<boolean> {
    const key = target.toLowerCase();
    this.lastSent.delete(key);
    this.lastSent.set(key, id);
    if (this.lastSent.size > MAX_TRACKED) this.lastSent.delete(this.lastSent.keys().next().value!);
    for (const { action, text } of ircLines(body, this.lineLimit)) {
      client.raw(`PRIVMSG ${target} :${action ? `\x01ACTION ${text}\x01` : text}`);
    }
    const confirmation = new Promise<boolean>((settle) => this.unpinged.push(settle));
    if (this.unpinged.length === 1) setImmediate(() => this.pingAfterWrites(client));
    return confirmation;
  }

  /** A PING after the messages written since the last one: its PONG confirms them all. */
  private pingAfterWrites(client: Client): void {
    // Lost in the meantime, the connection's messages were settled by unconfirmedLost().
    if (this.client !== client || this.unpinged.length === 0) return;
    const token = `parley-${++this.lastPingToken}`;
    this.awaitingPong.set(token, this.unpinged);
    this.unpinged = [];
    client.raw(`PING :${token}`);
  }

  private confirmed(token: string): void {
    const settles = this.awaitingPong.get(token);
    if (!settles) return;
    this.awaitingPong.delete(token);
    for (const settle of settles) settle(true);
  }

  /** The connection is gone: what it did not confirm is to be sent again. */
  private unconfirmedLost(): void {
    const settles = [...this.awaitingPong.values()].flat().concat(this.unpinged);
    this.awaitingPong.clear();
    this.unpinged = [];
    for (const settle of settles) settle(false);
  }

  private monitor(change: '+' | '-', nicks: string[]): void {
    const client = this.client;
    if (this.state !== 'online' || !client || nicks.length === 0 || !client.network.supports('MONITOR')) return;
    client.raw(`MONITOR ${change} ${nicks.join(',')}`);
  }

  private fail(reason: string, cause: RefusalCause): void {
    if (this.state !== 'connecting' && this.state !== 'online') return;
    this.state = 'failed';
    clearTimeout(this.retryTimer);
    this.log.warn({ reason }, 'IRC account refused; not retrying');
    void this.drop();
    this.emit('failed', reason, cause);
  }

  /** Gives up the connection being registered, to try again later. */
  private retry(reason: string): void {
    this.log.info({ reason }, 'IRC registration failed; retrying');
    this.couldNotConnect(`${this.where}: ${reason}`);
    void this.drop();
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      if (this.state === 'connecting' && !this.client) this.connect();
    }, delay).unref();
  }

  /** Ends the current connection (QUIT when it is up); the session's state is the caller's business. */
  private async drop(quitMessage?: string): Promise<void> {
    const client = this.client;
    this.client = undefined;
    clearTimeout(this.connectTimer);
    this.unconfirmedLost();
    if (!client) return;
    const closed = new Promise<void>((resolve) => {
      client.once('socket close', () => resolve());
      setTimeout(resolve, QUIT_TIMEOUT_MS).unref();
    });
    if (client.connected && quitMessage) client.quit(quitMessage);
    else client.connection.end();
    await closed;
    client.connection.end(undefined, true);
    client.removeAllListeners();
  }
}

/** The PRIVMSG texts of a body: one or more per line (see the top of the file). */
export function ircLines(body: string, limit: number): Array<{ action: boolean; text: string }> {
  const out: Array<{ action: boolean; text: string }> = [];
  for (const line of body.split(/\r\n|\r|\n/)) {
    const action = line.startsWith(ACTION_PREFIX);
    const text = (action ? line.slice(ACTION_PREFIX.length) : line).replace(/\t/g, ' ').replace(/[\x00-\x1f\x7f]/g, '');
    for (const piece of splitUtf8(text, limit)) out.push({ action, text: piece });
  }
  return out;
}

/** `text` in pieces of at most `limit` UTF-8 bytes: cut at the last space that fits (dropped), else between two characters. */
export function splitUtf8(text: string, limit: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  while (Buffer.byteLength(rest) > limit) {
    let end = 0;
    let bytes = 0;
    let space = -1;
    for (const char of rest) {
      const size = Buffer.byteLength(char);
      if (bytes + size > limit) break;
      if (char === ' ' && end > 0) space = end;
      bytes += size;
      end += char.length;
    }
    if (rest[end] === ' ') space = end;
    // With a limit below 4 bytes a first character might not fit at all: it goes alone.
    const cut = space > 0 ? space : end || String.fromCodePoint(rest.codePointAt(0)!).length;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(space > 0 ? cut + 1 : cut);
  }
  if (rest) pieces.push(rest);
  return pieces;
}

/** The AWAY message for the SIP user's presence; undefined when plainly available. */
function awayMessage(state: PresenceState): string | undefined {
  if (state.basic === 'open' && state.activities.length === 0) return undefined;
  const text = state.notes.join('; ') || state.activities.join(', ') || (state.basic === 'open' ? 'away' : 'offline');
  return text.replace(/[\x00-\x1f\x7f]/g, ' ');
}
