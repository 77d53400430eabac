// The per-user gateway service (Kamailio's jabber and purple modules): SIP users link their own
// accounts on other networks, and the `gateway` routing handler takes MESSAGEs to the gateway's
// address (#commands) and to the networks' SIP domains (messages sent from the user's own account).
// One session per linked account goes online when its SIP user registers or asks (#online), and
// offline on #offline, on unregistration, or after cache_time without traffic. A MESSAGE answered
// 202 is in the store's outbox first: it waits there for its session (up to delay_time), across a
// restart too (kill -9 included). What comes from a network enters SIP through the relay (every
// contact of the user, or the offline store).
//
// Group chats: "#join" sent to a room's address enters it, "#leave" leaves; what the user writes
// there goes to the room, and the room's traffic comes from that address with the speaker's nick.
// The rooms an account is in are stored, and joined again whenever its session starts (after a
// restart of Parley too).
// Presence: what the SIP user publishes becomes the account's presence; a SIP watcher of a
// contact's address makes the account watch the contact, whose presence the agent then publishes
// under that address; a contact asking to see the user is answered with #allow or #deny.
// The purple mapping: a MESSAGE to a local user who is not registered but has a linked account
// goes from the sender's own account on that network; a message from a contact who is a linked
// account of a SIP user arrives as from that SIP user.
// What every gateway does the same way (the outbox step, what was sent, failure notices, ordered
// delivery into SIP) is the bridge's (src/bridge); the networks' sessions are its other edges.
import type { Logger } from 'pino';
import { type Address, type InstantMessage, SipBridge, type SipOrigin, TEXT_PLAIN, excerptOf, plainSipAddress, readSipMessage, senderOf } from '../bridge/index.js';
import { type LegContext, type LegOutcome, type Outbox, type Relay, repeatableId, requestKey } from '../relay/index.js';
import type { PresenceService, PresenceState } from '../presence/index.js';
import type { Registrar } from '../registrar/index.js';
import { type IncomingRequest, type SipUri, aorOf, parseUri, sipUriOfAor } from '../sip/index.js';
import { STORE_RETRY_AFTER_SECONDS, isStoreUnavailable, logBackgroundFailure, type GatewayAccount, type GatewayAccountStore, type GatewayRoomStore, type OutboxStore } from '../store/index.js';
import type { NetworkAdapter, NetworkSession, RefusalCause, SessionState } from './adapter.js';
import { AccountError, type AccountRequest, type PreparedAccount, prepareAccount, sessionSettings } from './accounts.js';
import { gatewayHelp, parseGatewayCommand, type GatewayCommand } from './commands.js';
import type { GatewayOptions } from './options.js';
import { type NetworkId, networkOf } from './protocols.js';
import { SecretBox, sealContext } from './secrets.js';
import { createNetworks } from './networks.js';

export interface GatewayDependencies {
  accounts: GatewayAccountStore;
  /** The group chats the accounts joined, joined again when their sessions start. */
  rooms: GatewayRoomStore;
  /** Where MESSAGEs answered 202 wait for their session. */
  outbox: OutboxStore;
  relay: Relay;
  registrar: Registrar;
  /** The presence agent, when presence is served: presence then crosses the gateway both ways. */
  presence?: PresenceService;
}

/** The source name of the presence the gateway publishes into the agent. */
const PRESENCE_SOURCE = 'gateway';

export interface GatewayStats {
  /** Sessions by state. */
  sessions: Record<SessionState, number>;
  /** Sessions by state, per network served. */
  networks: Partial<Record<NetworkId, Record<SessionState, number>>>;
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

/** A MESSAGE answered 202, as the outbox keeps it until its session took it. */
interface Pending {
  accountId: number;
  id: string;
  /** The contact, or the group chat when `room`. */
  contact: string;
  room: boolean;
  im: InstantMessage;
  origin: SipOrigin;
  /** When it was answered 202: delay_time counts from there. */
  since: number;
}

/** A message waiting for its session to come online, and how to end its wait: with its outcome, or 'online' to send it now. */
interface Waiting {
  pending: Pending;
  settle(outcome: LegOutcome | 'online'): void;
}

/** Why an account's session ended: what its messages still waiting are failed with. */
interface Ended {
  status: number;
  explanation: string;
}

interface Live {
  account: GatewayAccount;
  adapter: NetworkAdapter;
  session: NetworkSession;
  lastTraffic: number;
  /** The message (the first of the account's queue) waiting for the session to come online. */
  pending: Waiting[];
  /** Contacts SIP watchers asked this account to watch. */
  watched: Set<string>;
  /** Contacts waiting for #allow or #deny. */
  requests: Set<string>;
  /** Group chats the user was told they are in (as stored), with the account's nick in each. */
  inRooms: Map<string, string>;
  /** Why the latest attempt to connect failed, while the session keeps trying; shown by #status. */
  problem?: string;
}

/** How many messages sent and not confirmed are remembered per session, for an error that may come back for one. */
const MAX_SENT_PER_SESSION = 1000;
/** Messages of one account written to its network and waiting for the network to confirm them (IRC): one confirmation may cover them all. */
const UNCONFIRMED_WINDOW = 32;
/** Retry-After of a MESSAGE refused because too many wait for its session. */
const QUEUE_RETRY_AFTER_SECONDS = 5;

export class GatewayService {
  private readonly box: SecretBox;
  private readonly byAlias = new Map<string, NetworkAdapter>();
  private readonly byNetwork = new Map<NetworkId, NetworkAdapter>();
  private readonly live = new Map<number, Live>();
  /** Accounts whose session ended, by id, until one starts again: their messages still waiting fail. */
  private readonly ended = new Map<number, Ended>();
  /** The outbox step, what was sent, failure notices and deliveries into SIP. */
  private readonly bridge: SipBridge;
  /** Messages answered 202, one queue per account, each waiting for its session. */
  private readonly outbox: Outbox<Pending>;
  /** Settles when the gateway stops: messages waiting for a network's confirmation then stay in the outbox for the next start. */
  private readonly stopped: Promise<false>;
  private markStopped!: () => void;
  private stopping = false;
  private readonly counters = { sipToNetwork: 0, networkToSip: 0, commands: 0, refused: 0, undelivered: 0, accountFailures: 0 };
  private lastIdleCheck = 0;
  private readonly onRegistered = (aor: string) => void this.registered(aor).catch((error: unknown) => this.log.error({ err: error, aor }, 'gateway: bringing sessions online failed'));
  private readonly onUnregistered = (aor: string) => {
    if (this.deps.registrar.lookup(aor).length === 0) void this.takeOffline(sipUriOfAor(aor), undefined, 'you unregistered');
  };
  private readonly onPresenceChange = (aor: string, state: PresenceState, source: string) => {
    if (source === PRESENCE_SOURCE) return;
    for (const live of this.sessionsOf(sipUriOfAor(aor))) live.session.setPresence(state);
  };
  private readonly onWatch = (presentity: string, watcher: string) => void this.watch(presentity, watcher, true).catch((error: unknown) => this.log.error({ err: error, presentity }, 'gateway: watching a contact failed'));
  private readonly onUnwatch = (presentity: string, watcher: string) => void this.watch(presentity, watcher, false).catch((error: unknown) => this.log.error({ err: error, presentity }, 'gateway: unwatching a contact failed'));

  constructor(
    private readonly options: GatewayOptions,
    private readonly deps: GatewayDependencies,
    private readonly log: Logger,
    adapters: NetworkAdapter[] = createNetworks(options, log),
  ) {
    this.box = new SecretBox(options.secretKey);
    const limits = { maxMessages: options.maxQueue * options.maxSessions, maxPerRecipient: options.maxQueue };
    this.bridge = new SipBridge(deps.relay, { network: 'the network', maxSent: MAX_SENT_PER_SESSION * options.maxSessions }, log);
    this.outbox = this.bridge.outbox(deps.outbox, 'gateway', (pending: Pending, _, leg) => this.deliverPending(upgraded(pending), leg), limits);
    this.stopped = new Promise((resolve) => (this.markStopped = () => resolve(false)));
    for (const adapter of adapters) {
      for (const alias of [adapter.alias, ...(adapter.extraAliases ?? [])]) this.byAlias.set(alias, adapter);
      this.byNetwork.set(adapter.id, adapter);
    }
  }

  /** The SIP domains of the networks. */
  get aliases(): string[] {
    return [...this.byAlias.keys()];
  }

  get stats(): GatewayStats {
    const none = (): Record<SessionState, number> => ({ connecting: 0, online: 0, stopped: 0, failed: 0 });
    const sessions = none();
    const networks: GatewayStats['networks'] = {};
    for (const id of this.byNetwork.keys()) networks[id] = none();
    for (const live of this.live.values()) {
      sessions[live.session.state]++;
      networks[live.adapter.id]![live.session.state]++;
    }
    return { sessions, networks, ...this.counters };
  }

  /** The sessions that cannot connect (the network unreachable, Parley retrying), each with the network and why. */
  failingSessions(): Array<{ network: string; problem: string }> {
    return [...this.live.values()].flatMap((live) => (live.problem && live.session.state === 'connecting' ? [{ network: live.adapter.id, problem: live.problem }] : []));
  }

  /** Sessions in all, whatever their state. */
  get sessionCount(): number {
    return this.live.size;
  }

  /** Messages answered 202 and not yet taken by their session (kept in the outbox). */
  get pendingMessages(): number {
    return this.outbox.size;
  }

  /** The adapters of the networks served, by network id. */
  get networks(): ReadonlyMap<NetworkId, NetworkAdapter> {
    return this.byNetwork;
  }

  /** The key that seals and opens the stored passwords. */
  get secrets(): SecretBox {
    return this.box;
  }

  /**
   * Tells the service an account was changed or removed behind its back (CLI, RPC): a session
   * with the old credentials ends; when the account still exists, is enabled and its SIP user is
   * registered, a new session starts.
   */
  async accountChanged(accountId: number): Promise<void> {
    const live = this.live.get(accountId);
    if (live) await this.end(live, 'the account was changed by the operator');
    const account = await this.deps.accounts.get(accountId);
    if (!account?.enabled || !this.byNetwork.has(networkOf(account.extProt)!)) return;
    if (this.deps.registrar.lookup(aorOfSipUser(account.sipUser)).length > 0) this.bringOnline(account);
  }

  /** The state of an account's session; 'stopped' when it has none. */
  sessionState(accountId: number): SessionState {
    return this.live.get(accountId)?.session.state ?? 'stopped';
  }

  /** Listens to the registrar and presence, and brings online the accounts of the users registered already (after a restart). */
  async start(): Promise<void> {
    this.deps.registrar.on('registered', this.onRegistered);
    this.deps.registrar.on('unregistered', this.onUnregistered);
    this.deps.presence?.on('change', this.onPresenceChange).on('watch', this.onWatch).on('unwatch', this.onUnwatch);
    this.bridge.start(Math.min(1000, this.options.delayTimeMs), (now) => this.sweep(now));
    const users = new Set((await this.deps.accounts.list()).map((account) => aorOfSipUser(account.sipUser)));
    const registered = [...users].filter((aor) => this.deps.registrar.lookup(aor).length > 0);
    await Promise.all(registered.map((aor) => this.registered(aor)));
    await this.outbox.start();
  }

  async stop(): Promise<void> {
    this.bridge.stop();
    this.deps.registrar.off('registered', this.onRegistered);
    this.deps.registrar.off('unregistered', this.onUnregistered);
    this.deps.presence?.off('change', this.onPresenceChange).off('watch', this.onWatch).off('unwatch', this.onUnwatch);
    // What waits for a session, or for the network to confirm it, stays in the outbox for the next start.
    const stopped = this.outbox.stop();
    this.stopping = true;
    this.markStopped();
    for (const live of this.live.values()) for (const waiting of live.pending.splice(0)) waiting.settle('retry');
    await stopped;
    await Promise.allSettled([...this.live.values()].map((live) => this.end(live, 'the gateway stopped')));
    await this.bridge.drain();
  }

  /** The `gateway` routing handler: a MESSAGE to the gateway's address or to a network's domain. */
  async handle(request: IncomingRequest): Promise<void> {
    const message = request.message;
    const sender = senderOf(message);
    if ('status' in sender) return this.refuse(request, sender.status, sender.reason);
    const target = message.requestUri;
    const aor = aorOf(sender);
    const sipUser = sipUriOfAor(aor);
    const authenticated = request.identity === aor || this.options.allowUnauthenticated;
    const isCommand = target.host === this.options.registrar.host && target.user === this.options.registrar.user;
    const adapter = this.byAlias.get(target.host);
    if (!isCommand && !adapter) {
      // A local user's address (map_local_users): through the network only when purple's mapping applies.
      const local = this.options.localDomains.has(sender.host) && sender.user !== '' && authenticated;
      return local ? this.toMappedUser(request, sipUser, target) : this.deps.relay.handle(request);
    }
    if (!this.options.localDomains.has(sender.host) || !sender.user) {
      return this.refuse(request, 403, 'Forbidden (the gateway serves local users only)');
    }
    if (!authenticated) {
      this.refuse(request, 403, 'Forbidden (the gateway takes authenticated senders only)');
      // The From is unproven: the user hears of it only on the contacts it registered.
      if (isCommand && this.deps.relay.hasContacts(aor)) this.reply(sipUser, 'Refused: the gateway takes commands only from a sender who passed digest authentication. Nothing was changed.');
      return;
    }
    if (isCommand) return this.command(request, sipUser, aor);
    return this.forward(request, adapter!, sipUser, target);
  }

  // --- SIP -> network --------------------------------------------------------------------------

  private async forward(request: IncomingRequest, adapter: NetworkAdapter, sipUser: string, target: SipUri): Promise<void> {
    const named = adapter.roomOf(target);
    const contact = named?.room ?? adapter.contactOf(target);
    const account = await this.accountFor(request, sipUser, adapter, contact);
    if (!account) return;
    if (!contact) return this.refuse(request, 404, `Not Found (write to ${adapter.addressHint})`);
    const im = readSipMessage(request.message, this.options.maxBody);
    if ('status' in im) return this.refuse(request, im.status, im.reason, im.headers);
    const live = this.bringOnline(account);
    if (typeof live === 'string') return this.refuse(request, 503, `Service Unavailable (${live})`);
    const roomCommand = /^#(join|leave)\s*$/i.exec(im.body.trim())?.[1]?.toLowerCase();
    if (roomCommand === 'join') {
      live.lastTraffic = Date.now();
      live.session.join(contact, named?.nick ?? parseUri(sipUser).user);
      this.counters.commands++;
      return request.reply(202, 'Accepted');
    }
    const inRoom = live.session.rooms.has(contact);
    if (roomCommand === 'leave') {
      if (!inRoom) return this.refuse(request, 404, `Not Found (you are not in ${contact})`);
      live.session.leave(contact);
      this.counters.commands++;
      return request.reply(200, 'OK');
    }
    if (named && !inRoom) return this.refuse(request, 480, `Temporarily Unavailable (you are not in ${contact}; send #join to this address first)`);
    const unreachable = live.session.unreachable?.(contact);
    if (unreachable) return this.refuse(request, 480, `Temporarily Unavailable (${unreachable})`);
    return this.send(request, live, { accountId: account.id, id: repeatableId(requestKey(request.message)), contact, room: inRoom, im, origin: this.originOf(sipUser, target, contact, im), since: Date.now() });
  }

  /** The MESSAGE to a local user whose linked account is on a network the sender has an account on too (purple's mapping). */
  private async toMappedUser(request: IncomingRequest, sipUser: string, target: SipUri): Promise<void> {
    const recipient = aorOf(target);
    if (!target.user || this.deps.registrar.lookup(recipient).length > 0) return this.deps.relay.handle(request);
    const theirs = (await this.deps.accounts.listFor(sipUriOfAor(recipient))).filter((a) => a.enabled);
    if (theirs.length === 0) return this.deps.relay.handle(request);
    const mine = (await this.deps.accounts.listFor(sipUser)).filter((a) => a.enabled);
    for (const their of theirs) {
      const network = networkOf(their.extProt);
      const adapter = network && this.byNetwork.get(network);
      const account = adapter && mine.find((a) => networkOf(a.extProt) === network && (adapter.reaches?.(a.extUser, their.extUser) ?? true));
      if (!account || !adapter) continue;
      const im = readSipMessage(request.message, this.options.maxBody);
      if ('status' in im) return this.refuse(request, im.status, im.reason, im.headers);
      const live = this.bringOnline(account);
      if (typeof live === 'string') break;
      return this.send(request, live, { accountId: account.id, id: repeatableId(requestKey(request.message)), contact: their.extUser, room: false, im, origin: this.originOf(sipUser, target, their.extUser, im), since: Date.now() });
    }
    return this.deps.relay.handle(request);
  }

  /** The sender's enabled account on the network that reaches the contact; undefined once the request was refused for want of one. */
  private async accountFor(request: IncomingRequest, sipUser: string, adapter: NetworkAdapter, contact: string | undefined): Promise<GatewayAccount | undefined> {
    const linked = (await this.deps.accounts.listFor(sipUser)).filter((a) => networkOf(a.extProt) === adapter.id);
    const accounts = contact === undefined || !adapter.reaches ? linked : linked.filter((a) => adapter.reaches!(a.extUser, contact));
    if (accounts.length === 0) {
      const which = linked.length > 0 ? `${adapter.id} account linked that reaches ${contact}` : `${adapter.id} account linked`;
      this.refuse(request, 403, `Forbidden (no ${which}; send #link to ${this.options.registrarAddress})`);
      return undefined;
    }
    const account = accounts.find((a) => a.enabled);
    if (!account) this.refuse(request, 480, `Temporarily Unavailable (your ${adapter.id} account is disabled: ${accounts[0]!.lastError ?? 'refused'}; #link it again)`);
    return account;
  }

  private originOf(sipUser: string, target: SipUri, contact: string, im: InstantMessage): SipOrigin {
    return { sender: sipUser, target: plainSipAddress(target), recipient: contact, excerpt: excerptOf(im.body) };
  }

  /** Puts the message in the outbox, for the session to send now or once online (within delay_time); 202 once it is there. */
  private async send(request: IncomingRequest, live: Live, pending: Pending): Promise<void> {
    live.lastTraffic = pending.since;
    if (await this.bridge.accept(request, this.outbox, pending, String(pending.accountId), pending.since)) this.counters.sipToNetwork++;
    else this.refuse(request, 503, 'Service Unavailable (too many messages waiting for your session)', [{ name: 'retry-after', value: String(QUEUE_RETRY_AFTER_SECONDS) }]);
  }

  /**
   * One message from the outbox to its session: sent (and confirmed, on a network that confirms),
   * or failed back to its sender; waits while the session comes online, and sends again what a lost
   * connection left unconfirmed.
   */
  private async deliverPending(pending: Pending, leg: LegContext): Promise<LegOutcome> {
    const live = this.live.get(pending.accountId) ?? (await this.resume(pending.accountId));
    if (!('session' in live)) return this.undelivered(pending, live);
    for (;;) {
      if (pending.room && live.session.state === 'online' && !live.session.rooms.has(pending.contact)) {
        return this.undelivered(pending, { status: 480, explanation: `you are not in ${pending.contact}` });
      }
      if (await this.transmit(live, pending, leg)) return 'done';
      if (this.stopping) return 'retry';
      // The session ended (refused, stopped) while the message waited for its confirmation: failed as those waiting were.
      if (this.live.get(pending.accountId) !== live) return this.undelivered(pending, this.ended.get(pending.accountId) ?? { status: 503, explanation: 'the session ended' });
      if (Date.now() - pending.since > this.options.delayTimeMs) return this.undelivered(pending, this.tooLate(live));
      const outcome = await new Promise<LegOutcome | 'online'>((settle) => live.pending.push({ pending, settle }));
      if (outcome !== 'online') return outcome;
    }
  }

  /** The session of an account with messages waiting and no session: ended, or not started yet since the restart. */
  private async resume(accountId: number): Promise<Live | Ended> {
    const ended = this.ended.get(accountId);
    if (ended) return ended;
    const account = await this.deps.accounts.get(accountId);
    if (!account?.enabled) return { status: 403, explanation: 'the account is no longer linked' };
    const live = this.bringOnline(account);
    return typeof live === 'string' ? { status: 503, explanation: live } : live;
  }

  private tooLate(live: Live): Ended {
    return { status: 408, explanation: `your ${live.adapter.id} session was not online within ${this.options.delayTimeMs / 1000} s` };
  }

  private undelivered(pending: Pending, why: Ended): LegOutcome {
    this.counters.undelivered++;
    this.bridge.notifyUndelivered(pending.origin, why.status, why.explanation);
    return 'done';
  }

  /** Sends the message: true once written (and confirmed, on a network that confirms); false when not sent or its connection was lost first. */
  private async transmit(live: Live, pending: Pending, leg: LegContext): Promise<boolean> {
    const sent = pending.room ? live.session.sendToRoom(pending.contact, pending.im, pending.id) : live.session.send(pending.contact, pending.im, pending.id);
    if (sent === false) return false;
    this.bridge.sentToNetwork(sentKey(live, pending.id), pending.origin);
    // The account's next message may go while this one waits for its confirmation.
    leg.turn.sent(UNCONFIRMED_WINDOW);
    return sent === true || Promise.race([sent, this.stopped]);
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
    const mine = this.sessionsOf(account.sipUser).length;
    if (mine >= this.options.maxSessionsPerUser) return `you have ${mine} sessions, the most allowed`;
    let password: string;
    try {
      password = this.box.open(account.extPass ?? '', sealContext(account));
    } catch {
      void this.deps.accounts
        .setStatus(account.id, { enabled: false, lastError: 'the stored password cannot be read; link the account again' })
        .catch(logBackgroundFailure(this.log, 'disabling a gateway account'));
      return 'the stored password cannot be read; link the account again';
    }
    const session = adapter.createSession(
      { id: account.id, extUser: account.extUser, password, server: account.server, port: account.port, tls: account.tls },
      sessionSettings(this.options),
    );
    const live: Live = { account, adapter, session, lastTraffic: Date.now(), pending: [], watched: new Set(), requests: new Set(), inRooms: new Map() };
    this.live.set(account.id, live);
    this.ended.delete(account.id);
    if (this.deps.presence) session.setPresence(this.deps.presence.stateOf(aorOfSipUser(account.sipUser)));
    this.rejoinRooms(live);
    session.on('online', () => {
      live.problem = undefined;
      for (const contact of live.watched) session.watch(contact);
      for (const waiting of live.pending.splice(0)) waiting.settle('online');
    });
    session.on('message', (from, im) => this.fromNetwork(live, from, im));
    session.on('roomMessage', (room, nick, im) => this.fromRoom(live, room, nick, im));
    session.on('joined', (room, nick) => {
      const known = live.inRooms.get(room);
      if (known === nick) return;
      live.inRooms.set(room, nick);
      this.storeRoom(room, () => this.deps.rooms.add(account.id, room, nick));
      if (known === undefined) this.notice(live, room, `You are in ${room} as ${nick}. Write to this address to talk there; send #leave to leave.`);
    });
    session.on('left', (room, reason) => {
      live.inRooms.delete(room);
      this.storeRoom(room, () => this.deps.rooms.remove(account.id, room));
      this.failPending(live, { status: 480, explanation: `you are not in ${room}` }, (p) => p.room && p.contact === room);
      this.notice(live, room, reason === undefined ? `You left ${room}.` : `You are no longer in ${room}: ${reason}.`);
    });
    session.on('presence', (contact, state) => {
      const address = adapter.sipAddressOf(contact);
      if (address) this.deps.presence?.publishFrom(PRESENCE_SOURCE, aorOf(parseUri(address)), state);
    });
    session.on('subscriptionRequest', (contact) => {
      live.requests.add(contact);
      this.reply(
        account.sipUser,
        `${contact} asks to see the presence of your ${adapter.id} account ${account.extUser}. ` +
          `Answer #allow ${contact} or #deny ${contact}.`,
      );
    });
    session.on('undelivered', (id, status, explanation) => void this.bridge.refusedByNetwork(sentKey(live, id), status, explanation));
    session.on('failed', (reason, cause) => void this.failed(live, reason, cause));
    session.on('unreachable', (reason) => {
      live.problem = reason;
      this.reply(
        account.sipUser,
        `Your ${adapter.id} account ${account.extUser} cannot connect: ${reason}. Parley keeps trying; #status shows how it goes.`,
      );
    });
    this.log.info({ sipUser: account.sipUser, network: adapter.id, account: account.extUser }, 'gateway session starting');
    session.start();
    return live;
  }

  /** Joins again the group chats stored for the account; the user was told of them when they first joined. */
  private rejoinRooms(live: Live): void {
    this.deps.rooms
      .listFor(live.account.id)
      .then((rooms) => {
        if (this.live.get(live.account.id) !== live) return;
        for (const { room, nick } of rooms) {
          if (live.session.rooms.has(room)) continue;
          live.inRooms.set(room, nick);
          live.session.join(room, nick);
        }
      })
      .catch(logBackgroundFailure(this.log, 'reading the group chats of a gateway account'));
  }

  /** Records a group chat joined or left; unsaved (store unavailable), it is lost at the next restart only. */
  private storeRoom(room: string, write: () => Promise<void>): void {
    write().catch(logBackgroundFailure(this.log, `storing the group chat ${room} of a gateway account`));
  }

  private async failed(live: Live, reason: string, cause: RefusalCause): Promise<void> {
    this.counters.accountFailures++;
    const { account, adapter } = live;
    if (this.live.get(account.id) === live) this.live.delete(account.id);
    this.failPending(live, { status: 403, explanation: `your ${adapter.id} account ${account.extUser} was refused` });
    // Unsaved (store unavailable), the account is tried again at the user's next registration.
    await this.deps.accounts.setStatus(account.id, { enabled: false, lastError: reason }).catch(logBackgroundFailure(this.log, 'disabling a gateway account'));
    this.log.warn({ sipUser: account.sipUser, network: adapter.id, account: account.extUser, reason }, 'gateway account refused; disabled');
    const advice: Record<RefusalCause, string> = {
      authentication: `send #link ${adapter.id} ${account.extUser} <password> with the right password, or #online to try again.`,
      tls: '#online tries again once the server offers TLS.',
      account: '#online tries again.',
    };
    this.reply(account.sipUser, `Your ${adapter.id} account ${account.extUser} was refused: ${reason}. It stays offline and will not be retried; ${advice[cause]}`);
  }

  private fromNetwork(live: Live, from: string, im: InstantMessage): void {
    live.lastTraffic = Date.now();
    const address = live.adapter.sipAddressOf(from);
    if (!address) return;
    const to = live.account.sipUser;
    this.intoSip(to, im, async () => {
      // A contact who is a SIP user's linked account writes as that SIP user (purple's mapping).
      const mapped = (await this.deps.accounts.withExtUser(from)).find((a) => networkOf(a.extProt) === live.adapter.id && a.sipUser !== to);
      return { network: 'sip', id: mapped?.sipUser ?? address };
    });
  }

  private fromRoom(live: Live, room: string, nick: string, im: InstantMessage): void {
    live.lastTraffic = Date.now();
    const address = live.adapter.roomAddressOf(room);
    if (!address) return;
    const to = live.account.sipUser;
    // The speaker in the display name, and in the text as chat rooms show it (for clients that hide display names).
    const said = { ...im, body: `<${nick}> ${im.body}` };
    this.intoSip(to, said, () => Promise.resolve({ network: 'sip', id: address, name: nick }));
  }

  /** A network's message into SIP, in order behind the recipient's others; its sender's SIP address is found in its turn. */
  private intoSip(to: string, im: InstantMessage, sender: () => Promise<Address>): void {
    const recipient = { network: 'sip', id: to } as const;
    this.bridge.intoSip(
      { to: recipient, make: async () => ({ kind: 'text', from: await sender(), to: recipient, ...im, contentType: TEXT_PLAIN }) },
      (result) => {
        if (result.status < 300) this.counters.networkToSip++;
        else this.log.info({ to, status: result.status }, 'message from the network not delivered into SIP');
      },
    );
  }

  /** A SIP watcher came or went for a contact's address: the watcher's account on that network watches the contact. */
  private async watch(presentity: string, watcher: string, on: boolean): Promise<void> {
    const target = parseUri(sipUriOfAor(presentity));
    const adapter = this.byAlias.get(target.host);
    const contact = adapter?.contactOf(target);
    if (!adapter || !contact) return;
    const account = (await this.deps.accounts.listFor(sipUriOfAor(watcher))).find((a) => a.enabled && networkOf(a.extProt) === adapter.id);
    if (!account) return;
    if (!on) {
      const live = this.live.get(account.id);
      live?.watched.delete(contact);
      live?.session.unwatch(contact);
      return;
    }
    const live = this.bringOnline(account);
    if (typeof live === 'string') return void this.log.info({ watcher, contact, reason: live }, 'gateway: cannot watch a contact');
    live.watched.add(contact);
    live.session.watch(contact);
  }

  /** Ends the user's sessions (all, or those matching `which`); resolves with the accounts ended. */
  private async takeOffline(sipUser: string, which: ((account: GatewayAccount) => boolean) | undefined, why: string): Promise<GatewayAccount[]> {
    const ended = this.sessionsOf(sipUser).filter((l) => !which || which(l.account));
    await Promise.all(ended.map((live) => this.end(live, why)));
    return ended.map((live) => live.account);
  }

  private async end(live: Live, why: string): Promise<void> {
    if (this.live.get(live.account.id) === live) this.live.delete(live.account.id);
    this.failPending(live, { status: 503, explanation: `the session went offline (${why})` });
    this.log.info({ sipUser: live.account.sipUser, account: live.account.extUser, why }, 'gateway session offline');
    await live.session.stop();
  }

  private async registered(aor: string): Promise<void> {
    const accounts = await this.deps.accounts.listFor(sipUriOfAor(aor));
    for (const account of accounts) {
      if (!account.enabled || this.live.has(account.id) || !this.byNetwork.has(networkOf(account.extProt)!)) continue;
      const live = this.bringOnline(account);
      if (typeof live === 'string') this.log.info({ aor, account: account.extUser, reason: live }, 'gateway session not started');
    }
  }

  private sweep(now: number): void {
    const checkIdle = now - this.lastIdleCheck >= this.options.sleepTimeMs;
    if (checkIdle) this.lastIdleCheck = now;
    for (const live of [...this.live.values()]) {
      this.failPending(live, this.tooLate(live), (pending) => now - pending.since > this.options.delayTimeMs, false);
      if (!checkIdle) continue;
      const idle = now - live.lastTraffic > this.options.cacheTimeMs && this.outbox.backlogOf(String(live.account.id)) === 0;
      if (idle && this.deps.registrar.lookup(aorOfSipUser(live.account.sipUser)).length === 0) void this.end(live, `no traffic for ${this.options.cacheTimeMs / 1000} s`);
    }
  }

  /** Fails back the waiting messages `which` selects; when the session `ends`, those queued behind them fail the same way. */
  private failPending(live: Live, why: Ended, which: (pending: Pending) => boolean = () => true, ends = true): void {
    if (ends) this.ended.set(live.account.id, why);
    const failed = live.pending.filter((waiting) => which(waiting.pending));
    live.pending = live.pending.filter((waiting) => !failed.includes(waiting));
    for (const waiting of failed) waiting.settle(this.undelivered(waiting.pending, why));
  }

  private sessionsOf(sipUser: string): Live[] {
    return [...this.live.values()].filter((live) => live.account.sipUser === sipUser);
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
      // Logged once by the store; the user is told it may work in a moment.
      if (isStoreUnavailable(error)) return this.reply(sipUser, `#${parsed.command.name} failed: temporarily unavailable (the store), try again in ${STORE_RETRY_AFTER_SECONDS} s`);
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
        await this.deps.rooms.removeAll(account.id);
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
      case 'allow':
      case 'deny': {
        const allow = command.name === 'allow';
        const live = this.sessionsOf(sipUser).find((l) => l.requests.has(args[0]!)) ?? this.sessionsOf(sipUser).find((l) => l.session.state === 'online' && l.adapter.normalizeUser(args[0]!) !== undefined);
        if (!live) return `No session of yours is online that ${args[0]} could be answered on; #status lists them.`;
        live.requests.delete(args[0]!);
        live.session.answerSubscription(args[0]!, allow);
        return allow ? `${args[0]} may now see the presence of ${live.account.extUser}.` : `${args[0]} may not see the presence of ${live.account.extUser}.`;
      }
      case 'status': {
        const accounts = await this.deps.accounts.listFor(sipUser);
        const registered = this.deps.registrar.lookup(aor).length > 0;
        const lines = [`You are ${registered ? '' : 'not '}registered; sessions go online when you register, offline when you unregister.`];
        for (const account of accounts) {
          const live = this.live.get(account.id);
          const problem = live?.problem && live.session.state === 'connecting' ? ` (last attempt: ${live.problem})` : '';
          const state = live ? `${live.session.state}${problem}` : account.enabled ? 'offline' : `disabled (${account.lastError ?? 'refused'})`;
          const waiting = this.outbox.backlogOf(String(account.id));
          const queued = live && waiting > 0 ? `, ${waiting} message(s) waiting` : '';
          lines.push(`${account.id}. ${networkName(account)} ${account.extUser}: ${state}${queued}`);
        }
        if (accounts.length === 0) lines.push('No linked accounts.');
        return lines.join('\n');
      }
    }
  }

  private async link(args: string[], sipUser: string, aor: string, syntax: string): Promise<string> {
    const [network, extUser, password, ...rest] = args as [string, string, string, ...string[]];
    const request: AccountRequest = { network, extUser, password };
    for (const option of rest) {
      const tls = /^tls=(.*)$/i.exec(option)?.[1];
      if (tls !== undefined) request.tls = tls;
      else request.server = option;
    }
    if (request.server !== undefined && !this.options.allowUserServers) {
      const where = networkOf(network) === 'xmpp' && this.options.xmpp.host
        ? `${this.options.xmpp.host}${this.options.xmpp.port ? `:${this.options.xmpp.port}` : ''}, the server the operator set`
        : "the server of the account's own domain";
      return `Refused: this gateway does not connect to servers users choose (${request.server.slice(0, 64)}); ` +
        `send the #link again without it, and the account connects to ${where}. Nothing was changed.`;
    }
    let prepared: PreparedAccount;
    try {
      prepared = prepareAccount(sipUser, request, this.byNetwork, this.box);
    } catch (error) {
      if (!(error instanceof AccountError)) throw error;
      const sentence = error.message[0]!.toUpperCase() + error.message.slice(1);
      return error.kind === 'usage' ? `${sentence}; usage: ${syntax}` : `${sentence}.`;
    }
    const unconfigured = this.unconfiguredServer(prepared, request.tls);
    if (unconfigured) return `Refused: ${unconfigured}. Nothing was changed.`;
    const account = await this.deps.accounts.put(prepared.account);
    // New credentials: a session with the old ones ends.
    await this.takeOffline(sipUser, (a) => a.id === account.id, 'account linked again');
    const registered = this.deps.registrar.lookup(aor).length > 0;
    let next = 'It goes online when you register, or now with #online.';
    if (registered) {
      const live = this.bringOnline(account);
      next = typeof live === 'string' ? `It cannot go online now: ${live}.` : 'Connecting now.';
    }
    const { host, port, tls } = prepared.adapter.endpointOf(account);
    return `Linked ${prepared.adapter.id} account ${account.extUser} as number ${account.id} through ${host}:${port} (TLS: ${tls}). ` +
      `Write to its contacts as ${prepared.adapter.addressHint}. ${next}`;
  }

  /**
   * Why #link may not link the account where it would connect, without allow_user_servers: its
   * server (XMPP domain, IRC network) is not configured, or tls= names another mode than the
   * configured one; undefined when it may.
   */
  private unconfiguredServer({ account, adapter }: PreparedAccount, tls: string | undefined): string | undefined {
    if (this.options.allowUserServers) return undefined;
    const name = adapter.serverNameOf(account.extUser);
    const configured = adapter.servers.get(name);
    if (configured) {
      if (tls === undefined || tls.toLowerCase() === configured.tls) return undefined;
      return `${name} is reached with tls=${configured.tls}, as the operator configured it; send the #link again without tls=`;
    }
    if (adapter.servesEveryServer) return undefined;
    const names = [...adapter.servers.keys()];
    const known = names.length > 0 ? `configured: ${names.join(', ')}` : 'none is configured';
    return `this gateway connects ${adapter.id} accounts only to the servers the operator configured, and ${name} is not one (${known})`;
  }

  private describe(account: GatewayAccount): string {
    const adapter = this.byNetwork.get(networkOf(account.extProt)!);
    const endpoint = adapter?.endpointOf(account);
    const via = endpoint ? ` via ${endpoint.host}:${endpoint.port} (TLS ${endpoint.tls})` : ` (TLS ${account.tls})`;
    const state = !account.enabled ? `disabled: ${account.lastError ?? 'refused'}` : this.live.get(account.id)?.session.state ?? 'offline';
    return `${networkName(account)} ${account.extUser}${via}: ${state}`;
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
    this.bridge.notice(this.options.registrarAddress, sipUser, text, (result) => {
      if (result.status >= 300) this.log.info({ sipUser, status: result.status }, 'gateway notice not delivered');
    });
  }

  /** A notice about a group chat, from its address. */
  private notice(live: Live, room: string, text: string): void {
    this.bridge.notice(live.adapter.roomAddressOf(room) ?? this.options.registrarAddress, live.account.sipUser, text);
  }
}

/** What a session sent is known by the account's id with the message's: a network names only what its own session sent. */
function sentKey(live: Live, id: string): string {
  return `${live.account.id}/${id}`;
}

/** A message taken before the bridge named its recipient `recipient` (still in the outbox after an upgrade). */
function upgraded(pending: Pending): Pending {
  const origin = pending.origin as SipOrigin & { contact?: string };
  return origin.contact === undefined ? pending : { ...pending, origin: { sender: origin.sender, target: origin.target, recipient: origin.contact, excerpt: origin.excerpt } };
}

function aorOfSipUser(sipUser: string): string {
  return aorOf(parseUri(sipUser));
}

function networkName(account: GatewayAccount): string {
  return networkOf(account.extProt) ?? account.extProt;
}
