// Presence across the gateway (RFC 7248), both ways, on top of the presence agent (PresenceService):
//
// - SIP users watching XMPP users. A SIP SUBSCRIBE to an XMPP user's mapped address (gateway
//   domain) is routed to the presence agent, which keeps the dialog and sends the NOTIFYs; its
//   `watch` event makes the gateway ask the XMPP contact for a subscription (<presence
//   type='subscribe'/>) and probe it, from the JID the SIP watcher has on XMPP. What the contact's
//   resources say comes back as <presence/> and is published into the agent with
//   publishFrom('xmpp', presentity, state), so every SIP watcher of that address is notified.
//   `unwatch` of the last subscription of a watcher sends <presence type='unsubscribe'/>.
// - XMPP users watching SIP users. A subscription request to a SIP user's JID is approved at once
//   when the user exists (provisioned, or registered once), and the user's current state is sent;
//   a request to a user who does not exist yet waits (pending.ts) until the user's first REGISTER;
//   every later change of that state (a REGISTER, a PUBLISH, their expiry) is sent to each XMPP
//   watcher as <presence/> or <presence type='unavailable'/>. A probe is answered with the current
//   state; an unsubscribe forgets the watcher.
//
// Show and activities (RFC 7248 leaves <show/> to the implementation; these are Parley's choices):
//   XMPP -> SIP: away -> away; xa -> away + "extended-away" (an <rpid:other>); dnd -> busy;
//                chat and none -> no activity (just open). <status/> -> note.
//   SIP -> XMPP: busy, on-the-phone, meeting, appointment, presentation, performance, worship,
//                steering -> dnd; extended-away, vacation, holiday, permanent-absence, sleeping,
//                travel -> xa; away, meal, breakfast, dinner, in-transit, shopping -> away;
//                anything else -> no <show/>. Notes -> <status/> (joined by line breaks).
//
// XMPP watchers of SIP users are written to the store before they are told "subscribed" (bounded by
// presence.max_gateway_watchers), taken back at start and sent the SIP users' states whenever the
// link comes up, so a restart needs no new subscription. What XMPP contacts said is kept by the
// agent (publishFrom writes it through); the agent takes its SIP subscriptions back from the store
// and reports them with `watch`, so their XMPP contacts are asked again. The agent keeps one state
// per address, so every SIP watcher of an XMPP contact sees what the contact lets any one of them
// see.
import type { Logger } from 'pino';
import xml from '@xmpp/xml';
import type { PresenceService, PresenceState } from '../presence/index.js';
import type { PresenceStore } from '../store/index.js';
import { type SipUri, aorOf, parseUri, sipUriOfAor } from '../sip/index.js';
import { type AddressMapping, type Jid, formatJid, parseJid } from './addresses.js';
import type { PendingRequest, PendingSubscriptions } from './pending.js';

/** The source name the gateway publishes under; changes it caused itself come back with it. */
export const XMPP_SOURCE = 'xmpp';

export interface PresenceHooks {
  service: PresenceService;
  /** Whether a local SIP user ("user@domain") exists, to approve XMPP subscription requests to it. */
  isKnownUser(aor: string): Promise<boolean>;
  /** Where XMPP watchers of SIP users are kept across restarts. */
  store: Pick<PresenceStore, 'putGatewayWatcher' | 'removeGatewayWatcher' | 'loadGatewayWatchers'>;
  /** Most XMPP watchers kept (presence.max_gateway_watchers); a further subscription request is refused. */
  maxWatchers: number;
}

export interface PresenceBridgeOptions {
  addresses: AddressMapping;
  gatewayDomain: string;
  xmppDomain: string;
  localDomains: ReadonlySet<string>;
  /** How long contacts' presence outlives the stream it came on, or a start (xmpp.presence_grace). */
  graceMs: number;
}

export interface PresenceBridgeStats {
  /** XMPP users subscribed to SIP users (pairs). */
  xmppWatchers: number;
  /** XMPP contacts SIP users watch. */
  xmppContacts: number;
  /** XMPP subscription requests waiting for SIP users who do not exist yet. */
  pendingSubscriptions: number;
  presenceIn: number;
  presenceOut: number;
}

/** An XMPP contact some SIP users watch, under one SIP address. */
interface Contact {
  /** The contact's bare JID. */
  jid: string;
  /** The presentity address SIP users subscribed to ("user@gateway.domain"). */
  presentity: string;
  /** What each available resource said, by resource. */
  resources: ResourceStates;
  /** Whether the contact approved (it said subscribed, or sent presence): probing it is safe. */
  approved: boolean;
}

const SHOW_ACTIVITIES: Record<string, string[]> = {
  away: ['away'],
  xa: ['away', 'extended-away'],
  dnd: ['busy'],
  chat: [],
};
const DND_ACTIVITIES = new Set(['busy', 'on-the-phone', 'meeting', 'appointment', 'presentation', 'performance', 'worship', 'steering']);
const XA_ACTIVITIES = new Set(['extended-away', 'vacation', 'holiday', 'permanent-absence', 'sleeping', 'travel']);
const AWAY_ACTIVITIES = new Set(['away', 'meal', 'breakfast', 'dinner', 'in-transit', 'shopping']);
/** How available each <show/> is, to pick the resource that speaks for a contact with several. */
const SHOW_RANK: Record<string, number> = { chat: 4, '': 3, away: 2, xa: 1, dnd: 0 };

/** The PresenceState an available or unavailable <presence/> stanza states. */
export function stateOfStanza(stanza: xml.Element): PresenceState {
  const status = stanza.getChildText('status')?.trim();
  const notes = status ? [status] : [];
  if (stanza.attrs.type === 'unavailable') return { basic: 'closed', notes, activities: [] };
  const show = stanza.getChildText('show')?.trim() ?? '';
  return { basic: 'open', notes, activities: SHOW_ACTIVITIES[show] ?? [] };
}

/** The <show/> value for a set of RPID activities; undefined for plain availability. */
export function showOfActivities(activities: readonly string[]): 'dnd' | 'xa' | 'away' | undefined {
  if (activities.some((a) => DND_ACTIVITIES.has(a))) return 'dnd';
  if (activities.some((a) => XA_ACTIVITIES.has(a))) return 'xa';
  if (activities.some((a) => AWAY_ACTIVITIES.has(a))) return 'away';
  return undefined;
}

/** The <presence/> stanza stating a SIP user's state; `extra` children (e.g. <priority/>) go into an available one. */
export function stanzaOfState(state: PresenceState, attrs: { from?: string; to?: string }, ...extra: xml.Element[]): xml.Element {
  const status = state.notes.length > 0 ? xml('status', {}, state.notes.join('\n')) : undefined;
  if (state.basic === 'closed') return xml('presence', { ...attrs, type: 'unavailable' }, status);
  const show = showOfActivities(state.activities);
  return xml('presence', attrs, show && xml('show', {}, show), status, ...extra);
}

export class PresenceBridge {
  /** SIP user ("user@domain") -> XMPP watcher (bare JID) -> the JID the watcher knows the user as. */
  private readonly xmppWatchers = new Map<string, Map<string, string>>();
  /** Pairs in xmppWatchers. */
  private watcherCount = 0;
  /** Presentity address -> the XMPP contact behind it. */
  private readonly contacts = new Map<string, Contact>();
  /** Contact bare JID -> presentity addresses of it (one, unless SIP users spelt it differently). */
  private readonly presentitiesOf = new Map<string, Set<string>>();
  /**
   * Streams down, by the domain of the contacts whose presence came on them ('' for every domain:
   * the component link, or the time before the first start of the link): the timer that tells
   * their SIP watchers they are unavailable once the grace period is over.
   */
  private readonly staleAfter = new Map<string, NodeJS.Timeout>();
  /** Domains whose stream stayed down past the grace period, whose contacts' presence was withdrawn. */
  private readonly withdrawn = new Set<string>();
  /** Subscription handling waits for isKnownUser; one chain keeps requests of a watcher in order. */
  private chain: Promise<void> = Promise.resolve();
  private readonly counters = { presenceIn: 0, presenceOut: 0 };
  private readonly listeners = {
    change: (aor: string, state: PresenceState, source: string) => this.onSipChange(aor, state, source),
    watch: (presentity: string, watcher: string) => this.onWatch(presentity, watcher),
    unwatch: (presentity: string, watcher: string) => this.onUnwatch(presentity, watcher),
  };

  constructor(
    private readonly hooks: PresenceHooks,
    private readonly options: PresenceBridgeOptions,
    /** Subscription requests to SIP users who do not exist yet. */
    private readonly pending: PendingSubscriptions,
    /** Sends (or queues) a stanza on the link. */
    private readonly send: (stanza: xml.Element) => void,
    private readonly log: Logger,
  ) {}

  get stats(): PresenceBridgeStats {
    return { ...this.counters, xmppWatchers: this.watcherCount, xmppContacts: this.presentitiesOf.size, pendingSubscriptions: this.pending.size };
  }

  /**
   * Takes back the XMPP watchers, follows the agent; takes back the pending requests and approves
   * those whose user appeared meanwhile (provisioned).
   */
  async start(): Promise<void> {
    for (const { presentity, watcher, alias } of await this.hooks.store.loadGatewayWatchers(XMPP_SOURCE)) {
      if (this.watcherCount < this.hooks.maxWatchers) this.keepWatcher(presentity, watcher, alias);
    }
    const service = this.hooks.service;
    service.on('change', this.listeners.change).on('watch', this.listeners.watch).on('unwatch', this.listeners.unwatch);
    for (const request of await this.pending.load(Date.now())) this.refuse(request);
    for (const aor of this.pending.users()) this.serially(() => this.approvePending(aor));
    // What contacts said before the start is trusted only until the link is up, and a grace period at most.
    this.streamDown();
  }

  /**
   * The stream the presence of `domain`'s contacts comes on (every domain's without one) went
   * down: unless it is up again within the grace period, their SIP watchers are then told they are
   * unavailable, as their servers cannot tell when they go.
   */
  streamDown(domain?: string): void {
    const key = domain ?? '';
    if (this.staleAfter.has(key)) return;
    const timer = setTimeout(() => {
      this.staleAfter.delete(key);
      this.withdrawn.add(key);
      this.withdrawContacts(domain);
    }, this.options.graceMs);
    this.staleAfter.set(key, timer.unref());
  }

  /** A stream of `domain`'s contacts is up: when it was down, their presence is asked for (probes), which refreshes it. */
  streamUp(domain: string): void {
    if (this.cancelStale(domain)) this.probe((contact) => domainOf(contact.jid) === domain);
  }

  /** Stops the grace period of `key` (a domain, '' for the link); whether it was down or its contacts withdrawn. */
  private cancelStale(key: string): boolean {
    const wasDown = this.staleAfter.has(key);
    clearTimeout(this.staleAfter.get(key));
    this.staleAfter.delete(key);
    return this.withdrawn.delete(key) || wasDown;
  }

  /** Withdraws what the contacts of `domain` (every domain without one) said: their SIP watchers are told they are unavailable. */
  private withdrawContacts(domain?: string): void {
    let withdrawn = 0;
    for (const contact of this.contacts.values()) {
      if (domain !== undefined && domainOf(contact.jid) !== domain) continue;
      if (!this.hooks.service.reportedBy(XMPP_SOURCE, contact.presentity)) continue;
      contact.resources.clear();
      this.hooks.service.publishFrom(XMPP_SOURCE, contact.presentity, null);
      withdrawn++;
    }
    if (withdrawn > 0) this.log.info({ domain, contacts: withdrawn, graceSeconds: this.options.graceMs / 1000 }, 'XMPP contacts unavailable: their stream stayed down past xmpp.presence_grace');
  }

  /** Refuses the pending requests that waited too long. */
  sweep(now: number): void {
    if (this.pending.size === 0) return;
    this.serially(async () => {
      for (const request of await this.pending.expire(now)) this.refuse(request);
    });
  }

  /**
   * Stops following the agent, so that nothing of the stop cancels the XMPP contacts' approvals,
   * and tells XMPP watchers that the SIP users are unavailable.
   */
  async stop(): Promise<void> {
    const service = this.hooks.service;
    service.off('change', this.listeners.change).off('watch', this.listeners.watch).off('unwatch', this.listeners.unwatch);
    for (const timer of this.staleAfter.values()) clearTimeout(timer);
    this.staleAfter.clear();
    await this.chain;
    for (const watchers of this.xmppWatchers.values()) {
      for (const [watcher, as] of watchers) this.emit(xml('presence', { from: as, to: watcher, type: 'unavailable' }));
    }
    this.xmppWatchers.clear();
    this.watcherCount = 0;
    for (const presentity of this.contacts.keys()) service.publishFrom(XMPP_SOURCE, presentity, null);
    this.contacts.clear();
    this.presentitiesOf.clear();
  }

  /**
   * The link is (again) up: tell every XMPP watcher the state of its SIP user, and ask every
   * watched contact that approved for its presence, both of which may have changed meanwhile
   * (the contact's server answers a probe with its presence, or "unavailable").
   */
  online(): void {
    this.cancelStale('');
    for (const [aor, watchers] of this.xmppWatchers) {
      const state = this.hooks.service.stateOf(aor);
      for (const [watcher, as] of watchers) this.emit(stanzaOfState(state, { from: as, to: watcher }));
    }
    this.probe(() => true);
  }

  /**
   * Probes the contacts `which` selects that approved, from each of their SIP watchers. (A probe to
   * a contact that has not approved yet is answered by its server with "unsubscribed", which
   * Prosody takes as refusing the pending request.)
   */
  private probe(which: (contact: Contact) => boolean): void {
    for (const contact of this.contacts.values()) {
      if (!contact.approved || !which(contact)) continue;
      for (const watcher of this.hooks.service.watchersOf(contact.presentity)) {
        const from = this.watcherJid(watcher);
        if (from) this.emit(xml('presence', { from, to: contact.jid, type: 'probe' }));
      }
    }
  }

  /** A <presence/> stanza from XMPP. */
  onPresence(stanza: xml.Element): void {
    this.counters.presenceIn++;
    const from = parseJid(stanza.attrs.from ?? '');
    const to = parseJid(stanza.attrs.to ?? '');
    if (!from || !to) return;
    const type = stanza.attrs.type ?? 'available';
    switch (type) {
      case 'available':
      case 'unavailable':
        return this.onContactPresence(from, stanza);
      case 'subscribe':
      case 'probe':
      case 'unsubscribe':
        return this.serially(() => this.onWatcherRequest(type, from, to));
      case 'unsubscribed':
      case 'error':
        // The contact refused or cancelled the subscription, or its server could not deliver: its
        // presence is no longer known.
        this.log.debug({ from: stanza.attrs.from, to: stanza.attrs.to, type }, 'XMPP presence subscription refused or failed');
        return this.forgetResources(bare(from));
      case 'subscribed':
        // The contact approved; its server sends its presence next.
        for (const contact of this.contactsOf(bare(from))) contact.approved = true;
        return;
      default:
        return;
    }
  }

  // XMPP contacts watched by SIP users.

  private onWatch(presentity: string, watcher: string): void {
    const jid = this.contactJid(presentity);
    if (!jid) return;
    const from = this.watcherJid(watcher);
    if (!from) {
      this.log.debug({ presentity, watcher }, 'SIP watcher has no XMPP address; XMPP presence not asked for');
      return;
    }
    // What the contact said before a restart, kept by the agent, says it approved.
    const approved = this.hooks.service.reportedBy(XMPP_SOURCE, presentity) !== undefined;
    const contact = this.contacts.get(presentity) ?? { jid, presentity, resources: new Map(), approved };
    if (!this.contacts.has(presentity)) {
      this.contacts.set(presentity, contact);
      const presentities = this.presentitiesOf.get(jid) ?? new Set();
      this.presentitiesOf.set(jid, presentities.add(presentity));
    }
    this.log.debug({ presentity, watcher, contact: jid }, 'SIP user watches an XMPP contact');
    // RFC 6121 §3.1.3: a subscription approved before is approved again at once by the contact's
    // server, which sends the contact's presence with it (Prosody does); no probe, see online().
    this.emit(xml('presence', { from, to: jid, type: 'subscribe' }));
  }

  private onUnwatch(presentity: string, watcher: string): void {
    const contact = this.contacts.get(presentity);
    if (!contact) return;
    const remaining = this.hooks.service.watchersOf(presentity);
    if (!remaining.includes(watcher)) {
      const from = this.watcherJid(watcher);
      if (from) this.emit(xml('presence', { from, to: contact.jid, type: 'unsubscribe' }));
    }
    if (remaining.length > 0) return;
    this.contacts.delete(presentity);
    const presentities = this.presentitiesOf.get(contact.jid);
    presentities?.delete(presentity);
    if (presentities?.size === 0) this.presentitiesOf.delete(contact.jid);
    this.hooks.service.publishFrom(XMPP_SOURCE, presentity, null);
  }

  private onContactPresence(from: Jid, stanza: xml.Element): void {
    for (const contact of this.contactsOf(bare(from))) {
      contact.approved = true;
      this.hooks.service.publishFrom(XMPP_SOURCE, contact.presentity, applyPresence(contact.resources, from.resource, stanza));
    }
  }

  private forgetResources(jid: string): void {
    for (const contact of this.contactsOf(jid)) {
      contact.resources.clear();
      contact.approved = false;
      this.hooks.service.publishFrom(XMPP_SOURCE, contact.presentity, null);
    }
  }

  /** The contacts (one per presentity address) behind a bare JID. */
  private contactsOf(jid: string): Contact[] {
    return [...(this.presentitiesOf.get(jid) ?? [])].map((presentity) => this.contacts.get(presentity)!);
  }

  /** The bare JID behind a presentity address of the gateway domain; undefined for any other address. */
  private contactJid(presentity: string): string | undefined {
    const uri = uriOfAor(presentity);
    if (!uri || uri.host !== this.options.gatewayDomain) return undefined;
    const jid = this.options.addresses.xmppRecipient(uri);
    // An XMPP address of the gateway's own domain leads back to SIP.
    if (!jid || jid.domain === this.options.xmppDomain) return undefined;
    return formatJid(jid);
  }

  /** The JID a SIP user has on XMPP. */
  private watcherJid(watcher: string): string | undefined {
    const uri = uriOfAor(watcher);
    if (!uri || !this.options.localDomains.has(uri.host)) return undefined;
    const jid = this.options.addresses.xmppSender(uri);
    return jid && formatJid(jid);
  }

  // XMPP users watching SIP users.

  private async onWatcherRequest(type: 'subscribe' | 'probe' | 'unsubscribe', from: Jid, to: Jid): Promise<void> {
    const watcher = bare(from);
    const as = bare(to);
    const aor = this.sipUserOf(to);
    const watchers = aor ? this.xmppWatchers.get(aor) : undefined;
    if (type === 'unsubscribe') {
      if (aor) await this.pending.cancel(aor, watcher);
      if (aor && watchers?.has(watcher)) {
        await this.hooks.store.removeGatewayWatcher({ network: XMPP_SOURCE, presentity: aor, watcher });
        this.forgetWatcher(aor, watcher);
        this.log.debug({ aor, watcher }, 'XMPP user stopped watching a SIP user');
      }
      // RFC 6121 §3.3.3: the contact's presence is no longer sent to the former subscriber.
      this.emit(xml('presence', { from: as, to: watcher, type: 'unavailable' }));
      return;
    }
    if (!aor) return this.refuse({ watcher, as });
    if (!(await this.hooks.isKnownUser(aor))) {
      if (type === 'subscribe') return this.hold({ aor, watcher, as, at: Date.now() });
      // RFC 6121 §4.3.2: a probe for no such user is refused, unless the watcher's request waits for it.
      if (!this.pending.has(aor, watcher)) this.refuse({ watcher, as });
      return;
    }
    // A probe comes from the server of a watcher whose subscription was approved before (perhaps
    // before the store was wiped): it is a watcher again.
    await this.approve({ aor, watcher, as }, type === 'subscribe');
  }

  /**
   * Makes an XMPP user a watcher of a SIP user, in the store first, and sends the user's state;
   * `subscribed` tells it first that it is approved. Past presence.max_gateway_watchers a new
   * request is refused, and a probe only answered.
   */
  private async approve({ aor, watcher, as }: Omit<PendingRequest, 'at'>, subscribed: boolean): Promise<void> {
    const known = this.xmppWatchers.get(aor)?.get(watcher);
    if (known === undefined && this.watcherCount >= this.hooks.maxWatchers) {
      if (subscribed) {
        this.log.info({ aor, watcher, max: this.hooks.maxWatchers }, 'XMPP subscription request refused: presence.max_gateway_watchers reached');
        return this.refuse({ watcher, as });
      }
    } else if (known !== as) {
      await this.hooks.store.putGatewayWatcher({ network: XMPP_SOURCE, presentity: aor, watcher, alias: as });
      if (known === undefined) this.log.debug({ aor, watcher }, 'XMPP user watches a SIP user');
      this.keepWatcher(aor, watcher, as);
    }
    if (subscribed) this.emit(xml('presence', { from: as, to: watcher, type: 'subscribed' }));
    this.emit(stanzaOfState(this.hooks.service.stateOf(aor), { from: as, to: watcher }));
  }

  private keepWatcher(aor: string, watcher: string, as: string): void {
    const watchers = this.xmppWatchers.get(aor) ?? new Map<string, string>();
    if (!watchers.has(watcher)) this.watcherCount++;
    this.xmppWatchers.set(aor, watchers.set(watcher, as));
  }

  private forgetWatcher(aor: string, watcher: string): void {
    const watchers = this.xmppWatchers.get(aor);
    if (!watchers?.delete(watcher)) return;
    this.watcherCount--;
    if (watchers.size === 0) this.xmppWatchers.delete(aor);
  }

  /** RFC 6121 §3.1.3 / §4.3.2: no such user: refused. */
  private refuse({ watcher, as }: Pick<PendingRequest, 'watcher' | 'as'>): void {
    this.emit(xml('presence', { from: as, to: watcher, type: 'unsubscribed' }));
  }

  /** A request to a SIP user who does not exist (yet) waits for the user, or is refused when too many wait. */
  private async hold(request: PendingRequest): Promise<void> {
    const outcome = await this.pending.add(request);
    if (outcome === 'full') {
      this.log.info({ aor: request.aor, watcher: request.watcher }, 'XMPP subscription request to an unknown SIP user refused: too many pending');
      this.refuse(request);
    } else if (outcome === 'added') this.log.debug({ aor: request.aor, watcher: request.watcher }, 'XMPP subscription request waits for the SIP user to exist');
  }

  /** Approves the requests waiting for a SIP user once it exists. */
  private async approvePending(aor: string): Promise<void> {
    if (!this.pending.has(aor) || !(await this.hooks.isKnownUser(aor))) return;
    for (const request of await this.pending.take(aor)) {
      this.log.debug({ aor, watcher: request.watcher }, 'pending XMPP subscription request approved: the SIP user exists now');
      await this.approve(request, true);
    }
  }

  private onSipChange(aor: string, state: PresenceState, source: string): void {
    if (source === XMPP_SOURCE) return;
    for (const [watcher, as] of this.xmppWatchers.get(aor) ?? []) this.emit(stanzaOfState(state, { from: as, to: watcher }));
    if (this.pending.has(aor)) this.serially(() => this.approvePending(aor));
  }

  /** The local SIP user ("user@domain") a JID of the gateway's XMPP domain stands for. */
  private sipUserOf(jid: Jid): string | undefined {
    if (jid.domain !== this.options.xmppDomain) return undefined;
    const address = this.options.addresses.sipRecipient({ ...jid, resource: '' });
    if (!address) return undefined;
    try {
      const uri = parseUri(address);
      return this.options.localDomains.has(uri.host) ? aorOf(uri) : undefined;
    } catch {
      return undefined;
    }
  }

  private serially(work: () => Promise<void>): void {
    this.chain = this.chain.then(work).catch((error: unknown) => this.log.error({ err: error }, 'XMPP presence subscription handling failed'));
  }

  private emit(stanza: xml.Element): void {
    this.counters.presenceOut++;
    this.send(stanza);
  }
}

function bare(jid: Jid): string {
  return formatJid({ ...jid, resource: '' });
}

/** The domain of a bare JID as formatJid writes it. */
function domainOf(jid: string): string {
  return jid.slice(jid.indexOf('@') + 1);
}

/** What each available resource of a contact said, by resource. */
export type ResourceStates = Map<string, { state: PresenceState; priority: number }>;

/**
 * Records what an available or unavailable <presence/> from one resource says, and returns the
 * contact's state as a whole: that of its speaking resource, or the unavailable state when none is left.
 */
export function applyPresence(resources: ResourceStates, resource: string, stanza: xml.Element): PresenceState {
  const state = stateOfStanza(stanza);
  if (state.basic === 'open') {
    const priority = Number.parseInt(stanza.getChildText('priority') ?? '0', 10);
    resources.set(resource, { state, priority: Number.isFinite(priority) ? priority : 0 });
  } else if (resource === '') {
    // Unavailable from the bare JID: every resource is gone.
    resources.clear();
  } else {
    resources.delete(resource);
  }
  return speakingState(resources) ?? state;
}

/** The state of the resource that speaks for a contact: highest priority, then most available. */
function speakingState(resources: ResourceStates): PresenceState | undefined {
  let best: { state: PresenceState; priority: number; rank: number } | undefined;
  for (const { state, priority } of resources.values()) {
    const rank = SHOW_RANK[showOfActivities(state.activities) ?? ''] ?? 0;
    if (!best || priority > best.priority || (priority === best.priority && rank > best.rank)) best = { state, priority, rank };
  }
  return best?.state;
}

/** The SIP URI of a "user@domain" address, as the agent keys them. */
function uriOfAor(aor: string): SipUri | undefined {
  try {
    const uri = parseUri(sipUriOfAor(aor));
    return uri.user === '' ? undefined : uri;
  } catch {
    return undefined;
  }
}
