// Fan-out (Kamailio's imc_room_broadcast): what the rooms send. A post is in the outbox before its
// sender is answered, and goes to each member through that member's ordered queue, so offline
// members get it from the offline store and a restart, even after kill -9, still delivers it.
// Notices (command replies, events, invitations) and history go through the same queues, so each
// member sees the room's traffic in the order it happened.
//
// What a post or a notice sends is built once (From, body rendered with the nick or as CPIM,
// headers); each leg only names its recipient, the Request-URI and To of the MESSAGE the relay makes.
import type { Logger } from 'pino';
import type { OutboxStore, RoomHistoryEntry } from '../store/index.js';
import {
  type DeliveryResult, type DeliveryTurn, type LegContext, type LegOutcome, type OutgoingMessage, Outbox, OrderedDeliveries, type Relay, type ResendIdentity,
  STORE_UNAVAILABLE_REASON, bodyCodec, resendIdentity,
} from '../relay/index.js';
import { type Header, quote } from '../sip/index.js';
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

/** A MESSAGE of the rooms but for its recipient. */
type Leg = Omit<OutgoingMessage, 'to'>;

/** A post as the outbox keeps it: with what names the request it came in, so a copy sent again is recognisable. */
type RoomPost = RoomHistoryEntry & { origin?: string };

export class RoomFanOut {
  private readonly queues = new OrderedDeliveries((error) => this.log.error({ err: error }, 'room delivery error'));
  /** Posts confirmed and not yet delivered to every member. */
  private readonly posts: Outbox<RoomPost>;
  /** The MESSAGE of each post (or history entry) being delivered, built by its first leg. */
  private readonly built = new WeakMap<RoomHistoryEntry, Leg>();

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
    this.queues.add(recipient, (turn) => this.sendEntry(entry, recipient, turn, new Date(entry.at)).then(() => undefined));
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

  private notice(from: RoomRef, text: string): Leg {
    return { from: `<${roomUri(from)}>`, body: Buffer.from(text, 'utf8'), headers: this.options.extraHeaders, outboundProxy: this.options.outboundProxy };
  }

  private send(leg: Leg, to: string): void {
    this.queues.add(to, (turn) => this.relay.send({ ...leg, to: `sip:${to}` }, turn).then(() => undefined));
  }

  /** One leg of a post: done once delivered, stored offline or refused for good; tried again while the offline store is unavailable. */
  private async deliverPost(post: RoomPost, recipient: string, leg: LegContext): Promise<LegOutcome> {
    // Posts kept by an earlier version have no origin: their leg in the outbox names them.
    const identity = resendIdentity(post.origin ? `room.${post.origin}.${recipient}` : leg.key);
    const result = await this.sendEntry(post, recipient, leg.turn, undefined, identity);
    return result.status === 503 && result.reason === STORE_UNAVAILABLE_REASON ? 'retry' : 'done';
  }

  private async sendEntry(entry: RoomHistoryEntry, recipient: string, turn: DeliveryTurn, date?: Date, identity?: ResendIdentity): Promise<DeliveryResult> {
    let leg = this.built.get(entry);
    if (!leg) {
      leg = this.render(entry);
      this.built.set(entry, leg);
    }
    // Only a post's leg has an identity, and the outbox keeps the post until the leg is done.
    const copy = identity ? { fromTag: identity.fromTag, callId: identity.callId, keptByOutbox: true } : {};
    const result = await this.relay.send({ ...leg, ...copy, to: `sip:${recipient}`, date }, turn);
    if (result.status < 300) this.stats.messagesOut++;
    else {
      this.stats.deliveriesFailed++;
      this.log.info({ room: roomUri({ name: entry.roomName, domain: entry.roomDomain }), recipient, status: result.status }, 'room delivery failed');
    }
    return result;
  }

  /** The MESSAGE of a post: from the room with the speaker's nick, the text as "<nick> text" or as CPIM naming the real sender. */
  private render(entry: RoomHistoryEntry): Leg {
    const room = roomUri({ name: entry.roomName, domain: entry.roomDomain });
    const leg = { from: `${quote(entry.nick)} <${room}>`, headers: this.options.extraHeaders, outboundProxy: this.options.outboundProxy };
    if (this.options.cpim) {
      const head =
        `From: ${quote(entry.nick)} <sip:${entry.sender}>\r\nTo: <${room}>\r\nDateTime: ${new Date(entry.at).toISOString()}\r\n\r\n` +
        `Content-Type: ${entry.contentType}\r\n\r\n`;
      return { ...leg, contentType: 'message/cpim', body: Buffer.concat([Buffer.from(head), entry.body]) };
    }
    if (!entry.contentType.startsWith('text/plain')) return { ...leg, contentType: entry.contentType, body: entry.body };
    return { ...leg, contentType: 'text/plain;charset=utf-8', body: Buffer.concat([Buffer.from(`<${entry.nick}> `), entry.body]) };
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
