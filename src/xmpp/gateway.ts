// The XMPP gateway. The `xmpp` routing handler takes SIP MESSAGEs for the gateway domain to XMPP
// users; messages XMPP users send to the gateway's XMPP domain go into SIP through the relay, so
// local users get them on every device or from the offline store. XMPP acknowledges nothing, so a
// MESSAGE the gateway takes is answered 202, once it is in the store's outbox: it goes to the XMPP
// server even after a restart (kill -9 included). A stanza error coming back later, or a message that
// waited for the link longer than delay_time, is told to the SIP sender in a MESSAGE from the address
// it wrote to (RFC 7247 §8). What every gateway does the same way (the outbox step, what was sent,
// failure notices, ordered delivery into SIP) is the bridge's (src/bridge); this file is the XMPP edge.
import type { Logger } from 'pino';
import type xml from '@xmpp/xml';
import {
  type InstantMessage, type Notification, type Refusal, SipBridge, type SipOrigin, TEXT_PLAIN, type Wanted, excerptOf, readSipPayload, senderOf, sipAddress,
  plainSipAddress,
} from '../bridge/index.js';
import { type LegContext, type LegOutcome, type Outbox, type Relay, repeatableId, requestKey } from '../relay/index.js';
import { type OutboxStore, type ReceiptIdStore, logBackgroundFailure } from '../store/index.js';
import type { IncomingRequest, SipMessage } from '../sip/index.js';
import { type AddressMapping, type Jid, addressMapping, formatJid, parseJid, unescapeLocal } from './addresses.js';
import { type StanzaError, conditionForStatus, errorReply, readStanzaError, statusForCondition } from './errors.js';
import type { LinkState, OutboundStanza, PeerStatus, XmppLink } from './backend.js';
import { createLink } from './create-link.js';
import { chatStateOf, chatStateOfComposing, chatStateStanza, composingOfChatState } from './chatstates.js';
import { callIdOfThread, readStanza, writtenMessage } from './messages.js';
import { Correlations, receiptStanza, receiptsOf } from './receipts.js';
import type { XmppGatewayOptions } from './options.js';
import { PendingSubscriptions } from './pending.js';
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

/** A stanza on its way to XMPP; `origin` when it carries a SIP user's message. */
interface Outgoing {
  stanza: OutboundStanza;
  origin?: SipOrigin;
}

/** A SIP user's message taken for XMPP, as the outbox keeps it. */
interface AcceptedMessage {
  im: InstantMessage;
  attrs: { from: string; to: string; id: string; type: string };
  origin: SipOrigin;
  /** The IMDN Message-ID the sender gave it and the notifications it asked for (RFC 5438). */
  imdn?: { messageId: string; wanted: Wanted };
}

/**
 * A chat state or a receipt from SIP: sent at once, never kept in the outbox. A chat state is
 * `transient`: stale once late, it is dropped while the link is down.
 */
interface Signal {
  stanza: xml.Element;
  transient: boolean;
}

/** An IMDN from a SIP user (`sender`), about a message from XMPP: its receipt or marker is a Signal. */
interface ImdnFromSip {
  notification: Notification;
  sender: string;
  attrs: { from: string; to: string; id: string };
}

/** A message from SIP that asked for IMDNs, by the stanza id it went to XMPP with. */
interface AwaitedFromXmpp {
  origin: SipOrigin;
  /** The XMPP recipient (bare JID), the only one whose receipt counts. */
  recipient: string;
  messageId: string;
  wanted: Wanted;
}

/** A message from XMPP that asked for receipts or markers, by the IMDN Message-ID it went to SIP with. */
interface AwaitedFromSip {
  /** The XMPP sender (full JID: receipts go to the resource that asked) and its stanza id. */
  sender: string;
  stanzaId: string;
  /** The SIP recipient, the only one whose IMDN counts. */
  recipient: string;
  wanted: Wanted;
}

/** The outbox key of the messages for XMPP: one queue, in the order they were taken, as the link sends them. */
const TO_XMPP = 'xmpp';

/** How many sent messages are remembered, for a stanza error that may come back for one. */
const MAX_SENT = 10_000;
/**
 * How many messages awaiting receipts are remembered in memory, each way, how many per SIP user in
 * the store, and for how long (a message may be read days later).
 */
const MAX_AWAITED = 10_000;
const MAX_AWAITED_PER_USER = 1000;
const AWAITED_TTL_MS = 7 * 24 * 3600_000;
/** Subscription requests to SIP users who do not exist yet: how many wait, per user and in all, and for how long. */
const PENDING_SUBSCRIPTIONS = { maxPerUser: 100, maxTotal: 10_000, ttlMs: 30 * 24 * 3600_000 };

export class XmppGateway {
  private readonly link: XmppLink;
  private readonly addresses: AddressMapping;
  /** Stanzas of the gateway's own (presence, error replies) waiting for the link; messages from SIP wait in `accepted`. */
  private readonly queue: OutboundQueue<Outgoing>;
  /** Messages from SIP answered 202 and not yet sent to XMPP. */
  private readonly accepted: Outbox<AcceptedMessage>;
  /** The outbox step, what was sent, failure notices and deliveries into SIP. */
  private readonly bridge: SipBridge;
  /** Wakes the message waiting for the link, at stop. */
  private readonly wakeups = new Set<() => void>();
  private readonly counters = { stanzasIn: 0, stanzasOut: 0, sipToXmpp: 0, xmppToSip: 0, refused: 0, stanzaErrors: 0, expired: 0 };
  /** How each side writes to the other, told to those who got it wrong. */
  private readonly hints: { sip: string; xmpp: string };
  /** Presence both ways (RFC 7248), when the server has a presence agent. */
  private readonly presence: PresenceBridge | undefined;
  /** Receipts still to come, each way, kept in the store across restarts. */
  private readonly awaitedFromXmpp: Correlations<AwaitedFromXmpp>;
  private readonly awaitedFromSip: Correlations<AwaitedFromSip>;

  constructor(
    private readonly options: XmppGatewayOptions,
    relay: Relay,
    outbox: OutboxStore,
    receiptIds: ReceiptIdStore,
    private readonly log: Logger,
    presence?: PresenceHooks,
  ) {
    const durable = { store: receiptIds, maxPerOwner: MAX_AWAITED_PER_USER, log };
    this.awaitedFromXmpp = new Correlations(MAX_AWAITED, AWAITED_TTL_MS, { ...durable, direction: 'xmpp-stanza', ownerOf: (entry) => entry.origin.sender });
    this.awaitedFromSip = new Correlations(MAX_AWAITED, AWAITED_TTL_MS, { ...durable, direction: 'xmpp-imdn', ownerOf: (entry) => entry.recipient });
    this.addresses = addressMapping(options.addresses);
    const { convention, separator, gatewayDomain, xmppDomain } = options.addresses;
    this.hints =
      convention === 'separator'
        ? { sip: `write to XMPP users as user${separator}xmpp.domain@${gatewayDomain}`, xmpp: `write to SIP users as user${separator}sip.domain@${xmppDomain}` }
        : { sip: 'no XMPP address for this user', xmpp: 'no SIP address for this user' };
    this.queue = new OutboundQueue(options.maxQueue, options.delayTimeMs);
    const limits = { maxMessages: options.maxQueue, maxPerRecipient: options.maxQueue };
    this.bridge = new SipBridge(relay, { network: 'XMPP', maxSent: MAX_SENT }, log);
    // Sent while the outbox row is written: the stanza does not wait for the disk, the 202 does.
    this.accepted = this.bridge.outbox(outbox, TO_XMPP, (message: AcceptedMessage, at, leg) => this.sendAccepted(upgraded(message), at, leg), limits, true);
    this.link = createLink(options, log);
    this.link.on('online', () => this.flush());
    this.link.on('stanza', (stanza) => this.onStanza(stanza));
    if (presence) {
      const bridgeOptions = { addresses: this.addresses, gatewayDomain, xmppDomain, localDomains: options.localDomains, graceMs: options.presenceGraceMs };
      const presenceLog = log.child({ part: 'presence' });
      const pending = new PendingSubscriptions(outbox, PENDING_SUBSCRIPTIONS, presenceLog);
      this.presence = new PresenceBridge(presence, bridgeOptions, pending, (stanza) => void this.submit({ stanza }), presenceLog);
      this.link.on('online', () => this.presence!.online());
      this.link.on('stream-down', (domain) => this.presence!.streamDown(domain));
      this.link.on('stream-up', (domain) => this.presence!.streamUp(domain));
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
    await this.presence?.start();
    this.link.start();
    this.bridge.start(Math.min(1000, this.options.delayTimeMs), (now) => this.sweep(now));
    await this.accepted.start();
  }

  /** Messages taken and not yet sent stay in the outbox for the next start. */
  async stop(): Promise<void> {
    this.bridge.stop();
    const stopped = this.accepted.stop();
    for (const wake of this.wakeups) wake();
    await stopped;
    await this.presence?.stop();
    await this.link.stop();
    this.queue.drain();
    await this.bridge.drain();
  }

  /** The `xmpp` routing handler: a SIP MESSAGE for the gateway domain; 202 once it is in the outbox. */
  async handle(request: IncomingRequest): Promise<void> {
    const taken = this.take(request.message);
    if ('transient' in taken || 'notification' in taken) {
      const signal = 'transient' in taken ? taken : await this.receiptFor(taken);
      if (signal) this.signal(signal);
      request.reply(202, 'Accepted');
      return;
    }
    if ('status' in taken) return this.refuse(request, taken);
    // What the XMPP user's receipts will name is as durable as the message before the 202.
    const awaited = taken.imdn && this.awaitedFromXmpp.remember(taken.attrs.id, { origin: taken.origin, recipient: taken.attrs.to, ...taken.imdn });
    let accepted = false;
    try {
      accepted = await this.bridge.accept(request, this.accepted, taken, TO_XMPP, Date.now(), awaited);
    } finally {
      // A message refused (queue full, store unavailable) gets no receipt: what was remembered for one goes, rather than staying until it expires.
      if (!accepted && taken.imdn) this.awaitedFromXmpp.forget(taken.attrs.id);
    }
    if (accepted) this.counters.sipToXmpp++;
    else this.refuse(request, { status: 503, reason: 'Service Unavailable (XMPP queue full)', headers: this.retryAfter() });
  }

  private refuse(request: IncomingRequest, { status, reason, headers }: Refusal): void {
    this.counters.refused++;
    this.log.debug({ status, reason, to: request.message.uri }, 'MESSAGE for XMPP refused');
    request.reply(status, reason, { headers });
  }

  private retryAfter(): Array<{ name: string; value: string }> {
    return [{ name: 'retry-after', value: String(Math.ceil(this.options.link.reconnectMaxMs / 1000)) }];
  }

  /** The XMPP form of a SIP MESSAGE, or what to answer instead when the gateway cannot carry it. */
  private take(message: SipMessage): AcceptedMessage | Signal | ImdnFromSip | Refusal {
    const sender = senderOf(message);
    if ('status' in sender) return sender;
    if (!this.options.localDomains.has(sender.host)) return { status: 403, reason: 'Forbidden (the XMPP gateway serves local users only)' };
    const from = this.addresses.xmppSender(sender);
    if (!from) return { status: 403, reason: 'Forbidden (this sender has no XMPP address)' };
    const target = message.requestUri;
    const to = this.addresses.xmppRecipient(target);
    if (!to) return { status: 404, reason: `Not Found (${this.hints.sip})` };
    if (to.domain === this.options.addresses.xmppDomain) return { status: 482, reason: 'Loop Detected (that XMPP address leads back to SIP)' };
    const payload = readSipPayload(message, this.options.maxBody);
    if ('status' in payload) return payload;
    const attrs = { from: formatJid(from), to: formatJid(to), id: repeatableId(requestKey(message)), type: this.options.messageType };
    if (payload.kind === 'typing') return { stanza: chatStateStanza(chatStateOfComposing(payload.typing), attrs), transient: true };
    if (payload.kind === 'receipt') return { notification: payload.receipt, sender: plainSipAddress(sender), attrs };
    const { text: im, imdn } = payload;
    if (this.link.downFor(Date.now()) > this.options.delayTimeMs) {
      return { status: 503, reason: 'Service Unavailable (XMPP server unreachable)', headers: this.retryAfter() };
    }
    const origin = { sender: plainSipAddress(sender), target: plainSipAddress(target), recipient: recipientWords(to), excerpt: excerptOf(im.body) };
    return imdn ? { im, attrs, origin, imdn } : { im, attrs, origin };
  }

  /**
   * The XEP-0184 receipt or XEP-0333 marker for an IMDN a SIP user sent about a message from XMPP;
   * undefined when the IMDN names no message this user got from that XMPP user, or one that did not ask for it.
   */
  private async receiptFor({ notification, sender, attrs }: ImdnFromSip): Promise<Signal | undefined> {
    const awaited = await this.awaitedFromSip.answer(notification, (entry) => entry.recipient === sender && bareJid(entry.sender) === attrs.to);
    if (!awaited) {
      this.log.debug({ sender, messageId: notification.messageId }, 'IMDN for no message from XMPP awaiting it: dropped');
      return undefined;
    }
    const stanza = receiptStanza({ messageId: awaited.stanzaId, disposition: notification.disposition }, { from: attrs.from, to: awaited.sender, id: attrs.id, type: 'chat' });
    return { stanza, transient: false };
  }

  /** Sends a chat state (only while the link is up) or a receipt (queued while it is down). */
  private signal({ stanza, transient }: Signal): void {
    if (this.link.online) this.transmit({ stanza });
    else if (!transient) this.submit({ stanza });
  }

  /**
   * Sends a message taken from SIP once the link is up; fails it back once it waited delay_time
   * since it was taken. While the link is up, the outcome at once rather than its promise (see Outbox.runLeg).
   */
  private sendAccepted(message: AcceptedMessage, acceptedAt: number, leg: LegContext): LegOutcome | Promise<LegOutcome> {
    const deadline = acceptedAt + this.options.delayTimeMs;
    // Refused to its sender (503) while it waited: it does not go later.
    if (!this.link.online && Date.now() < deadline) return this.linkOnline(deadline).then(() => (leg.refused ? 'done' : this.sendTaken(message, deadline)));
    return this.sendTaken(message, deadline);
  }

  /** A message from SIP to XMPP, once the link is up or its wait over: sent, failed back, or left in the outbox (stopping). */
  private sendTaken(message: AcceptedMessage, deadline: number): LegOutcome {
    const outgoing = { stanza: writtenMessage(message.im, message.attrs, message.imdn?.wanted), origin: message.origin };
    if (this.link.online) this.transmit(outgoing); else if (Date.now() >= deadline) this.failBack(outgoing, 408, `the XMPP server was unreachable for ${this.options.delayTimeMs / 1000} s`);
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
    if (origin) this.bridge.sentToNetwork(stanza.attrs.id!, origin);
    this.link.send(stanza);
    this.counters.stanzasOut++;
  }

  private flush(): void {
    for (const outgoing of this.queue.drain()) this.transmit(outgoing);
  }

  /** Drops the gateway's own stanzas that waited too long for the link, and forgets receipts that did not come. */
  private sweep(now: number): void {
    this.queue.takeExpired(now);
    this.awaitedFromXmpp.sweep(now);
    this.awaitedFromSip.sweep(now);
    this.presence?.sweep(now);
  }

  private failBack({ origin }: Outgoing, status: number, explanation: string): void {
    if (!origin) return;
    this.counters.expired++;
    this.bridge.notifyUndelivered(origin, status, explanation);
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
    if (!im) return this.onSignal(stanza);
    const sender = parseJid(stanza.attrs.from ?? '');
    const recipient = parseJid(stanza.attrs.to ?? '');
    const to = recipient && this.addresses.sipRecipient(recipient);
    if (!to) return this.bounce(stanza, { condition: 'jid-malformed', text: this.hints.xmpp });
    const from = sender && this.addresses.sipSender(sender);
    if (!from) return this.bounce(stanza, { condition: 'jid-malformed', text: 'the sender has no SIP address' });
    if (Buffer.byteLength(im.body, 'utf8') > this.options.maxBody) return this.bounce(stanza, { condition: 'policy-violation', text: `messages are limited to ${this.options.maxBody} bytes` });
    // Nothing slows an XMPP sender down: past the bound, messages for a recipient who takes them slower than they come go back.
    if (this.bridge.waitingFor(to) >= this.options.maxQueueToSip) return this.bounce(stanza, { condition: 'resource-constraint', text: `${this.options.maxQueueToSip} messages are waiting for delivery to ${to}: try again later` });
    const { asked, remembered } = this.receiptsAsked(stanza, to);
    const message = { kind: 'text', from: sipAddress(from), to: sipAddress(to), at: Date.now(), ...im, contentType: TEXT_PLAIN, conversation: callIdOfThread(im.thread), ...asked } as const;
    // The SIP user's IMDNs may come after a restart: what they will name is in the store before they can.
    const delivery = remembered ? { to: message.to, make: () => remembered.then(() => message) } : message;
    this.bridge.intoSip(delivery, (result) => {
      if (result.status < 300) this.counters.xmppToSip++;
      else this.bounce(stanza, { condition: conditionForStatus(result.status), text: `${result.status} ${result.reason}` });
    });
  }

  /** Answers a message from XMPP that does not reach SIP with a stanza error. */
  private bounce(stanza: xml.Element, error: StanzaError): void {
    this.counters.refused++;
    // RFC 6120 §5.2.2: a headline expects no answer, not even an error.
    if (stanza.attrs.type !== 'headline') this.submit({ stanza: errorReply(stanza, error) });
  }

  /**
   * The receipts a message from XMPP asks for, as SIP asks for them (IMDN, with the Message-ID it
   * goes with), remembered to map the IMDNs that come back (`remembered` once committed to the
   * store, which a kill -9 keeps, without waiting for the disk sync; or given up on: the IMDNs then
   * find it in memory only); none when it asks for none.
   */
  private receiptsAsked(stanza: xml.Element, to: string): { asked?: { id: string; wanted: Wanted }; remembered?: Promise<void> } {
    const { wanted } = receiptsOf(stanza);
    const stanzaId = stanza.attrs.id;
    if (!this.options.imdn || !stanzaId || !(wanted.delivery || wanted.display)) return {};
    const id = this.bridge.newId();
    const remembered = new Promise<void>((committed) => {
      void this.awaitedFromSip
        .remember(id, { sender: stanza.attrs.from!, stanzaId, recipient: to, wanted }, Date.now(), committed)
        .catch(logBackgroundFailure(this.log, 'remembering a receipt id'))
        .finally(committed);
    });
    return { asked: { id, wanted }, remembered };
  }

  /**
   * A bodiless message from XMPP: a chat state becomes an isComposing MESSAGE (never stored
   * offline), a receipt or marker for a message from SIP an IMDN to its sender. Nothing of it is
   * answered with an error, either way.
   */
  private onSignal(stanza: xml.Element): void {
    const sender = parseJid(stanza.attrs.from ?? '');
    const recipient = parseJid(stanza.attrs.to ?? '');
    const to = recipient && this.addresses.sipRecipient(recipient);
    const from = sender && this.addresses.sipSender(sender);
    if (!to || !from) return;
    const { answers } = receiptsOf(stanza);
    if (answers) {
      this.onReceipt(answers, bareJid(stanza.attrs.from!)!, to).catch((error: unknown) => this.log.warn({ err: error }, 'XMPP receipt not mapped: store unavailable'));
      return;
    }
    const state = chatStateOf(stanza);
    // Stale once late: dropped rather than queued behind a recipient's full backlog.
    if (!state || this.bridge.waitingFor(to) >= this.options.maxQueueToSip) return;
    this.bridge.intoSip({ kind: 'typing', from: sipAddress(from), to: sipAddress(to), typing: composingOfChatState(state) });
  }

  /** An XMPP receipt or marker for a message from SIP: an IMDN to the SIP sender, from the address it wrote to. */
  private async onReceipt(receipt: Notification, sender: string, recipient: string): Promise<void> {
    const awaited = await this.awaitedFromXmpp.answer(receipt, (entry) => entry.recipient === sender && entry.origin.sender === recipient);
    if (!awaited) {
      this.log.debug({ from: sender, id: receipt.messageId }, 'XMPP receipt for no message from SIP awaiting it: dropped');
      return;
    }
    const { origin } = awaited;
    const notification = { messageId: awaited.messageId, disposition: receipt.disposition };
    this.bridge.intoSip({ kind: 'receipt', from: sipAddress(origin.target), to: sipAddress(origin.sender), id: this.bridge.newId(), at: Date.now(), receipt: notification }, (result) => {
      if (result.status >= 300) this.log.debug({ sender: origin.sender, status: result.status }, 'IMDN not delivered');
    });
  }

  private onStanzaError(stanza: xml.Element): void {
    const id = stanza.attrs.id ?? '';
    const { condition, text } = readStanzaError(stanza);
    if (this.bridge.refusedByNetwork(id, statusForCondition(condition), `XMPP error ${condition}${text ? ` (${text})` : ''}`)) this.counters.stanzaErrors++;
    else this.log.debug({ id, from: stanza.attrs.from }, 'stanza error for no message sent from SIP');
  }
}

/** An XMPP recipient as a failure notice names it: its address as the SIP user wrote it. */
function recipientWords(jid: Jid): string {
  return `${unescapeLocal(jid.local)}@${jid.domain}`;
}

/** A message taken before the bridge kept its recipient as a JID (still in the outbox after an upgrade), with the recipient in words. */
function upgraded(message: AcceptedMessage): AcceptedMessage {
  const recipient = message.origin.recipient as string | Jid;
  return typeof recipient === 'string' ? message : { ...message, origin: { ...message.origin, recipient: recipientWords(recipient) } };
}

/** The bare form of a JID, as formatJid writes it; undefined for no JID. */
function bareJid(text: string): string | undefined {
  const jid = parseJid(text);
  return jid && formatJid({ ...jid, resource: '' });
}
