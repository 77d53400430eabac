// The XMPP gateway. The `xmpp` routing handler takes SIP MESSAGEs for the gateway domain to XMPP
// users; messages XMPP users send to the gateway's XMPP domain go into SIP through the relay, so
// local users get them on every device or from the offline store. XMPP acknowledges nothing, so a
// MESSAGE the gateway takes is answered 202; a stanza error coming back later, or a message that
// waited for the link longer than delay_time, is told to the SIP sender in a MESSAGE from the address
// it wrote to (RFC 7247 §8).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type xml from '@xmpp/xml';
import { OrderedDeliveries, type Relay } from '../relay/index.js';
import { type IncomingRequest, type SipMessage, type SipUri, escapeUser, parseUri } from '../sip/index.js';
import { type AddressMapping, type Jid, addressMapping, formatJid, parseJid, unescapeLocal } from './addresses.js';
import { type StanzaError, conditionForStatus, errorReply, readStanzaError, statusForCondition } from './errors.js';
import { type XmppLink, createLink } from './backend.js';
import type { LinkState, PeerStatus } from './link.js';
import { type Refusal, TEXT_PLAIN, callIdOfThread, excerptOf, messageStanza, readSipMessage, readStanza, sipHeaders } from './messages.js';
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
  /** Messages from SIP that never reached the XMPP server: waited past delay_time, or left at shutdown. */
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

/** How long a sent message is remembered, for a stanza error that may come back for it. */
const SENT_TTL_MS = 10 * 60_000;
const MAX_SENT = 10_000;

export class XmppGateway {
  private readonly link: XmppLink;
  private readonly addresses: AddressMapping;
  private readonly queue: OutboundQueue<Outgoing>;
  /** Messages from SIP sent to XMPP, by stanza id, oldest first. */
  private readonly sent = new Map<string, SipOrigin & { at: number }>();
  /** Deliveries into SIP: one chain per SIP recipient, so that each gets its messages in order. */
  private readonly deliveries = new OrderedDeliveries((error, recipient) => this.log.error({ err: error, recipient }, 'delivery into SIP failed'));
  private readonly counters = { stanzasIn: 0, stanzasOut: 0, sipToXmpp: 0, xmppToSip: 0, refused: 0, stanzaErrors: 0, expired: 0 };
  /** How each side writes to the other, told to those who got it wrong. */
  private readonly hints: { sip: string; xmpp: string };
  private readonly idPrefix = randomBytes(4).toString('hex');
  private lastId = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Presence both ways (RFC 7248), when the server has a presence agent. */
  private readonly presence: PresenceBridge | undefined;

  constructor(
    private readonly options: XmppGatewayOptions,
    private readonly relay: Relay,
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
      queued: this.queue.size,
      unconfirmed: this.link.unconfirmed,
      linkErrors: this.link.errors,
      reconnects: this.link.reconnects,
    };
  }

  /** Streams with XMPP servers: the component's server, or each s2s peer domain and direction. */
  get peers(): PeerStatus[] {
    return this.link.peers();
  }

  /** Starts connecting; messages wait (up to delay_time) until the link is up. */
  start(): void {
    this.presence?.start();
    this.link.start();
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(1000, this.options.delayTimeMs)).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.presence?.stop();
    await this.link.stop();
    for (const outgoing of this.queue.drain()) this.failBack(outgoing, 503, 'the gateway stopped before the XMPP server could take it');
    await this.deliveries.drain();
  }

  /** The `xmpp` routing handler: a SIP MESSAGE for the gateway domain. */
  handle(request: IncomingRequest): void {
    const refusal = this.forward(request.message);
    if (refusal) {
      this.counters.refused++;
      this.log.debug({ status: refusal.status, reason: refusal.reason, to: request.message.uri }, 'MESSAGE for XMPP refused');
      request.reply(refusal.status, refusal.reason, { headers: refusal.headers });
      return;
    }
    this.counters.sipToXmpp++;
    request.reply(202, 'Accepted');
  }

  /** Sends or queues the XMPP form of a SIP MESSAGE; what to answer instead when it cannot. */
  private forward(message: SipMessage): Refusal | undefined {
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
    const now = Date.now();
    const retryAfter = [{ name: 'retry-after', value: String(Math.ceil(this.options.link.reconnectMaxMs / 1000)) }];
    if (this.link.downFor(now) > this.options.delayTimeMs) {
      return { status: 503, reason: 'Service Unavailable (XMPP server unreachable)', headers: retryAfter };
    }
    const stanza = messageStanza(im, { from: formatJid(from), to: formatJid(to), id: this.newId(), type: this.options.messageType });
    const origin = { sender: sipAddress(sender), target: sipAddress(target), recipient: to, excerpt: excerptOf(im.body) };
    if (!this.submit({ stanza, origin }, now)) return { status: 503, reason: 'Service Unavailable (XMPP queue full)', headers: retryAfter };
    return undefined;
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

  /** Fails back what waited too long for the link, and forgets sent messages no error came for. */
  private sweep(): void {
    const now = Date.now();
    const waited = `the XMPP server was unreachable for ${this.options.delayTimeMs / 1000} s`;
    for (const outgoing of this.queue.takeExpired(now)) this.failBack(outgoing, 408, waited);
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


  private newId(): string {
    return `${this.idPrefix}-${++this.lastId}`;
  }
}

function sipAddress(uri: SipUri): string {
  return `sip:${escapeUser(uri.user)}@${uri.host}`;
}
