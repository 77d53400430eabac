// The room service: IRC-like rooms over SIP MESSAGE (the imc module's job). A MESSAGE to the
// manager or to a room is a #command (commands.ts, on the room model of rooms.ts) or a post to the
// room, which fanout.ts delivers to the members; this file only tells the two apart, checks the
// sender, the body and the rate, and offers the operator's actions to the admin RPC.
import type { Logger } from 'pino';
import { isStoreUnavailable, type OutboxStore, type RoomHistoryEntry, type RoomStore } from '../store/index.js';
import { OutboxFull, type Relay, requestKey } from '../relay/index.js';
import type { RequestHandler } from '../plugin/index.js';
import { type IncomingRequest, type Header, type SipMessage, aorOf, domainOfAor, parseUri, sipUriOfAor, UriError } from '../sip/index.js';
import { AddressRanges, SourceRateLimiter } from '../sip/transport/limits.js';
import { type Answer, RoomActions, runCommand, userArg } from './commands.js';
import { RoomFanOut } from './fanout.js';
import { RoomHistory } from './history.js';
import {
  type Member, type Room, type RoomRef, Refusal, RoomModel, activeMemberAors, activeMembers, aorOfMember, displayNick, roomUri,
} from './rooms.js';

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

/** Retry-After of a post refused because deliveries are behind. */
const BACKLOG_RETRY_AFTER_SECONDS = 5;
/** Senders whose allowance is tracked before those with a full one again are forgotten. */
const MAX_TRACKED_SENDERS = 10_000;

export class RoomService {
  readonly stats: ImcStats = { messagesIn: 0, messagesOut: 0, deliveriesFailed: 0, commands: 0 };
  private readonly model: RoomModel;
  private readonly fanout: RoomFanOut;
  private readonly history: RoomHistory;
  private readonly actions: RoomActions;
  /** Posts per sender: rate_burst at once, refilled at max_rate a second. */
  private readonly rate: SourceRateLimiter;

  constructor(
    store: RoomStore,
    outbox: OutboxStore,
    private readonly relay: Relay,
    isKnownUser: (aor: string) => Promise<boolean>,
    private readonly options: ImcOptions,
    private readonly log: Logger,
  ) {
    this.model = new RoomModel(store, options, isKnownUser);
    this.fanout = new RoomFanOut(outbox, relay, options, this.stats, log);
    this.history = new RoomHistory(store, options.history, log);
    this.actions = new RoomActions(this.model, this.fanout, this.history, options);
    this.rate = new SourceRateLimiter(options.rateBurst, (options.rateBurst / options.maxRate) * 1000, new AddressRanges([]));
  }

  /** The rooms, by "name@domain". */
  get rooms(): Map<string, Room> {
    return this.model.rooms;
  }

  async start(): Promise<void> {
    await this.model.load();
    this.history.start();
    this.log.info({ rooms: this.rooms.size }, 'rooms loaded');
  }

  /** Delivers the posts confirmed before the last stop (or kill) and not delivered then; once SIP is up. */
  async deliverPending(): Promise<void> {
    await this.fanout.start();
  }

  async stop(): Promise<void> {
    await this.fanout.stop();
    await this.history.stop();
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
      if (!from.user) throw new UriError('no user');
      sender = aorOf(from);
    } catch {
      return request.reply(400, 'Bad From URI');
    }
    if (this.options.requireIdentity && request.identity !== sender) {
      return request.reply(403, 'Forbidden (rooms take authenticated senders only)');
    }
    if (!this.options.domains.has(target.host)) return request.reply(404, 'Not Found (rooms live in local domains only)');
    const written: RoomRef = { name: target.user, domain: target.host };
    const isManager = target.user === this.options.manager;
    const contentType = (message.get('content-type') ?? 'text/plain').toLowerCase();
    const isText = contentType.startsWith('text/plain');

    if (message.body.length > this.options.maxBody) {
      request.reply(413, 'Request Entity Too Large');
      return this.replyTo(sender, this.answerable(sender), written, `refused: message larger than ${this.options.maxBody} bytes`);
    }
    const text = isText ? decodeUtf8(message.body) : undefined;
    if (isText && text === undefined) {
      request.reply(415, 'Unsupported Media Type (body is not UTF-8)');
      return this.replyTo(sender, this.answerable(sender), written, 'refused: the message is not valid UTF-8 text');
    }
    // Nothing to run or to show: the sender's client marks the message as failed, and nobody gets a blank line.
    if (message.body.length === 0 || text?.trim() === '') return request.reply(400, 'Bad Request (empty message)');
    if (text !== undefined && text.trimStart().startsWith(this.options.cmdStartChar)) {
      request.reply(200, 'OK');
      this.stats.commands++;
      // Asked here, not for every request: a post never needs it.
      const answerable = this.answerable(sender);
      let answer: Answer;
      try {
        answer = await runCommand(text.trim(), {
          sender, answerable, takeToken: () => this.takeToken(sender), domain: target.host, here: isManager ? undefined : written, actions: this.actions,
        });
      } catch (error) {
        // A command's effect is committed before anything else changes: failing there, it did nothing.
        if (isStoreUnavailable(error)) answer = 'not done: the store is unavailable; try again in a moment';
        else if (error instanceof Refusal) answer = `refused: ${error.message}`;
        else throw error;
      }
      return typeof answer === 'string' ? this.replyTo(sender, answerable, written, answer) : this.replyTo(sender, answerable, answer.from, answer.text);
    }
    if (isManager) {
      request.reply(200, 'OK');
      return this.replyTo(sender, this.answerable(sender), written, `the manager takes commands only; send ${this.options.cmdStartChar}help`);
    }
    const room = this.model.find(written);
    if (!room) return request.reply(404, 'Not Found (no such room)');
    const member = room.members.get(sender);
    if (!member || member.invited) return request.reply(403, 'Forbidden (not a member of this room)');
    if (!this.takeToken(sender)) {
      return request.reply(503, 'Service Unavailable (sending too fast)', { headers: [{ name: 'retry-after', value: String(this.rate.retryAfter(sender)) }] });
    }
    if (text !== undefined && text.includes('\0')) return request.reply(400, 'Bad Request (NUL in text)');
    const postType = contentType === 'text/plain' || !message.get('content-type') ? 'text/plain;charset=utf-8' : message.get('content-type')!;
    try {
      await this.post(room, member, sender, postType, message);
    } catch (error) {
      // A store unavailable is answered 503 with Retry-After by the server's dispatch.
      if (!(error instanceof OutboxFull)) throw error;
      this.log.info({ room: roomUri(room), reason: error.message }, 'room post refused: deliveries are behind');
      return request.reply(503, 'Service Unavailable (room deliveries are behind)', { headers: [{ name: 'retry-after', value: String(BACKLOG_RETRY_AFTER_SECONDS) }] });
    }
    // The room sends a post to every member but its sender: the sender's other devices get their copy
    // (most senders have none to get it: their answer then waits for no turn of the event loop).
    const copied = this.relay.sentCopies.copy(request);
    if (copied) await copied;
    request.reply(200, 'OK');
    this.stats.messagesIn++;
  }

  /** Posts acknowledged to their sender and not yet delivered to every member (kept in the outbox). */
  get pendingPosts(): number {
    return this.fanout.pending;
  }

  /** Puts a message in the outbox for every active member but the sender (resolving once it is durable), and records it in the history. */
  private async post(room: Room, member: Member, sender: string, contentType: string, message: SipMessage): Promise<void> {
    const entry: RoomHistoryEntry = { roomName: room.name, roomDomain: room.domain, sender, nick: displayNick(member), contentType, body: message.body, at: Date.now() };
    await this.fanout.post(entry, activeMemberAors(room, sender), requestKey(message));
    this.history.record(room, entry);
  }

  /**
   * A reply to a sender, from a room or the manager, when the sender can be told (answerable). A
   * method rather than a closure made by every request: tsx names each arrow function it makes.
   */
  private replyTo(sender: string, answerable: boolean, from: RoomRef, text: string): void {
    if (answerable) this.fanout.notify(from, sender, text);
    else this.log.debug({ sender }, 'no reply: the sender is neither authenticated nor a registered local user');
  }

  /**
   * Whether command replies and history may go to a sender: one proven by digest authentication
   * (required for every sender when requireIdentity), or else a local user registered now, who
   * gets them on the contacts it registered. Never to an address only an unauthenticated From names.
   */
  private answerable(sender: string): boolean {
    if (this.options.requireIdentity) return true;
    const domain = domainOfAor(sender);
    return this.options.domains.has(domain) && this.relay.hasContacts(sender);
  }

  private takeToken(sender: string): boolean {
    if (this.rate.tracked > MAX_TRACKED_SENDERS) this.rate.forgetIdle();
    return this.rate.admit(sender);
  }

  // --- management (admin RPC) --------------------------------------------------------------

  listRooms(): Array<{ uri: string; private: boolean; members: number; topic?: string }> {
    return [...this.rooms.values()].map((r) => ({ uri: roomUri(r), private: r.private, members: activeMembers(r).length, topic: r.topic }));
  }

  listMembers(roomText: string): Array<{ uri: string; role: string; nick: string }> | undefined {
    const room = this.findRoom(roomText);
    return room && [...room.members.entries()].map(([aor, m]) => ({ uri: sipUriOfAor(aor), role: m.invited ? 'invited' : m.role, nick: displayNick(m) }));
  }

  /** The room `text` names as a command names it (RoomModel.refOf), a bare name being one of the first domain; undefined when none. */
  findRoom(text: string): Room | undefined {
    let ref: RoomRef;
    try {
      ref = this.model.refOf(text, [...this.options.domains][0]!);
    } catch (error) {
      if (error instanceof Refusal) return undefined;
      throw error;
    }
    return this.model.find(ref);
  }

  /** Operator commands: the same rules as users' minus permissions. */
  async adminAddMember(roomText: string, userText: string): Promise<string> {
    const room = this.adminRoom(roomText);
    const aor = aorOfMember(userArg(userText, room.domain));
    const existing = room.members.get(aor);
    if (existing?.invited === false) throw new Refusal(`${sipUriOfAor(aor)} is a member already`);
    await this.actions.admit(room, aor, existing, true);
    return `you joined ${roomUri(room)}${room.topic ? `; topic: ${room.topic}` : ''}`;
  }

  async adminRemoveMember(roomText: string, userText: string): Promise<string> {
    const room = this.adminRoom(roomText);
    const aor = aorOfMember(userArg(userText, room.domain));
    const member = room.members.get(aor);
    if (!member) throw new Refusal(`${sipUriOfAor(aor)} is not in ${roomUri(room)}`);
    if (member.role === 'owner') return this.actions.close(room, 'the room was closed by the operator');
    await this.model.remove(room, member);
    this.fanout.announce(room, `${displayNick(member)} was removed by the operator`);
    return `removed ${sipUriOfAor(aor)}`;
  }

  async adminDestroyRoom(roomText: string): Promise<string> {
    return this.actions.close(this.adminRoom(roomText), 'the room was closed by the operator');
  }

  private adminRoom(roomText: string): Room {
    const room = this.findRoom(roomText);
    if (!room) throw new Refusal(`no room ${roomText}`);
    return room;
  }
}

export { Refusal as RoomRefusal };

/** One for every post: a fatal decoder keeps no state between calls that are not streamed. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(body: Buffer): string | undefined {
  try {
    return strictUtf8.decode(body);
  } catch {
    return undefined;
  }
}
