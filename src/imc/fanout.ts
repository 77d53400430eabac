// Fan-out (Kamailio's imc_room_broadcast): what the rooms send. A post is in the outbox before its
// sender is answered, and goes to each member through that member's ordered queue, so offline
// members get it from the offline store and a restart, even after kill -9, still delivers it.
// Notices (command replies, events, invitations) and history go through the same queues, so each
// member sees the room's traffic in the order it happened.
//
// What a post or a notice sends is built once (From, body rendered with the nick or as CPIM,
// headers, their wire form: Relay.prepare), and a post's identity digested once; each leg only
// names its recipient, the Request-URI, To and Call-ID of the MESSAGE the relay sends.
import type { Logger } from 'pino';
import type { OutboxStore, RoomHistoryEntry } from '../store/index.js';
import {
  type DeliveryResult, type LegContext, type LegOutcome, type MessageContent, Outbox, OrderedDeliveries, type PreparedMessage, type Relay,
  type ResendIdentity, STORE_UNAVAILABLE_REASON, bodyCodec, recipientIdentities, resendIdentity,
} from '../relay/index.js';
import { type Header, quote, sipUriOfAor } from '../sip/index.js';
import { type Room, type RoomRef, activeMembers, aorOfMember, roomUri } from './rooms.js';

export interface FanOutOptions {
  outboundProxy?: string;
  extraHeaders: Header[];
  /** Room messages as message/cpim naming the real sender, instead of "<nick> text". */
  cpim: boolean;
  /** Posts waiting for delivery to one member, and in all, past which new posts are refused (OutboxFull). */
  maxBacklog: number;
  maxPending: number;
}

export interface DeliveryStats {
  messagesOut: number;
  deliveriesFailed: number;
}

/** A post as the outbox keeps it: with what names the request it came in, so a copy sent again is recognisable. */
type RoomPost = RoomHistoryEntry & { origin?: string };

export class RoomFanOut {
  private readonly queues = new OrderedDeliveries((error) => this.log.error({ err: error }, 'room delivery error'));
  /** Posts confirmed and not yet delivered to every member. */
  private readonly posts: Outbox<RoomPost>;
  /** The MESSAGE of each post being delivered, and its legs' identities, made by its first leg. */
  private readonly built = new WeakMap<RoomPost, { message: PreparedMessage; identities?: (recipient: string) => ResendIdentity }>();
  /** The MESSAGE of each history entry sent to a member who joined, by entry. */
  private readonly replayed = new WeakMap<RoomHistoryEntry, PreparedMessage>();

  constructor(
    outbox: OutboxStore,
    private readonly relay: Relay,
    private readonly options: FanOutOptions,
    private readonly stats: DeliveryStats,
    private readonly log: Logger,
  ) {
    const limits = { maxMessages: options.maxPending, maxPerRecipient: options.maxBacklog };
    this.posts = new Outbox(outbox, 'room', bodyCodec<RoomPost>(), { deliver: (post, recipient, _, leg) => this.deliverPost(post, recipient, leg) }, this.queues, limits, log);
    relay.trackOutbox(this.posts);
  }

  /** Delivers the posts confirmed before the last stop (or kill) and not delivered then. */
  async start(): Promise<void> {
    await this.posts.start();
  }

  async stop(): Promise<void> {
    await this.posts.stop();
  }

  /** Posts acknowledged to their sender and not yet delivered to every recipient. */
  get pending(): number {
    return this.posts.size;
  }

  /** Puts a post in the outbox for its recipients; resolves once it is durable (rejects with OutboxFull past a bound). */
  post(entry: RoomHistoryEntry, recipients: string[], origin: string): Promise<void> {
    return this.posts.submit({ ...entry, origin }, recipients, entry.at);
  }

  /** A history entry to a member who joined, in the member's queue after what it was sent before, with its original Date. */
  replay(entry: RoomHistoryEntry, recipient: string): void {
    const message = this.historyMessage(entry);
    this.queues.add(recipient, async (turn) => this.count(entry, recipient, await this.relay.sendPrepared(message, { to: sipUriOfAor(recipient) }, turn)));
  }

  /** The MESSAGE of a history entry: the room keeps its entries, so each is made once for every member who joins. */
  private historyMessage(entry: RoomHistoryEntry): PreparedMessage {
    let message = this.replayed.get(entry);
    if (!message) {
      message = this.render(entry, new Date(entry.at));
      this.replayed.set(entry, message);
    }
    return message;
  }

  /** A text from a room's (or the manager's) address to one user. */
  notify(from: RoomRef, to: string, text: string): void {
    this.send(this.notice(from, text), to);
  }

  /** An event line to every active member of a room but `except`. */
  announce(room: Room, text: string, except?: string): void {
    this.announceTo(room, activeMembers(room), text, except);
  }

  /** An event line from the room to some of its members. */
  announceTo(room: Room, members: Array<{ username: string; domain: string }>, text: string, except?: string): void {
    const notice = this.notice(room, `*** ${text}`);
    for (const member of members) {
      const aor = aorOfMember(member);
      if (aor !== except) this.send(notice, aor);
    }
  }

  private notice(from: RoomRef, text: string): PreparedMessage {
    return this.relay.prepare({ from: `<${roomUri(from)}>`, body: Buffer.from(text, 'utf8'), headers: this.options.extraHeaders, outboundProxy: this.options.outboundProxy });
  }

  private send(message: PreparedMessage, to: string): void {
    this.queues.add(to, (turn) => this.relay.sendPrepared(message, { to: sipUriOfAor(to) }, turn).then(() => undefined));
  }

  /** One leg of a post: done once delivered, stored offline or refused for good; tried again while the offline store is unavailable. */
  private deliverPost(post: RoomPost, recipient: string, leg: LegContext): Promise<LegOutcome> {
    let built = this.built.get(post);
    if (!built) {
      built = { message: this.render(post), identities: post.origin ? recipientIdentities(`room.${post.origin}`) : undefined };
      this.built.set(post, built);
    }
    // Posts kept by an earlier version have no origin: their leg in the outbox names them.
    const { callId, fromTag } = built.identities ? built.identities(recipient) : resendIdentity(leg.key);
    // The outbox keeps the post until the leg is done.
    return this.relay.sendPrepared(built.message, { to: sipUriOfAor(recipient), fromTag, callId, keptByOutbox: true }, leg.turn).then((result) => {
      this.count(post, recipient, result);
      return result.status === 503 && result.reason === STORE_UNAVAILABLE_REASON ? 'retry' : 'done';
    });
  }

  /** Counts a leg of a post or history entry in the room statistics; one that failed is logged. */
  private count(entry: RoomHistoryEntry, recipient: string, result: DeliveryResult): void {
    if (result.status < 300) this.stats.messagesOut++;
    else {
      this.stats.deliveriesFailed++;
      this.log.info({ room: roomUri({ name: entry.roomName, domain: entry.roomDomain }), recipient, status: result.status }, 'room delivery failed');
    }
  }

  /** The MESSAGE of a post (a history entry with its original `date`): from the room with the speaker's nick, the text as "<nick> text" or as CPIM naming the real sender. */
  private render(entry: RoomHistoryEntry, date?: Date): PreparedMessage {
    return this.relay.prepare({ ...this.content(entry), headers: this.options.extraHeaders, outboundProxy: this.options.outboundProxy, date });
  }

  private content(entry: RoomHistoryEntry): Pick<MessageContent, 'from' | 'contentType' | 'body'> {
    const room = roomUri({ name: entry.roomName, domain: entry.roomDomain });
    const from = `${quote(entry.nick)} <${room}>`;
    if (this.options.cpim) {
      const head =
        `From: ${quote(entry.nick)} <${sipUriOfAor(entry.sender)}>\r\nTo: <${room}>\r\nDateTime: ${new Date(entry.at).toISOString()}\r\n\r\n` +
        `Content-Type: ${entry.contentType}\r\n\r\n`;
      return { from, contentType: 'message/cpim', body: Buffer.concat([Buffer.from(head), entry.body]) };
    }
    if (!entry.contentType.startsWith('text/plain')) return { from, contentType: entry.contentType, body: entry.body };
    return { from, contentType: 'text/plain;charset=utf-8', body: Buffer.concat([Buffer.from(`<${entry.nick}> `), entry.body]) };
  }
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
