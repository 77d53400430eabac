// The XMPP gateway. The `xmpp` routing handler takes SIP MESSAGEs for the gateway domain to XMPP
// users; messages XMPP users send to the gateway's XMPP domain go into SIP through the relay, so
// local users get them on every device or from the offline store. XMPP acknowledges nothing, so a
// MESSAGE the gateway takes is answered 202, once it is in the store's outbox: it goes to the XMPP
// server even after a restart (kill -9 included). A stanza error coming back later, or a message that
// waited for the link longer than delay_time, is told to the SIP sender in a MESSAGE from the address
// it wrote to (RFC 7247 §8).
import type { Logger } from 'pino';
import type xml from '@xmpp/xml';
import { type LegOutcome, Outbox, OutboxFull, OrderedDeliveries, type Relay, jsonCodec, repeatableId, requestKey } from '../relay/index.js';
import type { OutboxStore } from '../store/index.js';
import { type IncomingRequest, type SipMessage, type SipUri, escapeUser, parseUri } from '../sip/index.js';
import { type AddressMapping, type Jid, addressMapping, formatJid, parseJid, unescapeLocal } from './addresses.js';
import { type StanzaError, conditionForStatus, errorReply, readStanzaError, statusForCondition } from './errors.js';
import { type XmppLink, createLink } from './backend.js';
import type { LinkState, PeerStatus } from './link.js';
import { type InstantMessage, type Refusal, TEXT_PLAIN, callIdOfThread, excerptOf, messageStanza, readSipMessage, readStanza, sipHeaders } from './messages.js';
import type { XmppGatewayOptions } from './options.js';
import { OutboundQueue } from './queue.js';
import { PresenceBridge, type PresenceBridgeStats, type PresenceHooks } from './presence.js';

export interface XmppStats {
  state: LinkState;
  stanzasIn: number;
  stanzasOut: number;
  /** Stanzas waiting for the link. */
  queued: number;
  /** Stanzas written that the XMPP server has not confirmed yet (component link; written again after a reconnection). */
  unconfirmed: number;
  /** SIP MESSAGEs taken to XMPP (answered 202). */
  sipToXmpp: number;
  /** XMPP messages the relay delivered or stored. */
  xmppToSip: number;
  /** SIP MESSAGEs refused, and XMPP messages bounced with a stanza error. */
  refused: number;
  /** Stanza errors XMPP returned for messages from SIP. */
  stanzaErrors: number;
  /** Messages from SIP that never reached the XMPP server: waited past delay_time. */
  expired: number;
  /** Stream and connection errors of the link. */
  linkErrors: number;
  reconnects: number;
}

/** Who to tell when a message from SIP fails after its MESSAGE was answered. */
interface SipOrigin {
  /** SIP address of the sender. */
  sender: string;
  /** SIP address the sender wrote to. */
  target: string;
  recipient: Jid;
  excerpt: string;
}

/** A stanza on its way to XMPP; `origin` when it carries a SIP user's message. */
interface Outgoing {
  stanza: xml.Element;
  origin?: SipOrigin;
}

/** A SIP user's message taken for XMPP, as the outbox keeps it. */
interface AcceptedMessage {
  im: InstantMessage;
  attrs: { from: string; to: string; id: string; type: string };
  origin: SipOrigin;
}

/** The outbox key of the messages for XMPP: one queue, in the order they were taken, as the link sends them. */
const TO_XMPP = 'xmpp';

/** How long a sent message is remembered, for a stanza error that may come back for it. */
const SENT_TTL_MS = 10 * 60_000;
const MAX_SENT = 10_000;

export class XmppGateway {
  private readonly link: XmppLink;
  private readonly addresses: AddressMapping;
  /** Stanzas of the gateway's own (presence, error replies) waiting for the link; messages from SIP wait in `accepted`. */
  private readonly queue: OutboundQueue<Outgoing>;
  /** Messages from SIP answered 202 and not yet sent to XMPP. */
  private readonly accepted: Outbox<AcceptedMessage>;
  private readonly toXmpp = new OrderedDeliveries((error) => this.log.error({ err: error }, 'sending to XMPP failed'));
  /** Wakes the message waiting for the link, at stop. */
  private readonly wakeups = new Set<() => void>();
  /** Messages from SIP sent to XMPP, by stanza id, oldest first. */
  private readonly sent = new Map<string, SipOrigin & { at: number }>();
  /** Deliveries into SIP: one chain per SIP recipient, so that each gets its messages in order. */
  private readonly deliveries = new OrderedDeliveries((error, recipient) => this.log.error({ err: error, recipient }, 'delivery into SIP failed'));
  private readonly counters = { stanzasIn: 0, stanzasOut: 0, sipToXmpp: 0, xmppToSip: 0, refused: 0, stanzaErrors: 0, expired: 0 };
  /** How each side writes to the other, told to those who got it wrong. */
  private readonly hints: { sip: string; xmpp: string };
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Presence both ways (RFC 7248), when the server has a presence agent. */
  private readonly presence: PresenceBridge | undefined;

  constructor(
    private readonly options: XmppGatewayOptions,
    private readonly relay: Relay,
    outbox: OutboxStore,
    private readonly log: Logger,
    presence?: PresenceHooks,
  ) {
    this.addresses = addressMapping(options.addresses);
    const { convention, separator, gatewayDomain, xmppDomain } = options.addresses;
    this.hints =
      convention === 'separator'
        ? { sip: `write to XMPP users as user${separator}xmpp.domain@${gatewayDomain}`, xmpp: `write to SIP users as user${separator}sip.domain@${xmppDomain}` }
        : { sip: 'no XMPP address for this user', xmpp: 'no SIP address for this user' };
    this.queue = new OutboundQueue(options.maxQueue, options.delayTimeMs);
    const limits = { maxMessages: options.maxQueue, maxPerRecipient: options.maxQueue };
    this.accepted = new Outbox(outbox, 'xmpp', jsonCodec<AcceptedMessage>(), { deliver: (message, _, at) => this.sendAccepted(message, at) }, this.toXmpp, limits, log);
    this.link = createLink(options, log);
    this.link.on('online', () => this.flush());
    this.link.on('stanza', (stanza) => this.onStanza(stanza));
    if (presence) {
      const bridgeOptions = { addresses: this.addresses, gatewayDomain, xmppDomain, localDomains: options.localDomains };
      this.presence = new PresenceBridge(presence, bridgeOptions, (stanza) => void this.submit({ stanza }), log.child({ part: 'presence' }));
      this.link.on('online', () => this.presence!.online());
    }
  }

  /** Presence subscriptions across the gateway; undefined without a presence agent. */
  get presenceStats(): PresenceBridgeStats | undefined {
    return this.presence?.stats;
  }

  get stats(): XmppStats {
    return {
      ...this.counters,
      state: this.link.state,
      queued: this.queue.size + this.accepted.size,
      unconfirmed: this.link.unconfirmed,
      linkErrors: this.link.errors,
      reconnects: this.link.reconnects,
    };
  }

  /** Streams with XMPP servers: the component's server, or each s2s peer domain and direction. */
  get peers(): PeerStatus[] {
    return this.link.peers();
  }

  /** Starts connecting; messages, those taken before the last stop included, wait (up to delay_time) until the link is up. */
  async start(): Promise<void> {
    this.presence?.start();
    this.link.start();
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(1000, this.options.delayTimeMs)).unref();
    await this.accepted.start();
  }

  /** Messages taken and not yet sent stay in the outbox for the next start. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    const stopped = this.accepted.stop();
    for (const wake of this.wakeups) wake();
    await stopped;
    await this.presence?.stop();
    await this.link.stop();
    this.queue.drain();
    await this.deliveries.drain();
  }

  /** The `xmpp` routing handler: a SIP MESSAGE for the gateway domain; 202 once it is in the outbox. */
  async handle(request: IncomingRequest): Promise<void> {
    let taken = this.take(request.message);
    if (!('status' in taken)) {
      try {
        await this.accepted.submit(taken, [TO_XMPP]);
      } catch (error) {
        // A store unavailable is answered 503 with Retry-After by the server's dispatch.
        if (!(error instanceof OutboxFull)) throw error;
        taken = { status: 503, reason: 'Service Unavailable (XMPP queue full)', headers: this.retryAfter() };
      }
    }
    if ('status' in taken) {
      this.counters.refused++;
      this.log.debug({ status: taken.status, reason: taken.reason, to: request.message.uri }, 'MESSAGE for XMPP refused');
      request.reply(taken.status, taken.reason, { headers: taken.headers });
      return;
    }
    this.counters.sipToXmpp++;
    request.reply(202, 'Accepted');
  }

  private retryAfter(): Array<{ name: string; value: string }> {
    return [{ name: 'retry-after', value: String(Math.ceil(this.options.link.reconnectMaxMs / 1000)) }];
  }

  /** The XMPP form of a SIP MESSAGE, or what to answer instead when the gateway cannot carry it. */
  private take(message: SipMessage): AcceptedMessage | Refusal {
    let sender: SipUri;
    try {
      sender = parseUri(message.from.uri);
    } catch {
      return { status: 400, reason: 'Bad Request (From URI)' };
    }
    if (!this.options.localDomains.has(sender.host)) return { status: 403, reason: 'Forbidden (the XMPP gateway serves local users only)' };
    const from = this.addresses.xmppSender(sender);
    if (!from) return { status: 403, reason: 'Forbidden (this sender has no XMPP address)' };
    const target = message.requestUri;
    const to = this.addresses.xmppRecipient(target);
    if (!to) return { status: 404, reason: `Not Found (${this.hints.sip})` };
    if (to.domain === this.options.addresses.xmppDomain) return { status: 482, reason: 'Loop Detected (that XMPP address leads back to SIP)' };
    const im = readSipMessage(message, this.options.maxBody);
    if ('status' in im) return im;
    if (this.link.downFor(Date.now()) > this.options.delayTimeMs) {
      return { status: 503, reason: 'Service Unavailable (XMPP server unreachable)', headers: this.retryAfter() };
    }
    const attrs = { from: formatJid(from), to: formatJid(to), id: repeatableId(requestKey(message)), type: this.options.messageType };
    return { im, attrs, origin: { sender: sipAddress(sender), target: sipAddress(target), recipient: to, excerpt: excerptOf(im.body) } };
  }

  /** Sends a message taken from SIP once the link is up; fails it back once it waited delay_time since it was taken. */
  private async sendAccepted(message: AcceptedMessage, acceptedAt: number): Promise<LegOutcome> {
    const deadline = acceptedAt + this.options.delayTimeMs;
    if (!this.link.online && Date.now() < deadline) await this.linkOnline(deadline);
    const outgoing = { stanza: messageStanza(message.im, message.attrs), origin: message.origin };
    if (this.link.online) this.transmit(outgoing);
    else if (Date.now() >= deadline) this.failBack(outgoing, 408, `the XMPP server was unreachable for ${this.options.delayTimeMs / 1000} s`);
    // Woken by the stop: it stays in the outbox.
    else return 'retry';
    return 'done';
  }

  /** Resolves when the link is online, at `deadline`, or at stop, whichever comes first. */
  private linkOnline(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.link.off('online', wake);
        this.wakeups.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, deadline - Date.now());
      this.link.on('online', wake);
      this.wakeups.add(wake);
    });
  }

  /** Sends a stanza, or queues it while the link is down; false when the queue is full. */
  private submit(outgoing: Outgoing, now = Date.now()): boolean {
    if (!this.link.online) return this.queue.push(outgoing, now);
    this.transmit(outgoing);
    return true;
  }

  private transmit({ stanza, origin }: Outgoing): void {
    // Recorded first: the link may refuse the stanza at once, with the stanza error a server would send.
    if (origin) {
      this.sent.set(stanza.attrs.id!, { ...origin, at: Date.now() });
      if (this.sent.size > MAX_SENT) this.sent.delete(this.sent.keys().next().value!);
    }
    this.link.send(stanza);
    this.counters.stanzasOut++;
  }

  private flush(): void {
    for (const outgoing of this.queue.drain()) this.transmit(outgoing);
  }

  /** Drops the gateway's own stanzas that waited too long for the link, and forgets sent messages no error came for. */
  private sweep(): void {
    const now = Date.now();
    this.queue.takeExpired(now);
    for (const [id, { at }] of this.sent) {
      if (now - at <= SENT_TTL_MS) break;
      this.sent.delete(id);
    }
  }

  private failBack({ origin }: Outgoing, status: number, explanation: string): void {
    if (!origin) return;
    this.counters.expired++;
    this.notify(origin, status, explanation);
  }

  private onStanza(stanza: xml.Element): void {
    this.counters.stanzasIn++;
    if (stanza.is('presence')) return this.presence?.onPresence(stanza);
    // The library answers iq requests itself.
    if (!stanza.is('message')) return;
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'error') return this.onStanzaError(stanza);
    if (type === 'groupchat') return;
    const im = readStanza(stanza);
    // Chat states, receipts and the like carry no body and have no SIP form.
    if (!im) return;
    const bounce = (error: StanzaError) => {
      this.counters.refused++;
      // RFC 6120 §5.2.2: a headline expects no answer, not even an error.
      if (type !== 'headline') this.submit({ stanza: errorReply(stanza, error) });
    };
    const sender = parseJid(stanza.attrs.from ?? '');
    const recipient = parseJid(stanza.attrs.to ?? '');
    const to = recipient && this.addresses.sipRecipient(recipient);
    if (!to) return bounce({ condition: 'jid-malformed', text: this.hints.xmpp });
    const from = sender && this.addresses.sipSender(sender);
    if (!from) return bounce({ condition: 'jid-malformed', text: 'the sender has no SIP address' });
    const body = Buffer.from(im.body, 'utf8');
    if (body.length > this.options.maxBody) return bounce({ condition: 'policy-violation', text: `messages are limited to ${this.options.maxBody} bytes` });
    this.deliveries.add(to, async () => {
      const result = await this.relay.send({ from: `<${from}>`, to, body, contentType: TEXT_PLAIN, headers: sipHeaders(im), callId: callIdOfThread(im.thread) });
      if (result.status < 300) this.counters.xmppToSip++;
      else bounce({ condition: conditionForStatus(result.status), text: `${result.status} ${result.reason}` });
    });
  }

  private onStanzaError(stanza: xml.Element): void {
    const id = stanza.attrs.id ?? '';
    const origin = this.sent.get(id);
    if (!origin) {
      this.log.debug({ id, from: stanza.attrs.from }, 'stanza error for no message sent from SIP');
      return;
    }
    this.sent.delete(id);
    this.counters.stanzaErrors++;
    const { condition, text } = readStanzaError(stanza);
    this.notify(origin, statusForCondition(condition), `XMPP error ${condition}${text ? ` (${text})` : ''}`);
  }

  /** The error notification for a message from SIP: a MESSAGE to its sender, from the address it wrote to. */
  private notify(origin: SipOrigin, status: number, explanation: string): void {
    const recipient = `${unescapeLocal(origin.recipient.local)}@${origin.recipient.domain}`;
    this.log.info({ sender: origin.sender, recipient, status, explanation }, 'message from SIP not delivered to XMPP');
    const body = `Your message to ${recipient} was not delivered: ${explanation} (${status}).\n> ${origin.excerpt}`;
    this.deliveries.add(origin.sender, async () => {
      const result = await this.relay.send({ from: `<${origin.target}>`, to: origin.sender, body, contentType: TEXT_PLAIN });
      if (result.status >= 300) this.log.info({ sender: origin.sender, status: result.status }, 'error notification not delivered');
    });
  }
}

function sipAddress(uri: SipUri): string {
  return `sip:${escapeUser(uri.user)}@${uri.host}`;
}
