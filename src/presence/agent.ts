// The presence agent (RFC 3856) of Parley's users. It keeps what presentities PUBLISH (RFC 3903)
// and what non-SIP sources report, falls back on registration for users who published nothing,
// and holds the SUBSCRIBE dialogs (RFC 6665) it sends a NOTIFY in at every change. Publications
// and subscriptions are written to the store before the PUBLISH or SUBSCRIBE is answered, and taken
// back at start: after a restart, graceful or not, refreshes find their entity tags and dialogs,
// and every watcher is sent the state of the moment in its own dialog, a bounded number of them at a
// time. What the gateways report (publishFrom) is written through to the store too, and taken back.
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { PresencePolicy } from '../config/index.js';
import type { Registrar } from '../registrar/index.js';
import type { Relay } from '../relay/index.js';
import { logBackgroundFailure, type PresenceStore } from '../store/index.js';
import {
  type Header, type IncomingRequest, type SipMessage, type SipStack, aorOf, createResponse, domainOfAor, escapeUser, parseNameAddr,
  parseUri, randomToken, sipUriOfAor,
} from '../sip/index.js';
import { mediaTypeOf } from '../util/media-types.js';
import { RETRY_WHEN_FULL, expireWhenDue, grantExpires, parseExpires } from './expires.js';
import { CLOSED, OPEN, PIDF_TYPE, PidfError, type PresenceState, buildPidf, composeStates, parsePidf, sameState } from './pidf.js';
import { type PublicationLimits, PublicationStore, type PublishedDocument } from './publications.js';
import { type PresenceEvents, type PresenceService, REGISTRATION, SIP_PUBLICATION } from './service.js';
import { KeyedSerializer } from './serial.js';
import {
  NOTIFY_CSEQ_BLOCK, type Subscription, type TerminationReason, dialogKey, restoredSubscription, storedSubscription, subscriptionState,
} from './subscription.js';

export interface PresenceOptions extends PublicationLimits {
  /** Who may watch whom: anyone, or only watchers of the presentity's own domain. */
  policy: PresencePolicy;
  /** Most subscriptions one watcher may hold at once. */
  maxSubscriptionsPerWatcher: number;
  /** Most subscriptions the agent holds at once. */
  maxSubscriptions: number;
  /** Most states the gateways' sources may have reported at once (one per source and address). */
  maxGatewayStates: number;
  /** After a start, most NOTIFYs to the subscribers of the last run waiting for their answers at once. */
  restartNotifiesAtOnce: number;
}

/** How full a bounded table of the agent is, for its health. */
interface TableUse {
  /** The config key of its bound. */
  key: string;
  count: number;
  max: number;
}

/** What the presence handler serves; NOTIFY only to answer that Parley subscribed to nothing. */
export const PRESENCE_METHODS = ['PUBLISH', 'SUBSCRIBE', 'NOTIFY'] as const;

const EVENT_PACKAGE = 'presence';
const ALLOW_EVENTS: Header = { name: 'allow-events', value: EVENT_PACKAGE };
const ACCEPT_PIDF: Header = { name: 'accept', value: PIDF_TYPE };
/** NOTIFY answers after which the subscriber is gone (RFC 6665 §4.2.2): the dialog is, or it stopped answering. */
const SUBSCRIBER_GONE = new Set([408, 481]);
/** How long a stop waits for subscribers to answer the NOTIFYs under way. */
const STOP_NOTIFY_WAIT_MS = 1000;

export class PresenceAgent extends EventEmitter<PresenceEvents> implements PresenceService {
  private readonly publications: PublicationStore;
  /** What non-SIP sources reported, by address, then by source. */
  private readonly external = new Map<string, Map<string, PresenceState>>();
  /** Entries of `external`, all addresses together. */
  private externalCount = 0;
  /** Said once while presence.max_gateway_states is reached, not at every state left out (a busy network would flood the log). */
  private gatewayStatesFullWarned = false;
  /** Subscriptions of the last run whose first NOTIFY of this run waits for its turn. */
  private readonly awaitingRestartNotify = new Set<Subscription>();
  private readonly dialogs = new Map<string, Subscription>();
  private readonly watched = new Map<string, Set<Subscription>>();
  /** Subscriptions held by each watcher, and being written. */
  private readonly watching = new Map<string, number>();
  /** New subscriptions being written: their places are taken. */
  private creating = 0;
  /** SUBSCRIBEs and expiries of one dialog, one at a time. */
  private readonly serial = new KeyedSerializer();
  private stopped = false;
  /** The state last announced for each address whose state is not CLOSED: absent means CLOSED. */
  private readonly announced = new Map<string, PresenceState>();
  private readonly deliveries = new Set<Promise<void>>();

  constructor(
    private readonly stack: SipStack,
    private readonly registrar: Registrar,
    /** The foreign-domain policy: NOTIFYs to watchers of other domains go only through relay.outbound_proxy. */
    private readonly relay: Relay,
    private readonly store: PresenceStore,
    private readonly options: PresenceOptions,
    private readonly log: Logger,
  ) {
    super();
    this.publications = new PublicationStore(options, store, (aor) => this.update(aor, SIP_PUBLICATION), log);
    registrar.on('registered', (aor) => this.update(aor, REGISTRATION));
    registrar.on('unregistered', (aor) => this.update(aor, REGISTRATION));
  }

  stateOf(aor: string): PresenceState {
    // Without a gateway's state, as for nearly every user, the publications' own list (asked at each REGISTER).
    const external = this.external.get(aor);
    const published = external ? [...this.publications.statesOf(aor), ...external.values()] : this.publications.statesOf(aor);
    if (published.length > 0) return composeStates(published);
    return this.registrar.lookup(aor).length > 0 ? OPEN : CLOSED;
  }

  /**
   * Written through to the store (in the background: nothing is acknowledged to a gateway), unless
   * stopped: what gateways withdraw as they stop stays in the store for the next start. A new
   * address past presence.max_gateway_states is left out.
   */
  publishFrom(source: string, aor: string, state: PresenceState | null): void {
    const known = this.external.get(aor)?.has(source) === true;
    if (state && !known && this.externalCount >= this.options.maxGatewayStates) {
      if (!this.gatewayStatesFullWarned) this.log.warn({ source, aor, max: this.options.maxGatewayStates }, 'gateway presence left out: presence.max_gateway_states reached');
      this.gatewayStatesFullWarned = true;
      return;
    }
    if (!state && !known) return;
    this.setExternal(source, aor, state);
    if (!this.stopped) {
      void this.store.putGatewayState(source, aor, state && JSON.stringify(state)).catch(logBackgroundFailure(this.log, 'saving gateway presence'));
    }
    this.update(aor, source);
  }

  private setExternal(source: string, aor: string, state: PresenceState | null): void {
    const bySource = this.external.get(aor) ?? new Map<string, PresenceState>();
    const before = bySource.size;
    if (state) bySource.set(source, state);
    else bySource.delete(source);
    this.externalCount += bySource.size - before;
    if (this.externalCount < this.options.maxGatewayStates) this.gatewayStatesFullWarned = false;
    if (bySource.size > 0) this.external.set(aor, bySource);
    else this.external.delete(aor);
  }

  /** The tables at their bound: a further new entry is refused. */
  full(): TableUse[] {
    const tables: TableUse[] = [
      { key: 'presence.max_subscriptions', count: this.dialogs.size, max: this.options.maxSubscriptions },
      { key: 'presence.max_publications', count: this.publications.size, max: this.options.maxPublications },
      { key: 'presence.max_gateway_states', count: this.externalCount, max: this.options.maxGatewayStates },
    ];
    return tables.filter((table) => table.count >= table.max);
  }

  reportedBy(source: string, aor: string): PresenceState | undefined {
    return this.external.get(aor)?.get(source);
  }

  watchersOf(aor: string): string[] {
    return [...new Set([...(this.watched.get(aor) ?? [])].map((subscription) => subscription.watcher))];
  }

  /** Rejects with the store's error when it cannot take a change: the server answers 503. */
  async handle(request: IncomingRequest): Promise<void> {
    switch (request.message.method) {
      case 'PUBLISH':
        return this.publish(request);
      case 'SUBSCRIBE':
        return this.subscribe(request);
      default:
        return request.reply(481, 'Subscription Does Not Exist');
    }
  }

  /** Takes back from the store the publications and subscriptions not expired yet; before requests come. */
  async load(): Promise<void> {
    const { publications, subscriptions, gatewayStates } = await this.store.loadPresence(Date.now());
    this.publications.restore(publications);
    for (const stored of gatewayStates) {
      const state = parseStoredState(stored.state);
      if (state && this.externalCount < this.options.maxGatewayStates) this.setExternal(stored.source, stored.presentity, state);
    }
    for (const stored of subscriptions) {
      const subscription = restoredSubscription(stored);
      if (!subscription) continue;
      this.countWatcher(subscription.watcher, 1);
      this.hold(subscription);
    }
  }

  /**
   * Once gateways listen and transports are up: forgets what gateways reported of addresses nobody
   * watches any more (a gateway asks again when someone does), tells gateways who watches whom, and
   * sends every subscriber of the last run the state now, in its dialog, as it may have changed
   * meanwhile: presence.restart_notifies_at_once at a time, the next as soon as one is answered.
   */
  start(): void {
    for (const [aor, bySource] of this.external) {
      if (this.watched.has(aor)) continue;
      for (const source of [...bySource.keys()]) this.publishFrom(source, aor, null);
    }
    for (const aor of new Set([...this.publications.presentities(), ...this.watched.keys(), ...this.external.keys()])) this.remember(aor, this.stateOf(aor));
    for (const subscription of this.dialogs.values()) {
      this.announce(() => this.emit('watch', subscription.presentity, subscription.watcher));
      this.awaitingRestartNotify.add(subscription);
    }
    for (let started = 0; started < this.options.restartNotifiesAtOnce; started++) this.notifyNextRestored();
  }

  /** Sends the next subscriber of the last run not notified yet its NOTIFY; once answered, the next one. */
  private notifyNextRestored(): void {
    for (const subscription of this.awaitingRestartNotify) {
      this.awaitingRestartNotify.delete(subscription);
      // Ended or notified meanwhile (a change): its turn is not needed.
      if (subscription.notifying || this.dialogs.get(subscription.dialog) !== subscription) continue;
      this.notify(subscription, () => this.notifyNextRestored());
      return;
    }
  }

  /**
   * Stops notifying and expiring; publications and subscriptions stay in the store, and the next
   * start takes them back, so subscribers are not asked to subscribe again.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.publications.stop();
    for (const subscription of this.dialogs.values()) clearTimeout(subscription.expiry);
    await Promise.race([Promise.allSettled([...this.deliveries]), sleep(STOP_NOTIFY_WAIT_MS, undefined, { ref: false })]);
  }

  private async publish(request: IncomingRequest): Promise<void> {
    const message = request.message;
    if (eventPackage(message) !== EVENT_PACKAGE) return request.reply(489, 'Bad Event', { headers: [ALLOW_EVENTS] });
    const presentity = aorOf(message.requestUri);
    const publisher = senderOf(request);
    if (publisher === undefined) return request.reply(400, 'Bad From header');
    if (publisher !== presentity) return request.reply(403, 'Forbidden (only a presentity publishes its presence)');
    const expires = expiresOf(message);
    if (expires === 'malformed') return request.reply(400, 'Bad Expires header');
    let body: PublishedDocument | undefined;
    if (message.body.length > 0) {
      if (mediaTypeOf(message.get('content-type') ?? '') !== PIDF_TYPE) {
        return request.reply(415, 'Unsupported Media Type', { headers: [ACCEPT_PIDF] });
      }
      const document = message.body.toString('utf8');
      try {
        body = { document, state: parsePidf(document) };
      } catch (error) {
        if (!(error instanceof PidfError)) throw error;
        return request.reply(400, `Bad Request (${error.message})`.replace(/[\r\n]+/g, ' '));
      }
    }
    const outcome = await this.publications.publish(presentity, { ifMatch: message.get('sip-if-match'), expires, body });
    switch (outcome.status) {
      case 200: {
        const headers: Header[] = [{ name: 'expires', value: String(outcome.expires) }];
        if (outcome.etag) headers.push({ name: 'sip-etag', value: outcome.etag });
        request.reply(200, 'OK', { headers });
        return this.update(presentity, SIP_PUBLICATION);
      }
      case 423:
        return request.reply(423, 'Interval Too Brief', { headers: [{ name: 'min-expires', value: String(outcome.minExpires) }] });
      case 503:
        return request.reply(503, outcome.reason, { headers: [{ name: 'retry-after', value: String(outcome.retryAfter) }] });
      default:
        return request.reply(outcome.status, outcome.reason);
    }
  }

  private subscribe(request: IncomingRequest): Promise<void> | void {
    const message = request.message;
    if (eventPackage(message) !== EVENT_PACKAGE) return request.reply(489, 'Bad Event', { headers: [ALLOW_EVENTS] });
    const asked = expiresOf(message);
    if (asked === 'malformed') return request.reply(400, 'Bad Expires header');
    const expires = grantExpires(asked, this.options);
    if (expires === undefined) {
      return request.reply(423, 'Interval Too Brief', { headers: [{ name: 'min-expires', value: String(this.options.minExpires) }] });
    }
    if (message.to.params.has('tag')) return this.refresh(request, expires);
    return this.create(request, expires);
  }

  private async create(request: IncomingRequest, expires: number): Promise<void> {
    const message = request.message;
    if (!acceptsPidf(message)) return request.reply(406, 'Not Acceptable', { headers: [ACCEPT_PIDF] });
    const remoteTarget = contactOf(message);
    if (remoteTarget === undefined) return request.reply(400, 'Bad Request (a SUBSCRIBE needs a Contact)');
    const watcher = senderOf(request);
    if (watcher === undefined) return request.reply(400, 'Bad From header');
    const target = message.requestUri;
    const presentity = aorOf(target);
    if (!this.allows(watcher, presentity)) return request.reply(403, 'Forbidden (not allowed to watch this address)');
    if (!this.relay.isLocalDomain(domainOfAor(watcher)) && !this.relay.reachesForeignDomains) {
      const refusal = this.relay.foreignDomainRefusal();
      return request.reply(refusal.status, refusal.reason);
    }
    // A fetch (Expires: 0) keeps nothing, so no limit applies to it.
    if (expires > 0 && (this.watching.get(watcher) ?? 0) >= this.options.maxSubscriptionsPerWatcher) {
      return request.reply(403, 'Forbidden (too many subscriptions from this watcher)');
    }
    if (expires > 0 && this.dialogs.size + this.creating >= this.options.maxSubscriptions) {
      return request.reply(503, 'Service Unavailable (too many presence subscriptions)', { headers: [{ name: 'retry-after', value: String(RETRY_WHEN_FULL) }] });
    }
    const localTag = randomToken();
    const subscription: Subscription = {
      dialog: dialogKey(message.callId, localTag, message.from.params.get('tag') ?? ''),
      presentity,
      watcher,
      callId: message.callId,
      localTag,
      remoteTag: message.from.params.get('tag') ?? '',
      local: `${message.get('to')};tag=${localTag}`,
      remote: message.get('from')!,
      event: message.get('event')!,
      routeSet: message.getAll('record-route'),
      contact: `<${this.stack.localUri(request.source.proto, target.user ? escapeUser(target.user) : undefined)}>`,
      remoteTarget,
      flow: request.source,
      remoteCSeq: message.cseq.seq,
      localCSeq: 0,
      savedCSeq: NOTIFY_CSEQ_BLOCK,
      expiresAt: Date.now() + expires * 1000,
      notifying: false,
      outdated: false,
    };
    // Expires: 0 is a fetch (RFC 6665 §4.4.3): one NOTIFY with the state, and the subscription is over.
    if (expires === 0) {
      this.accept(request, subscription, expires);
      return this.end(subscription, 'timeout');
    }
    // The places are taken while the write is under way, so that other SUBSCRIBEs cannot exceed the limits meanwhile.
    this.creating++;
    this.countWatcher(watcher, 1);
    try {
      await this.store.putSubscription(storedSubscription(subscription));
    } catch (error) {
      this.countWatcher(watcher, -1);
      throw error;
    } finally {
      this.creating--;
    }
    this.hold(subscription);
    this.accept(request, subscription, expires);
    this.log.debug({ presentity, watcher, expires }, 'presence subscription');
    this.announce(() => this.emit('watch', presentity, watcher));
    this.notify(subscription);
  }

  private refresh(request: IncomingRequest, expires: number): Promise<void> {
    const message = request.message;
    const dialog = dialogKey(message.callId, message.to.params.get('tag') ?? '', message.from.params.get('tag') ?? '');
    return this.serial.run(dialog, async () => {
      const subscription = this.dialogs.get(dialog);
      if (!subscription) return request.reply(481, 'Subscription Does Not Exist');
      if (message.cseq.seq <= subscription.remoteCSeq) return request.reply(500, 'Server Internal Error (CSeq out of order)');
      const refreshed = {
        remoteCSeq: message.cseq.seq,
        remoteTarget: contactOf(message) ?? subscription.remoteTarget,
        flow: request.source,
        expiresAt: Date.now() + expires * 1000,
      };
      if (expires === 0) await this.store.removeSubscription(subscription);
      else await this.store.putSubscription(storedSubscription({ ...subscription, ...refreshed }));
      // The subscriber stopped answering while the write was under way.
      if (this.dialogs.get(dialog) !== subscription) return request.reply(481, 'Subscription Does Not Exist');
      Object.assign(subscription, refreshed);
      this.accept(request, subscription, expires);
      if (expires === 0) return this.end(subscription, 'timeout');
      this.expireAt(subscription);
      this.notify(subscription);
    });
  }

  /** The 200 to a SUBSCRIBE (RFC 6665 deprecates 202: whether it is pending is the NOTIFY's to say). */
  private accept(request: IncomingRequest, subscription: Subscription, expires: number): void {
    const response = createResponse(request.message, 200, 'OK', subscription.localTag);
    response.add('expires', String(expires));
    response.add('contact', subscription.contact);
    request.respond(response);
  }

  private allows(watcher: string, presentity: string): boolean {
    return this.options.policy === 'open' || domainOfAor(watcher) === domainOfAor(presentity);
  }

  /** Holds a subscription whose place was counted already, until it expires. */
  private hold(subscription: Subscription): void {
    this.dialogs.set(subscription.dialog, subscription);
    const watchers = this.watched.get(subscription.presentity) ?? new Set();
    this.watched.set(subscription.presentity, watchers.add(subscription));
    this.expireAt(subscription);
  }

  private countWatcher(watcher: string, change: 1 | -1): void {
    const held = (this.watching.get(watcher) ?? 0) + change;
    if (held > 0) this.watching.set(watcher, held);
    else this.watching.delete(watcher);
  }

  /** Ends the subscription with a timeout NOTIFY when it expires, after the SUBSCRIBEs of its dialog under way. */
  private expireAt(subscription: Subscription): void {
    expireWhenDue(subscription, this.serial, subscription.dialog, () => this.dialogs.get(subscription.dialog) === subscription, () => {
      this.end(subscription, 'timeout');
      this.unstore(subscription);
    });
  }

  /** Removes an ended subscription from the store, in the background: left there, it is dropped once expired. */
  private unstore(subscription: Subscription): void {
    void this.store.removeSubscription(subscription).catch(logBackgroundFailure(this.log, 'removing a presence subscription'));
  }

  /** Ends a subscription with a last NOTIFY saying why. */
  private end(subscription: Subscription, reason: TerminationReason): void {
    this.forget(subscription);
    subscription.ended = reason;
    this.notify(subscription);
  }

  /** Stops keeping a subscription, without a word to the subscriber. */
  private forget(subscription: Subscription): void {
    clearTimeout(subscription.expiry);
    if (!this.dialogs.delete(subscription.dialog)) return;
    const watchers = this.watched.get(subscription.presentity);
    watchers?.delete(subscription);
    if (watchers?.size === 0) this.watched.delete(subscription.presentity);
    this.countWatcher(subscription.watcher, -1);
    this.announce(() => this.emit('unwatch', subscription.presentity, subscription.watcher));
  }

  /** Works out the state of `aor` after `source` may have changed it, and tells whoever follows it. */
  private update(aor: string, source: string): void {
    const state = this.stateOf(aor);
    if (sameState(state, this.announced.get(aor) ?? CLOSED)) return;
    this.remember(aor, state);
    for (const subscription of this.watched.get(aor) ?? []) this.notify(subscription);
    this.announce(() => this.emit('change', aor, state, source));
  }

  private remember(aor: string, state: PresenceState): void {
    if (sameState(state, CLOSED)) this.announced.delete(aor);
    else this.announced.set(aor, state);
  }

  /** Runs an emit to plug-ins: a listener that throws must not break the request or timer behind the event. */
  private announce(emit: () => boolean): void {
    try {
      emit();
    } catch (error) {
      this.log.error({ err: error }, 'presence listener failed');
    }
  }

  /**
   * Sends the subscriber the current state, then calls `delivered` once it is answered. NOTIFYs of
   * one subscription go one at a time, so that they cannot overtake each other; changes made
   * meanwhile are sent together once it is answered.
   */
  private notify(subscription: Subscription, delivered?: () => void): void {
    if (this.stopped) return;
    this.awaitingRestartNotify.delete(subscription);
    if (subscription.notifying) {
      subscription.outdated = true;
      return;
    }
    subscription.notifying = true;
    const delivery: Promise<void> = this.deliver(subscription).finally(() => {
      subscription.notifying = false;
      this.deliveries.delete(delivery);
      delivered?.();
    });
    this.deliveries.add(delivery);
  }

  private async deliver(subscription: Subscription): Promise<void> {
    do {
      subscription.outdated = false;
      await this.saveCSeq(subscription);
      const status = await this.sendNotify(subscription);
      if (!status || SUBSCRIBER_GONE.has(status)) {
        this.log.info({ presentity: subscription.presentity, watcher: subscription.watcher, status: status ?? 'unreachable' }, 'presence subscriber gone; subscription dropped');
        this.forget(subscription);
        if (!subscription.ended) this.unstore(subscription);
        return;
      }
    } while (subscription.outdated && !this.stopped);
  }

  /**
   * Makes sure the store knows a CSeq at least as high as the next NOTIFY's, so that NOTIFYs after
   * a restart go on above it; raised a block at a time, it costs one write per NOTIFY_CSEQ_BLOCK NOTIFYs.
   */
  private async saveCSeq(subscription: Subscription): Promise<void> {
    if (subscription.ended || subscription.localCSeq < subscription.savedCSeq) return;
    const saved = subscription.localCSeq + NOTIFY_CSEQ_BLOCK;
    try {
      await this.store.setNotifyCSeq(subscription, saved);
      subscription.savedCSeq = saved;
    } catch (error) {
      // The NOTIFY goes anyway: only a crash before the next successful save could make a later NOTIFY repeat a CSeq.
      logBackgroundFailure(this.log, 'saving the CSeq of NOTIFYs')(error);
    }
  }

  /** The NOTIFY's final status; undefined when the subscriber cannot be reached. */
  private async sendNotify(subscription: Subscription): Promise<number | undefined> {
    if (!this.relay.isLocalDomain(domainOfAor(subscription.watcher))) return (await this.relay.sendForeign(this.notifyRequest(subscription))).status;
    const peer = this.registrar.targetOf({
      source: subscription.flow,
      connectionId: subscription.flow.connectionId,
      contact: subscription.remoteTarget,
    });
    return peer && (await this.stack.request(this.notifyRequest(subscription), peer)).status;
  }

  private notifyRequest(subscription: Subscription): SipMessage {
    const headers: Header[] = [
      ...subscription.routeSet.map((route) => ({ name: 'route', value: route })),
      { name: 'event', value: subscription.event },
      { name: 'subscription-state', value: subscriptionState(subscription, Date.now()) },
      { name: 'contact', value: subscription.contact },
    ];
    return this.stack.createRequest({
      method: 'NOTIFY',
      uri: subscription.remoteTarget,
      from: subscription.local,
      to: subscription.remote,
      callId: subscription.callId,
      cseq: ++subscription.localCSeq,
      headers,
      body: Buffer.from(buildPidf(sipUriOfAor(subscription.presentity), this.stateOf(subscription.presentity)), 'utf8'),
      contentType: PIDF_TYPE,
    });
  }
}

/** The event package of a SUBSCRIBE or PUBLISH, without parameters; undefined without an Event header. */
function eventPackage(message: SipMessage): string | undefined {
  return message.get('event')?.split(';')[0]!.trim().toLowerCase();
}

/** Seconds asked for in Expires: undefined without the header, 'malformed' when it is not a number. */
function expiresOf(message: SipMessage): number | undefined | 'malformed' {
  const header = message.get('expires');
  return header === undefined ? undefined : (parseExpires(header) ?? 'malformed');
}

/** Whether PIDF is among what the subscriber accepts; no Accept header means the package's default, PIDF. */
function acceptsPidf(message: SipMessage): boolean {
  const ranges = message.getAll('accept').map(mediaTypeOf);
  return ranges.length === 0 || ranges.some((range) => range === PIDF_TYPE || range === 'application/*' || range === '*/*');
}

/** The URI of the first Contact; undefined when there is none or it does not parse. */
function contactOf(message: SipMessage): string | undefined {
  try {
    const uri = parseNameAddr(message.getAll('contact')[0] ?? '').uri;
    parseUri(uri);
    return uri;
  } catch {
    return undefined;
  }
}

/** Who sent a request: the authenticated identity when there is one, else the From address. */
function senderOf(request: IncomingRequest): string | undefined {
  try {
    return request.identity ?? aorOf(parseUri(request.message.from.uri));
  } catch {
    return undefined;
  }
}

/** A state the store kept as JSON; undefined when it is not one (a row written by hand). */
function parseStoredState(json: string): PresenceState | undefined {
  try {
    const value = JSON.parse(json) as Partial<PresenceState>;
    const strings = (list: unknown) => Array.isArray(list) && list.every((item) => typeof item === 'string');
    if ((value.basic === 'open' || value.basic === 'closed') && strings(value.notes) && strings(value.activities)) return value as PresenceState;
  } catch {
    // Not JSON: left out like any other unusable row.
  }
  return undefined;
}
