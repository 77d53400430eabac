// One bridge between SIP and another network, shared by the XMPP gateway and the per-user
// gateways. It holds what every gateway does the same way around its own network's edge:
//   - the durable step before the 202: a MESSAGE taken for the network is in the store's outbox
//     before it is answered (relay/outbox.ts), one ordered queue per key towards the network;
//   - delivery tracking: what was sent and not confirmed, by the id it went with, so that an error
//     the network returns later reaches the SIP sender once, in clear words;
//   - ordered delivery into SIP: one queue per SIP recipient, through the relay (every device, or
//     the offline store).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { type DeliveryResult, type LegContext, type LegOutcome, Outbox, OutboxFull, type OutboxLimits, OrderedDeliveries, type Relay, jsonCodec } from '../relay/index.js';
import type { IncomingRequest } from '../sip/index.js';
import type { OutboxStore } from '../store/index.js';
import { type Address, type BridgeMessage, TEXT_PLAIN } from './message.js';
import { sipRequestOf } from './sip.js';
import { Recent } from './tracker.js';

/** Who to tell when a message from SIP fails after its MESSAGE was answered, and in which words. */
export interface SipOrigin {
  /** SIP address of the sender. */
  sender: string;
  /** SIP address the sender wrote to: the failure notice comes from it. */
  target: string;
  /** The recipient as the sender knows it on the other network. */
  recipient: string;
  /** The start of the message, quoted in the notice. */
  excerpt: string;
}

export interface SipBridgeOptions {
  /** The other network as logs name it ("XMPP", "the network"). */
  network: string;
  /** How many messages sent and not confirmed are remembered, for an error that may still come. */
  maxSent: number;
}

/** How long a sent message is remembered, for an error that may come back for it. */
const SENT_TTL_MS = 10 * 60_000;

export class SipBridge {
  /** Deliveries into SIP: one chain per SIP recipient, so that each gets its messages in order. */
  private readonly deliveries: OrderedDeliveries;
  /** Deliveries into SIP not finished yet, by recipient. */
  private readonly waiting = new Map<string, number>();
  /** What was sent to the network and not confirmed, by the id it went with. */
  private readonly sent: Recent<SipOrigin>;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private lastId = 0;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly relay: Relay,
    private readonly options: SipBridgeOptions,
    private readonly log: Logger,
  ) {
    this.deliveries = new OrderedDeliveries((error, recipient) => log.error({ err: error, recipient }, `delivery into SIP from ${options.network} failed`));
    this.sent = new Recent(options.maxSent, SENT_TTL_MS);
  }

  /** A new id for what crosses the bridge; the random prefix keeps an earlier run's ids from being taken for this one's. */
  newId(): string {
    return `${this.idPrefix}-${++this.lastId}`;
  }

  /**
   * The outbox of the messages taken from SIP for the network, each `key` (the link, an account)
   * a queue of its own that `deliver` empties in order, again after a restart (`leg.turn.sent()`
   * lets the next item go while one waits for the network to confirm it). With `whileStoring`, an
   * item goes while it is being written (see OutboxDelivery.whileStoring).
   */
  outbox<Item>(
    store: OutboxStore, kind: string, deliver: (item: Item, acceptedAt: number, leg: LegContext) => LegOutcome | Promise<LegOutcome>, limits: OutboxLimits, whileStoring = false,
  ): Outbox<Item> {
    const toNetwork = new OrderedDeliveries((error, key) => this.log.error({ err: error, key }, `sending to ${this.options.network} failed`));
    const outbox = new Outbox(store, kind, jsonCodec<Item>(), { deliver: (item, _, acceptedAt, leg) => deliver(item, acceptedAt, leg), whileStoring }, toNetwork, limits, this.log);
    this.relay.trackOutbox(outbox);
    return outbox;
  }

  /**
   * The durable step before the 202: `item` is in the outbox for `key` (and `alongside`, another
   * write of the gateway's, done) and the copy for the sender's other devices stored
   * (relay/sync.ts), then the MESSAGE is answered 202. False, with nothing answered, when the
   * outbox is full; a store unavailable throws (the server's dispatch answers 503 with Retry-After).
   */
  async accept<Item>(request: IncomingRequest, outbox: Outbox<Item>, item: Item, key: string, now = Date.now(), alongside?: Promise<void>): Promise<boolean> {
    try {
      const submitted = outbox.submit(item, [key], now);
      await (alongside ? Promise.all([submitted, alongside]) : submitted);
    } catch (error) {
      if (!(error instanceof OutboxFull)) throw error;
      return false;
    }
    // Most senders keep no copies: no turn of promises for nothing.
    const copied = this.relay.sentCopies.copy(request);
    if (copied) await copied;
    request.reply(202, 'Accepted');
    return true;
  }

  /** A message from SIP went to the network with `id`: an error that comes back for it is told to its sender. */
  sentToNetwork(id: string, origin: SipOrigin): void {
    this.sent.remember(id, origin);
  }

  /** The network refused the message sent with `id`: its sender is told, once; false when no such message is remembered. */
  refusedByNetwork(id: string, status: number, explanation: string): boolean {
    const origin = this.sent.get(id);
    if (!origin) return false;
    this.sent.forget(id);
    this.notifyUndelivered(origin, status, explanation);
    return true;
  }

  /**
   * Starts the sweep, every `everyMs`: sent messages no error came for in time are forgotten, and
   * `sweep` expires what the gateway keeps itself (messages waiting too long, idle sessions...).
   */
  start(everyMs: number, sweep: (now: number) => void): void {
    this.sweepTimer = setInterval(() => {
      const now = Date.now();
      this.sent.sweep(now);
      sweep(now);
    }, everyMs).unref();
  }

  /** Stops the sweep; deliveries into SIP under way go on (drain() waits for them). */
  stop(): void {
    clearInterval(this.sweepTimer);
  }

  /**
   * Delivers a message into SIP after those queued before it for the same recipient; `then` sees
   * the relay's answer. A message given as a function is made in its turn (what it needs to know,
   * a sender's SIP address, is looked up in order too).
   */
  intoSip(message: BridgeMessage | { to: Address; make: () => Promise<BridgeMessage> }, then?: (result: DeliveryResult) => void): void {
    const recipient = message.to.id;
    this.waiting.set(recipient, this.waitingFor(recipient) + 1);
    this.deliveries.add(recipient, async (turn) => {
      try {
        const result = await this.relay.send(sipRequestOf('make' in message ? await message.make() : message), turn);
        then?.(result);
      } finally {
        const left = this.waitingFor(recipient) - 1;
        if (left > 0) this.waiting.set(recipient, left);
        else this.waiting.delete(recipient);
      }
    });
  }

  /** Deliveries into SIP queued or under way for one recipient (its SIP address): what a gateway bounds. */
  waitingFor(recipient: string): number {
    return this.waiting.get(recipient) ?? 0;
  }

  /** A text from the gateway into SIP, from `from` (the gateway's address, a room's, a contact's). */
  notice(from: string, to: string, text: string, then?: (result: DeliveryResult) => void): void {
    this.intoSip({ kind: 'text', from: sipAddress(from), to: sipAddress(to), body: text, contentType: TEXT_PLAIN }, then);
  }

  /** Tells the sender of a message from SIP that it was not delivered, and why: a MESSAGE from the address it wrote to (RFC 7247 §8). */
  notifyUndelivered(origin: SipOrigin, status: number, explanation: string): void {
    this.log.info({ sender: origin.sender, recipient: origin.recipient, status, explanation }, `message from SIP not delivered to ${this.options.network}`);
    const body = `Your message to ${origin.recipient} was not delivered: ${explanation} (${status}).\n> ${origin.excerpt}`;
    this.notice(origin.target, origin.sender, body, (result) => {
      if (result.status >= 300) this.log.info({ sender: origin.sender, status: result.status }, 'error notification not delivered');
    });
  }

  /** Resolves once every delivery into SIP queued so far has run. */
  drain(): Promise<void> {
    return this.deliveries.drain();
  }
}

/** A SIP address as the bridge carries it. */
export function sipAddress(id: string): Address {
  return { network: 'sip', id };
}
