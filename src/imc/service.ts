// The room service: IRC-like rooms over SIP MESSAGE (the imc module's job). Commands change state
// in the store first and in memory second, then confirm; a room message is in the outbox before it is
// confirmed, and fans out through the relay, one ordered queue per member, so offline members get it
// from the offline store and a restart, even after kill -9, still delivers it.
import type { Logger } from 'pino';
import { isStoreUnavailable, type OutboxStore, type RoomHistoryEntry, type RoomStore } from '../store/index.js';
import {
  type DeliveryResult, type LegOutcome, Outbox, OutboxFull, OrderedDeliveries, type Relay, type ResendIdentity, STORE_UNAVAILABLE_REASON, bodyCodec, requestKey,
  resendIdentity,
} from '../relay/index.js';
import type { RequestHandler } from '../server/router.js';
import { type IncomingRequest, type Header, type SipMessage, parseUri, quote, UriError } from '../sip/index.js';
import { type Command, helpText, parseCommand } from './commands.js';
import { type Member, type Room, activeMembers, aorOfMember, displayNick, roomKey, roomUri, toMemberRecord, toRecord } from './rooms.js';

export interface ImcOptions {
  domains: Set<string>;
  manager: string;
  /** Glob of room user parts, e.g. "chat-*". */
  roomPattern: string;
  cmdStartChar: string;
  createOnJoin: boolean;
  checkOnCreate: boolean;
  outboundProxy?: string;
  extraHeaders: Header[];
  history: number;
  cpim: boolean;
  maxMembers: number;
  maxRoomsPerUser: number;
  maxBody: number;
  maxRate: number;
  rateBurst: number;
  /** Whether commands and messages must come from a sender proven by digest authentication. */
  requireIdentity: boolean;
  /** Posts waiting for delivery to one member, and in all, past which new posts get 503. */
  maxBacklog: number;
  maxPending: number;
}

export interface ImcStats {
  messagesIn: number;
  messagesOut: number;
  deliveriesFailed: number;
  commands: number;
}

/** A refusal the sender is told about; nothing was changed. */
class Refusal extends Error {}

const MAX_NAME = 64;
/** A post as the outbox keeps it: with what names the request it came in, so a copy sent again is recognisable. */
type RoomPost = RoomHistoryEntry & { origin?: string };

/** Retry-After of a post refused because deliveries are behind. */
const BACKLOG_RETRY_AFTER_SECONDS = 5;
/** History entries kept in memory while the store is unavailable; beyond, the oldest are dropped (joiners see the last few per room only). */
const MAX_UNSAVED_HISTORY = 2000;
const USER_PART = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$/;

export class RoomService {
  readonly rooms = new Map<string, Room>();
  readonly stats: ImcStats = { messagesIn: 0, messagesOut: 0, deliveriesFailed: 0, commands: 0 };
  private readonly roomPattern: RegExp;
  private readonly memberQueues = new OrderedDeliveries((error) => this.log.error({ err: error }, 'room delivery error'));
  /** Posts confirmed and not yet delivered to every member. */
  private readonly posts: Outbox<RoomPost>;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private pendingHistory: RoomHistoryEntry[] = [];
  private historyFlush: Promise<void> | undefined;
  private historyTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: RoomStore,
    outbox: OutboxStore,
    private readonly relay: Relay,
    private readonly isKnownUser: (aor: string) => Promise<boolean>,
    private readonly options: ImcOptions,
    private readonly log: Logger,
  ) {
    this.roomPattern = new RegExp(`^${globSource(options.roomPattern)}$`);
    const limits = { maxMessages: options.maxPending, maxPerRecipient: options.maxBacklog };
    this.posts = new Outbox(outbox, 'room', bodyCodec<RoomPost>(), { deliver: (post, recipient, _, legKey) => this.deliverPost(post, recipient, legKey) }, this.memberQueues, limits, log);
  }

  async start(): Promise<void> {
    const { rooms, members } = await this.store.loadAll();
    for (const r of rooms) this.rooms.set(roomKey(r.name, r.domain), { ...r, members: new Map() });
    for (const m of members) {
      const room = this.rooms.get(roomKey(m.roomName, m.roomDomain));
      if (!room) continue;
      room.members.set(aorOfMember(m), { username: m.username, domain: m.domain, role: m.role, invited: m.invited, nick: m.nick });
    }
    this.historyTimer = setInterval(() => void this.flushHistory(), 200).unref();
    this.log.info({ rooms: this.rooms.size }, 'rooms loaded');
  }

  /** Delivers the posts confirmed before the last stop (or kill) and not delivered then; once SIP is up. */
  async deliverPending(): Promise<void> {
    await this.posts.start();
  }

  async stop(): Promise<void> {
    clearInterval(this.historyTimer);
    await this.posts.stop();
    await this.flushHistory();
  }

  handler(): RequestHandler {
    return { name: 'imc', methods: ['MESSAGE'], handle: (request) => this.handle(request) };
  }

  async handle(request: IncomingRequest): Promise<void> {
    const message = request.message;
    const target = message.requestUri;
    let sender: string;
    try {
      const from = parseUri(message.from.uri);
      sender = `${from.user}@${from.host}`;
      if (!from.user) throw new UriError('no user');
    } catch {
      return request.reply(400, 'Bad From URI');
    }
    if (this.options.requireIdentity && request.identity !== sender) {
      return request.reply(403, 'Forbidden (rooms take authenticated senders only)');
    }
    if (!this.options.domains.has(target.host)) return request.reply(404, 'Not Found (rooms live in local domains only)');
    const isManager = target.user === this.options.manager;
    const here = isManager ? undefined : this.rooms.get(roomKey(target.user, target.host));
    const contentType = (message.get('content-type') ?? 'text/plain').toLowerCase();
    const isText = contentType.startsWith('text/plain');
    const answerable = this.answerable(sender);
    const replyTo = (text: string) => {
      if (answerable) this.notify(target.user, target.host, sender, text);
      else this.log.debug({ sender }, 'no reply: the sender is neither authenticated nor a registered local user');
    };

    if (message.body.length > this.options.maxBody) {
      request.reply(413, 'Request Entity Too Large');
      return replyTo(`refused: message larger than ${this.options.maxBody} bytes`);
    }
    const text = isText ? decodeUtf8(message.body) : undefined;
    if (isText && text === undefined) {
      request.reply(415, 'Unsupported Media Type (body is not UTF-8)');
      return replyTo('refused: the message is not valid UTF-8 text');
    }
    if (text !== undefined && text.trimStart().startsWith(this.options.cmdStartChar)) {
      request.reply(200, 'OK');
      this.stats.commands++;
      let answer: string;
      try {
        answer = await this.runCommand(text.trim(), sender, target.user, target.host);
      } catch (error) {
        // A command's effect is committed before anything else changes: failing there, it did nothing.
        if (isStoreUnavailable(error)) answer = 'not done: the store is unavailable; try again in a moment';
        else if (error instanceof Refusal) answer = `refused: ${error.message}`;
        else throw error;
      }
      return replyTo(answer);
    }
    if (isManager) {
      request.reply(200, 'OK');
      return replyTo(`the manager takes commands only; send ${this.options.cmdStartChar}help`);
    }
    if (!here) return request.reply(404, 'Not Found (no such room)');
    const member = here.members.get(sender);
    if (!member || member.invited) return request.reply(403, 'Forbidden (not a member of this room)');
    if (!this.takeToken(sender)) return request.reply(503, 'Service Unavailable (sending too fast)', { headers: [{ name: 'retry-after', value: '1' }] });
    if (text !== undefined && text.includes('\0')) return request.reply(400, 'Bad Request (NUL in text)');
    const postType = contentType === 'text/plain' || !message.get('content-type') ? 'text/plain;charset=utf-8' : message.get('content-type')!;
    try {
      await this.post(here, member, sender, postType, message);
    } catch (error) {
      // A store unavailable is answered 503 with Retry-After by the server's dispatch.
      if (!(error instanceof OutboxFull)) throw error;
      this.log.info({ room: roomUri(here), reason: error.message }, 'room post refused: deliveries are behind');
      return request.reply(503, 'Service Unavailable (room deliveries are behind)', { headers: [{ name: 'retry-after', value: String(BACKLOG_RETRY_AFTER_SECONDS) }] });
    }
    request.reply(200, 'OK');
    this.stats.messagesIn++;
  }

  /** Posts acknowledged to their sender and not yet delivered to every member (kept in the outbox). */
  get pendingPosts(): number {
    return this.posts.size;
  }

  /** Puts a message in the outbox for every active member but the sender (resolving once it is durable), and records it in the history. */
  private async post(room: Room, member: Member, sender: string, contentType: string, message: SipMessage): Promise<void> {
    const at = Date.now();
    const entry: RoomHistoryEntry = { roomName: room.name, roomDomain: room.domain, sender, nick: displayNick(member), contentType, body: message.body, at };
    const recipients = activeMembers(room).map(aorOfMember).filter((aor) => aor !== sender);
    await this.posts.submit({ ...entry, origin: requestKey(message) }, recipients, at);
    if (this.options.history > 0 && contentType.startsWith('text/plain')) {
      this.pendingHistory.push(entry);
      if (room.history) {
        room.history.push(entry);
        if (room.history.length > this.options.history) room.history.shift();
      }
      if (this.pendingHistory.length >= 200) void this.flushHistory();
    }
  }

  private flushHistory(): Promise<void> {
    if (this.historyFlush) return this.historyFlush.then(() => this.flushHistory());
    if (this.pendingHistory.length === 0) return Promise.resolve();
    const batch = this.pendingHistory;
    this.pendingHistory = [];
    this.historyFlush = this.store
      .appendHistory(batch)
      .catch((error: unknown) => {
        if (!isStoreUnavailable(error)) return this.log.error({ err: error }, 'room history not saved');
        // The store logs the outage; the batch waits for the next tick.
        this.pendingHistory = [...batch, ...this.pendingHistory].slice(-MAX_UNSAVED_HISTORY);
      })
      .finally(() => (this.historyFlush = undefined));
    return this.historyFlush;
  }

  /** One leg of a post: done once delivered, stored offline or refused for good; tried again while the offline store is unavailable. */
  private async deliverPost(post: RoomPost, recipient: string, legKey: string): Promise<LegOutcome> {
    // Posts kept by an earlier version have no origin: their leg in the outbox names them.
    const result = await this.send(post, recipient, undefined, resendIdentity(post.origin ? `room.${post.origin}.${recipient}` : legKey));
    return result.status === 503 && result.reason === STORE_UNAVAILABLE_REASON ? 'retry' : 'done';
  }

  /** A history entry to a member who joined, in the member's queue after what it was sent before. */
  private replay(entry: RoomHistoryEntry, recipient: string): void {
    this.memberQueues.add(recipient, () => this.send(entry, recipient, new Date(entry.at)).then(() => undefined));
  }

  private async send(entry: RoomHistoryEntry, recipient: string, date?: Date, identity?: ResendIdentity): Promise<DeliveryResult> {
    const room = roomUri({ name: entry.roomName, domain: entry.roomDomain });
    const { contentType, body } = this.render(room, entry);
    const result = await this.relay.send({
      from: `${quote(entry.nick)} <${room}>${identity ? `;tag=${identity.fromTag}` : ''}`,
      callId: identity?.callId,
      to: `sip:${recipient}`,
      body,
      contentType,
      headers: this.options.extraHeaders,
      date,
      outboundProxy: this.options.outboundProxy,
    });
    if (result.status < 300) this.stats.messagesOut++;
    else {
      this.stats.deliveriesFailed++;
      this.log.info({ room, recipient, status: result.status }, 'room delivery failed');
    }
    return result;
  }

  private render(room: string, entry: RoomHistoryEntry): { contentType: string; body: Buffer } {
    if (this.options.cpim) {
      const head =
        `From: ${quote(entry.nick)} <sip:${entry.sender}>\r\nTo: <${room}>\r\nDateTime: ${new Date(entry.at).toISOString()}\r\n\r\n` +
        `Content-Type: ${entry.contentType}\r\n\r\n`;
      return { contentType: 'message/cpim', body: Buffer.concat([Buffer.from(head), entry.body]) };
    }
    if (!entry.contentType.startsWith('text/plain')) return { contentType: entry.contentType, body: entry.body };
    return { contentType: 'text/plain;charset=utf-8', body: Buffer.concat([Buffer.from(`<${entry.nick}> `), entry.body]) };
  }

  /**
   * Whether command replies and history may go to a sender: one proven by digest authentication
   * (required for every sender when requireIdentity), or else a local user registered now, who
   * gets them on the contacts it registered. Never to an address only an unauthenticated From names.
   */
  private answerable(sender: string): boolean {
    if (this.options.requireIdentity) return true;
    const [, domain] = splitAor(sender);
    return this.options.domains.has(domain) && this.relay.hasContacts(sender);
  }

  /** A notice from the room (or the manager) to one user. */
  private notify(fromUser: string, domain: string, to: string, text: string): void {
    this.memberQueues.add(to, () =>
      this.relay
        .send({ from: `<sip:${fromUser}@${domain}>`, to: `sip:${to}`, body: text, headers: this.options.extraHeaders, outboundProxy: this.options.outboundProxy })
        .then(() => undefined),
    );
  }

  /** An event line to every active member of a room. */
  private announce(room: Room, text: string, except?: string): void {
    for (const member of activeMembers(room)) {
      const aor = aorOfMember(member);
      if (aor !== except) this.notify(room.name, room.domain, aor, `*** ${text}`);
    }
  }

  private takeToken(sender: string): boolean {
    const now = Date.now();
    if (this.buckets.size > 10_000) this.forgetIdleSenders(now);
    const bucket = this.buckets.get(sender) ?? { tokens: this.options.rateBurst, at: now };
    bucket.tokens = Math.min(this.options.rateBurst, bucket.tokens + ((now - bucket.at) / 1000) * this.options.maxRate);
    bucket.at = now;
    this.buckets.set(sender, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Senders whose allowance has refilled are no different from new ones: their entries can go. */
  private forgetIdleSenders(now: number): void {
    const refill = (this.options.rateBurst / this.options.maxRate) * 1000;
    for (const [sender, bucket] of this.buckets) if (now - bucket.at >= refill) this.buckets.delete(sender);
  }

  private async runCommand(line: string, sender: string, targetUser: string, targetDomain: string): Promise<string> {
    const start = this.options.cmdStartChar;
    if (/[\r\n]/.test(line)) throw new Refusal('a command must be a single line');
    if (line.includes('\0')) throw new Refusal('a command must not contain NUL characters');
    const parsed = parseCommand(line, start);
    if (!parsed.ok) throw new Refusal(parsed.error);
    const command = parsed.command;
    const targetRoom = targetUser === this.options.manager ? undefined : { name: targetUser, domain: targetDomain };
    switch (command.name) {
      case 'help':
        return helpText(start);
      case 'rooms':
        return this.listPublicRooms(targetDomain);
      case 'create':
        return this.create(command, sender, targetDomain);
      case 'join':
        return this.join(this.roomArg(command.args[0], targetRoom, command), sender);
      case 'invite':
      case 'add':
        return this.invite(command, sender, targetRoom);
      case 'accept':
        return this.accept(this.roomArg(command.args[0], targetRoom, command), sender);
      case 'reject':
        return this.reject(this.roomArg(command.args[0], targetRoom, command), sender);
      case 'remove':
        return this.remove(command, sender, targetRoom);
      case 'leave':
        return this.leave(this.roomArg(command.args[0], targetRoom, command), sender);
      case 'destroy':
        return this.destroy(this.roomArg(command.args[0], targetRoom, command), sender);
      case 'members':
        return this.members(this.roomArg(command.args[0], targetRoom, command), sender);
      case 'modify':
        return this.modify(command, sender, targetRoom);
      case 'nick':
        return this.nick(command, sender, targetRoom);
      case 'topic':
        return this.topic(command, sender, targetRoom);
    }
  }

  /** The room a command names, or the one it was sent to. */
  private roomArg(arg: string | undefined, targetRoom: { name: string; domain: string } | undefined, command: Command): { name: string; domain: string } {
    if (arg === undefined) {
      if (!targetRoom) throw new Refusal(`name the room, or send the command to the room; usage: ${command.syntax}`);
      return targetRoom;
    }
    const bare = arg.replace(/^sips?:/i, '');
    const at = bare.lastIndexOf('@');
    const name = at >= 0 ? bare.slice(0, at) : bare;
    const domain = at >= 0 ? bare.slice(at + 1).toLowerCase() : (targetRoom?.domain ?? [...this.options.domains][0]!);
    if (!this.options.domains.has(domain)) throw new Refusal(`rooms live only in ${[...this.options.domains].join(', ')}, not ${domain}`);
    this.checkRoomName(name);
    return { name, domain };
  }

  private checkRoomName(name: string): void {
    if (name.length === 0 || name.length > MAX_NAME) throw new Refusal(`a room name has 1 to ${MAX_NAME} characters`);
    if (!USER_PART.test(name)) throw new Refusal(`"${name}" has characters a SIP user part cannot have`);
    if (name === this.options.manager) throw new Refusal('the manager address is not a room');
    if (!this.roomPattern.test(name)) throw new Refusal(`room names must match ${this.options.roomPattern}`);
  }

  /** A user argument: sip:user@domain, user@domain, or a bare user of the room's domain. */
  private userArg(arg: string, domain: string): { username: string; domain: string } {
    const text = /^sips?:/i.test(arg) ? arg : `sip:${arg.includes('@') ? arg : `${arg}@${domain}`}`;
    try {
      const uri = parseUri(text);
      if (!uri.user) throw new UriError('no user part');
      if (uri.user.length > MAX_NAME || uri.host.length > MAX_NAME) throw new UriError('too long');
      return { username: uri.user, domain: uri.host };
    } catch (error) {
      throw new Refusal(`"${arg.slice(0, 80)}" is not a user address (${(error as Error).message})`);
    }
  }

  private existing(ref: { name: string; domain: string }): Room {
    const room = this.rooms.get(roomKey(ref.name, ref.domain));
    if (!room) throw new Refusal(`no room sip:${ref.name}@${ref.domain}`);
    return room;
  }

  private roleOf(room: Room, sender: string): Member {
    const member = room.members.get(sender);
    if (!member || member.invited) throw new Refusal(`you are not a member of ${roomUri(room)}`);
    return member;
  }

  private async create(command: Command, sender: string, targetDomain: string): Promise<string> {
    const [arg, flag] = command.args as [string, string | undefined];
    if (flag !== undefined && flag.toLowerCase() !== 'private') throw new Refusal(`unknown option "${flag}"; usage: ${command.syntax}`);
    const ref = this.roomArg(arg, { name: '', domain: targetDomain }, command);
    return this.createRoom(ref, sender, flag !== undefined);
  }

  private async createRoom(ref: { name: string; domain: string }, sender: string, isPrivate: boolean): Promise<string> {
    if (this.rooms.has(roomKey(ref.name, ref.domain))) throw new Refusal(`sip:${ref.name}@${ref.domain} exists already`);
    if (this.options.checkOnCreate && (await this.isKnownUser(`${ref.name}@${ref.domain}`))) {
      throw new Refusal(`sip:${ref.name}@${ref.domain} is a user's address`);
    }
    let owned = 0;
    for (const room of this.rooms.values()) if (room.members.get(sender)?.role === 'owner') owned++;
    if (owned >= this.options.maxRoomsPerUser) throw new Refusal(`you own ${owned} rooms, the most allowed`);
    const [username, domain] = splitAor(sender);
    const room: Room = { ...ref, private: isPrivate, createdAt: Date.now(), members: new Map(), history: [] };
    const owner: Member = { username, domain, role: 'owner', invited: false };
    await this.store.createRoom(toRecord(room), toMemberRecord(room, owner));
    room.members.set(sender, owner);
    this.rooms.set(roomKey(room.name, room.domain), room);
    return `created ${isPrivate ? 'private ' : ''}room ${roomUri(room)}; you are its owner`;
  }

  private async join(ref: { name: string; domain: string }, sender: string): Promise<string> {
    const room = this.rooms.get(roomKey(ref.name, ref.domain));
    if (!room) {
      if (!this.options.createOnJoin) throw new Refusal(`no room sip:${ref.name}@${ref.domain}`);
      return this.createRoom(ref, sender, false);
    }
    const member = room.members.get(sender);
    if (member && !member.invited) throw new Refusal(`you are already a member of ${roomUri(room)}`);
    if (room.private && !member) throw new Refusal(`${roomUri(room)} is private: you need an invitation`);
    return this.admit(room, sender, member);
  }

  /**
   * Makes the sender an active member (new, or an accepted invitation), announces it and sends
   * history, to a sender who joined by command only when it is answerable.
   */
  private async admit(room: Room, sender: string, invited: Member | undefined, byOperator = false): Promise<string> {
    if (!invited && room.members.size >= this.options.maxMembers) throw new Refusal(`${roomUri(room)} is full (${this.options.maxMembers} members)`);
    const [username, domain] = splitAor(sender);
    const member: Member = invited ? { ...invited, invited: false } : { username, domain, role: 'member', invited: false };
    await this.store.putMember(toMemberRecord(room, member));
    room.members.set(sender, member);
    this.announce(room, `${displayNick(member)} (sip:${sender}) has joined the room`, sender);
    if (byOperator || this.answerable(sender)) await this.sendHistory(room, sender);
    return `you joined ${roomUri(room)}${room.topic ? `; topic: ${room.topic}` : ''}`;
  }

  private async sendHistory(room: Room, recipient: string): Promise<void> {
    if (this.options.history === 0) return;
    if (!room.history) {
      await this.flushHistory();
      room.history = await this.store.recentHistory(room.name, room.domain, this.options.history);
    }
    for (const entry of room.history) this.replay(entry, recipient);
  }

  private async invite(command: Command, sender: string, targetRoom: { name: string; domain: string } | undefined): Promise<string> {
    const room = this.existing(this.roomArg(command.args[1], targetRoom, command));
    const actor = this.roleOf(room, sender);
    if (actor.role === 'member') throw new Refusal(`only the owner and admins may ${command.name} users`);
    const user = this.userArg(command.args[0]!, room.domain);
    const aor = aorOfMember(user);
    const existing = room.members.get(aor);
    if (existing) throw new Refusal(`sip:${aor} is ${existing.invited ? 'invited' : 'a member'} already`);
    if (room.members.size >= this.options.maxMembers) throw new Refusal(`${roomUri(room)} is full (${this.options.maxMembers} members)`);
    if (command.name === 'add') {
      const member: Member = { ...user, role: 'member', invited: false };
      await this.store.putMember(toMemberRecord(room, member));
      room.members.set(aor, member);
      this.notify(room.name, room.domain, aor, `*** ${displayNick(actor)} added you to ${roomUri(room)}`);
      this.announce(room, `${displayNick(actor)} added sip:${aor}`, aor);
      await this.sendHistory(room, aor);
      return `added sip:${aor} to ${roomUri(room)}`;
    }
    const member: Member = { ...user, role: 'member', invited: true };
    await this.store.putMember(toMemberRecord(room, member));
    room.members.set(aor, member);
    const start = this.options.cmdStartChar;
    this.notify(room.name, room.domain, aor, `*** ${displayNick(actor)} invites you to ${roomUri(room)}; reply ${start}accept or ${start}reject to this address`);
    this.announce(room, `${displayNick(actor)} invited sip:${aor}`);
    return `invited sip:${aor} to ${roomUri(room)}`;
  }

  private async accept(ref: { name: string; domain: string }, sender: string): Promise<string> {
    const room = this.existing(ref);
    const member = room.members.get(sender);
    if (!member?.invited) throw new Refusal(`you have no invitation to ${roomUri(room)}`);
    return this.admit(room, sender, member);
  }

  private async reject(ref: { name: string; domain: string }, sender: string): Promise<string> {
    const room = this.existing(ref);
    const member = room.members.get(sender);
    if (!member?.invited) throw new Refusal(`you have no invitation to ${roomUri(room)}`);
    await this.store.removeMember(room.name, room.domain, member.username, member.domain);
    room.members.delete(sender);
    this.announce(room, `sip:${sender} declined the invitation`);
    return `declined the invitation to ${roomUri(room)}`;
  }

  private async remove(command: Command, sender: string, targetRoom: { name: string; domain: string } | undefined): Promise<string> {
    const room = this.existing(this.roomArg(command.args[1], targetRoom, command));
    const actor = this.roleOf(room, sender);
    if (actor.role === 'member') throw new Refusal('only the owner and admins may remove members');
    const user = this.userArg(command.args[0]!, room.domain);
    const aor = aorOfMember(user);
    const member = room.members.get(aor);
    if (!member) throw new Refusal(`sip:${aor} is not in ${roomUri(room)}`);
    if (member.role === 'owner') throw new Refusal('the owner cannot be removed');
    if (member.role === 'admin' && actor.role !== 'owner') throw new Refusal('only the owner may remove an admin');
    await this.store.removeMember(room.name, room.domain, member.username, member.domain);
    room.members.delete(aor);
    this.notify(room.name, room.domain, aor, `*** you were removed from ${roomUri(room)} by ${displayNick(actor)}`);
    this.announce(room, `${displayNick(member)} was removed by ${displayNick(actor)}`);
    return `removed sip:${aor} from ${roomUri(room)}`;
  }

  private async leave(ref: { name: string; domain: string }, sender: string): Promise<string> {
    const room = this.existing(ref);
    const member = this.roleOf(room, sender);
    if (member.role === 'owner') return this.destroyRoom(room, `${displayNick(member)}, the owner, left: the room is closed`);
    await this.store.removeMember(room.name, room.domain, member.username, member.domain);
    room.members.delete(sender);
    this.announce(room, `${displayNick(member)} has left the room`);
    return `you left ${roomUri(room)}`;
  }

  private async destroy(ref: { name: string; domain: string }, sender: string): Promise<string> {
    const room = this.existing(ref);
    const member = this.roleOf(room, sender);
    if (member.role !== 'owner') throw new Refusal('only the owner may destroy the room');
    return this.destroyRoom(room, `the room was destroyed by ${displayNick(member)}`);
  }

  /** Removes a room; the remaining members are told why. */
  async destroyRoom(room: Room, reason: string): Promise<string> {
    await this.flushHistory();
    await this.store.destroyRoom(room.name, room.domain);
    this.rooms.delete(roomKey(room.name, room.domain));
    this.announce(room, reason);
    return `${roomUri(room)} destroyed`;
  }

  private members(ref: { name: string; domain: string }, sender: string): string {
    const room = this.existing(ref);
    const asker = room.members.get(sender);
    if (room.private && !asker) throw new Refusal(`${roomUri(room)} is private`);
    const lines = [...room.members.entries()].map(
      ([aor, m]) => `${displayNick(m)} <sip:${aor}> ${m.invited ? 'invited' : m.role}`,
    );
    return [`members of ${roomUri(room)} (${lines.length}):`, ...lines].join('\n');
  }

  private listPublicRooms(domain: string): string {
    const rooms = [...this.rooms.values()].filter((r) => r.domain === domain && !r.private);
    if (rooms.length === 0) return `no public rooms in ${domain}`;
    const lines = rooms.map((r) => `${roomUri(r)} ${activeMembers(r).length} members${r.topic ? ` - ${r.topic}` : ''}`);
    return [`public rooms in ${domain} (${rooms.length}):`, ...lines].join('\n');
  }

  private async modify(command: Command, sender: string, targetRoom: { name: string; domain: string } | undefined): Promise<string> {
    const room = this.existing(this.roomArg(command.args[2], targetRoom, command));
    const actor = this.roleOf(room, sender);
    if (actor.role !== 'owner') throw new Refusal('only the owner may change roles');
    const role = command.args[1]!.toLowerCase();
    if (role !== 'admin' && role !== 'member') throw new Refusal(`role must be admin or member; usage: ${command.syntax}`);
    const aor = aorOfMember(this.userArg(command.args[0]!, room.domain));
    const member = room.members.get(aor);
    if (!member || member.invited) throw new Refusal(`sip:${aor} is not a member of ${roomUri(room)}`);
    if (member.role === 'owner') throw new Refusal("the owner's role cannot change");
    const updated: Member = { ...member, role };
    await this.store.putMember(toMemberRecord(room, updated));
    room.members.set(aor, updated);
    this.announce(room, `${displayNick(updated)} is now ${role === 'admin' ? 'an admin' : 'a member'}`);
    return `sip:${aor} is now ${role}`;
  }

  private async nick(command: Command, sender: string, targetRoom: { name: string; domain: string } | undefined): Promise<string> {
    if (!targetRoom) throw new Refusal('send #nick to the room it is for');
    const room = this.existing(targetRoom);
    const member = this.roleOf(room, sender);
    const nick = command.args[0]!;
    if (nick.length > 32 || /[<>"\\\x00-\x1f]/.test(nick)) throw new Refusal('a nick has at most 32 characters and no <, >, " or control characters');
    for (const [aor, other] of room.members) {
      if (aor !== sender && displayNick(other).toLowerCase() === nick.toLowerCase()) throw new Refusal(`"${nick}" is taken in this room`);
    }
    const updated: Member = { ...member, nick };
    await this.store.putMember(toMemberRecord(room, updated));
    room.members.set(sender, updated);
    this.announce(room, `${displayNick(member)} is now known as ${nick}`, sender);
    return `your nick in ${roomUri(room)} is ${nick}`;
  }

  private async topic(command: Command, sender: string, targetRoom: { name: string; domain: string } | undefined): Promise<string> {
    if (!targetRoom) throw new Refusal('send #topic to the room it is for');
    const room = this.existing(targetRoom);
    const member = this.roleOf(room, sender);
    if (command.rest === '') return room.topic ? `topic of ${roomUri(room)}: ${room.topic}` : `${roomUri(room)} has no topic`;
    if (member.role === 'member') throw new Refusal('only the owner and admins may set the topic');
    if (command.rest.length > 256) throw new Refusal('a topic has at most 256 characters');
    await this.store.setTopic(room.name, room.domain, command.rest);
    room.topic = command.rest;
    this.announce(room, `${displayNick(member)} set the topic: ${command.rest}`, sender);
    return `topic set`;
  }

  // --- management (admin RPC) --------------------------------------------------------------

  listRooms(): Array<{ uri: string; private: boolean; members: number; topic?: string }> {
    return [...this.rooms.values()].map((r) => ({ uri: roomUri(r), private: r.private, members: activeMembers(r).length, topic: r.topic }));
  }

  listMembers(roomText: string): Array<{ uri: string; role: string; nick: string }> | undefined {
    const room = this.findRoom(roomText);
    return room && [...room.members.entries()].map(([aor, m]) => ({ uri: `sip:${aor}`, role: m.invited ? 'invited' : m.role, nick: displayNick(m) }));
  }

  findRoom(text: string): Room | undefined {
    const bare = text.replace(/^sips?:/i, '');
    const key = bare.includes('@') ? bare : `${bare}@${[...this.options.domains][0]}`;
    return this.rooms.get(key);
  }

  /** Operator commands: the same rules as users' minus permissions. */
  async adminAddMember(roomText: string, userText: string): Promise<string> {
    const room = this.findRoom(roomText);
    if (!room) throw new Refusal(`no room ${roomText}`);
    const user = this.userArg(userText, room.domain);
    const aor = aorOfMember(user);
    if (room.members.get(aor)?.invited === false) throw new Refusal(`sip:${aor} is a member already`);
    return this.admit(room, aor, room.members.get(aor), true);
  }

  async adminRemoveMember(roomText: string, userText: string): Promise<string> {
    const room = this.findRoom(roomText);
    if (!room) throw new Refusal(`no room ${roomText}`);
    const aor = aorOfMember(this.userArg(userText, room.domain));
    const member = room.members.get(aor);
    if (!member) throw new Refusal(`sip:${aor} is not in ${roomUri(room)}`);
    if (member.role === 'owner') return this.destroyRoom(room, 'the room was closed by the operator');
    await this.store.removeMember(room.name, room.domain, member.username, member.domain);
    room.members.delete(aor);
    this.announce(room, `${displayNick(member)} was removed by the operator`);
    return `removed sip:${aor}`;
  }

  async adminDestroyRoom(roomText: string): Promise<string> {
    const room = this.findRoom(roomText);
    if (!room) throw new Refusal(`no room ${roomText}`);
    return this.destroyRoom(room, 'the room was closed by the operator');
  }
}

export { Refusal as RoomRefusal };

function splitAor(aor: string): [string, string] {
  const at = aor.lastIndexOf('@');
  return [aor.slice(0, at), aor.slice(at + 1)];
}

function decodeUtf8(body: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return undefined;
  }
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The regular expression source of a "chat-*" style pattern. */
export function globSource(glob: string): string {
  return glob.split('*').map(escapeRegExp).join('.*');
}

/** Parses the extra_hdrs option: "Name: value" lines. */
export function parseExtraHeaders(text: string | null): Header[] {
  if (!text) return [];
  return text
    .split(/\r?\n|\\r\\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const colon = line.indexOf(':');
      return { name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() };
    });
}
