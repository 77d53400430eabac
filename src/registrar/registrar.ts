// REGISTER handling (RFC 3261 §10.3) over an in-memory location table that is written through
// to the store before the 200 OK goes out, so an acknowledged registration survives a crash.
// A device is its +sip.instance (else its contact's address, contactDevice): it gets GRUUs (RFC 5627), and its flows
// (RFC 5626 reg-id) are the ways to reach it, one at a time.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { deviceKey, instanceUrn, logBackgroundFailure, type Binding, type LocationStore } from '../store/index.js';
import {
  type IncomingRequest, type Peer, RELIABLE, parseUri, parseNameAddr, splitList, aorOf, type NameAddr, type SipMessage, type SipUri,
} from '../sip/index.js';
import type { Header } from '../sip/message.js';
import { ownString } from '../util/own-string.js';
import { GruuIssuer, callIdDigest, type Device } from './gruu.js';

export interface RegistrarOptions {
  minExpires: number;
  maxExpires: number;
  defaultExpires: number;
  maxContacts: number;
}

export declare interface Registrar {
  /** An AOR gained or refreshed bindings: the moment to deliver what waits for it. */
  on(event: 'registered', listener: (aor: string, bindings: Binding[]) => void): this;
  on(event: 'unregistered', listener: (aor: string) => void): this;
  /** Bindings of an AOR expired without being registered again (their devices stopped refreshing them). */
  on(event: 'expired', listener: (aor: string, bindings: Binding[]) => void): this;
}

/**
 * Recognises devices registering without +sip.instance from a new address (`fresh`, among the AOR's
 * `current` bindings) as ones the AOR had: the bindings of those they were, which they replace.
 * Undefined when it needs no look.
 */
export type DeviceRecogniser = (aor: string, fresh: readonly Binding[], current: readonly Binding[]) => Promise<Binding[]> | undefined;

/** The registrar's answer to one REGISTER, before it is sent. */
type Outcome = { status: number; reason?: string; headers?: Header[] };

/** What a request-URI of a local domain reaches: every device of an AOR, or the one a GRUU names. */
export interface Destination {
  aor: string;
  device?: Device;
}

/** One way to reach a device: a binding and where to send for it now. */
export interface Flow {
  binding: Binding;
  peer: Peer;
}

/**
 * What lookup() gives for an AOR with no bindings (every new user's REGISTER): one list, not one each
 * time. Read-only by its type, not frozen: V8 copies a frozen array (evaluate's slice) several times slower.
 */
const NO_BINDINGS: readonly Binding[] = [];
/** What process() gives for a REGISTER answered at once, with nothing to store: one settled promise for all of them. */
const ANSWERED: Promise<void> = Promise.resolve();
/** Option tags of REGISTER extensions Parley implements, answered in Supported when the client names them. */
const EXTENSIONS = ['gruu', 'path', 'outbound'];
/** The name of the store's key that seals temporary GRUUs: one key for every start, so those handed out stay valid. */
const TEMPORARY_GRUU_KEY = 'temporary-gruu';

export class Registrar extends EventEmitter {
  /** Each AOR's bindings: a list is replaced, never changed, as lookup() hands it out. */
  private readonly table = new Map<string, readonly Binding[]>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /**
   * The AORs with bindings that die with a connection, by connection id: a closing connection
   * (thousands a second when a flood of them is cut) looks at its own AORs, not at every AOR.
   * Entries may be stale (the AOR registered again elsewhere); they go when their connection closes.
   */
  private readonly aorsByConnection = new Map<string, Set<string>>();
  /** Serialises REGISTERs of one AOR so concurrent ones cannot lose each other's contacts. */
  private readonly queues = new Map<string, Promise<void>>();
  /** The Date of the last 200 sent: see dateText(). */
  private lastDate = { second: -1, text: '' };
  /** Set by start(): seals temporary GRUUs with the key kept in the store. */
  private gruus!: GruuIssuer;
  /** Who recognises a device registering from a new address (per-device delivery): none by default. */
  private recogniser: DeviceRecogniser | undefined;
  /**
   * No binding in the table expires before this (ms since the epoch): a bound, lowered as bindings
   * are stored and worked out again by each sweep that goes through the table, so that a sweep
   * before it (every sweep while registrations last longer than the sweep period) has nothing to
   * look at among the tens of thousands of AORs, and lookup() none of an AOR's bindings.
   */
  private earliestExpiry = Infinity;
  /**
   * The AORs not in the table that may still have live rows in the store, with the latest expiry of
   * those: left out at start as their connection is gone, or written by a write that failed (it may
   * have been committed before it failed). Any other AOR not in the table has none, so that its
   * first REGISTER, a new user's, writes its rows without a look for others to delete. Expired rows
   * do not count: never taken for bindings, they go with the sweep.
   */
  private readonly storedOnly = new Map<string, number>();

  constructor(
    private readonly store: LocationStore,
    private readonly options: RegistrarOptions,
    private readonly isConnected: (connectionId: string) => boolean,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  async start(): Promise<void> {
    this.gruus = new GruuIssuer(await this.store.serverKey(TEMPORARY_GRUU_KEY));
    const now = this.now();
    for (const binding of await this.store.listAll()) {
      if (binding.expiresAt <= now) continue;
      // Its connection did not survive the restart, and nothing else reaches it.
      if (diesWithConnection(binding)) {
        this.mayBeStored(binding.aor, binding.expiresAt);
        continue;
      }
      const { connectionId: _stale, ...rest } = binding;
      this.table.set(binding.aor, [...(this.table.get(binding.aor) ?? []), rest]);
      this.earliestExpiry = Math.min(this.earliestExpiry, binding.expiresAt);
    }
    // A sweep the store cannot complete is done again by the next one.
    const sweepFailed = logBackgroundFailure(this.log, 'expired bindings sweep');
    this.sweepTimer = setInterval(() => void this.sweep().catch(sweepFailed), 5000).unref();
  }

  stop(): void {
    clearInterval(this.sweepTimer);
  }

  /**
   * Live bindings of an AOR, highest q first; with `device`, only that device's. Read-only: when all
   * of the AOR's bindings are live, as nearly always, this is the registrar's own list.
   */
  lookup(aor: string, device?: Device): readonly Binding[] {
    const bindings = this.table.get(aor);
    if (bindings === undefined) return NO_BINDINGS;
    const now = this.now();
    // Before the earliest expiry in the table, every binding is live: nothing to look at.
    if (device === undefined && (now < this.earliestExpiry || bindings.every((b) => b.expiresAt > now))) return bindings;
    return bindings.filter((b) => b.expiresAt > now && (!device || isOfDevice(b, device)));
  }

  /**
   * What a local request-URI reaches: a GRUU (`gr` parameter) one device, any other URI every device
   * of its AOR; undefined for a temporary GRUU Parley did not issue.
   */
  destinationOf(uri: SipUri): Destination | undefined {
    if (!uri.params.has('gr')) return { aor: aorOf(uri) };
    return this.gruus.read(uri);
  }

  /**
   * The reachable flows of each device among `bindings`, one list per device, lowest reg-id first:
   * a device is reached over one flow at a time, the next when that one fails (RFC 5626 §5.3).
   */
  flowsByDevice(bindings: readonly Binding[]): Flow[][] {
    // One binding (a room member's phone, most often) is one device with one flow: nothing to group.
    if (bindings.length === 1) {
      const peer = this.targetOf(bindings[0]!);
      return peer ? [[{ binding: bindings[0]!, peer }]] : [];
    }
    const devices = new Map<string, Flow[]>();
    for (const binding of bindings) {
      const peer = this.targetOf(binding);
      if (!peer) continue;
      const key = deviceKey(binding);
      const flows = devices.get(key);
      if (flows) flows.push({ binding, peer });
      else devices.set(key, [{ binding, peer }]);
    }
    for (const flows of devices.values()) if (flows.length > 1) flows.sort((a, b) => (a.binding.regId ?? 0) - (b.binding.regId ?? 0));
    return [...devices.values()];
  }

  /** Has `recogniser` tell which device a contact registering from a new address was, before its bindings are written. */
  recogniseDevicesWith(recogniser: DeviceRecogniser): void {
    this.recogniser = recogniser;
  }

  /** Whether a binding's device left it: it was registered over a stream connection that is closed (or was, before a restart). */
  isGone(binding: Binding): boolean {
    return RELIABLE[binding.source.proto] && !(binding.connectionId && this.isConnected(binding.connectionId));
  }

  get aorCount(): number {
    return this.table.size;
  }

  isKnown(aor: string): Promise<boolean> {
    return this.table.has(aor) ? Promise.resolve(true) : this.store.isKnown(aor);
  }

  /** Where to send a request for a binding, or undefined when it cannot be reached now. */
  targetOf(binding: Pick<Binding, 'source' | 'connectionId' | 'contact'> & Partial<Pick<Binding, 'regId' | 'path'>>): Peer | undefined {
    const source = binding.source;
    if (source.proto === 'udp') return source;
    if (binding.connectionId && this.isConnected(binding.connectionId)) return { ...source, connectionId: binding.connectionId };
    if (diesWithConnection(binding)) return undefined;
    // The client's connection is gone: a stream contact is reached where its Contact says it
    // listens, or behind an edge proxy where the first hop of its Path does.
    try {
      const uri = parseUri(binding.path ? parseNameAddr(splitList(binding.path)[0]!).uri : binding.contact);
      return { proto: source.proto, host: uri.host.replace(/^\[|\]$/g, ''), port: uri.port ?? (source.proto === 'tls' ? 5061 : 5060) };
    } catch {
      return undefined;
    }
  }

  /**
   * Drops the bindings that lived on a connection that closed (WebSocket, outbound flows): such a
   * contact can never be reached again, and the device's other flows, if any, take over.
   */
  connectionClosed(connectionId: string): void {
    const aors = this.aorsByConnection.get(connectionId);
    if (!aors) return;
    this.aorsByConnection.delete(connectionId);
    const dead = (b: Binding) => b.connectionId === connectionId && diesWithConnection(b);
    const failed = logBackgroundFailure(this.log, 'dropping the bindings of a closed connection');
    // Not dropped, such a binding is only useless: unreachable (targetOf), it expires in time.
    for (const aor of aors) this.dropWhere(aor, dead).catch(failed);
  }

  /** Drops `dropped` from the AOR's bindings (a device found to be one that registered since from a new address), after the REGISTERs under way; one refreshed since stays. */
  drop(aor: string, dropped: readonly Binding[]): Promise<void> {
    return this.dropWhere(aor, (b) => dropped.includes(b));
  }

  /**
   * Drops the AOR's bindings that are `gone`, once the REGISTERs of the AOR under way are stored:
   * from the list they leave, so that a binding one of them added while the drop waited stays.
   */
  private dropWhere(aor: string, gone: (binding: Binding) => boolean): Promise<void> {
    return this.serialise(aor, async () => {
      const bindings = this.table.get(aor);
      if (!bindings?.some(gone)) return;
      await this.commit(aor, bindings.filter((b) => !gone(b)));
    });
  }

  handle(request: IncomingRequest, aor: string): Promise<void> {
    return this.serialise(aor, () => this.process(request, aor));
  }

  /** Runs `work` on the AOR's bindings once what was asked for them before ended. */
  private serialise(aor: string, work: () => Promise<void>): Promise<void> {
    const previous = this.queues.get(aor);
    // Nothing queued for the AOR, as nearly always: no hop through a resolved promise first.
    const next = previous ? previous.then(work) : work();
    // Whatever the outcome, the next REGISTER of the AOR may go; the last one settled leaves no entry.
    const settled: Promise<void> = next.then(
      () => this.dequeue(aor, settled),
      () => this.dequeue(aor, settled),
    );
    this.queues.set(aor, settled);
    return next;
  }

  private dequeue(aor: string, settled: Promise<void>): void {
    if (this.queues.get(aor) === settled) this.queues.delete(aor);
  }

  private process(request: IncomingRequest, aor: string): Promise<void> {
    const outcome = this.evaluate(request, aor);
    if (!('bindings' in outcome)) {
      request.reply(outcome.status, outcome.reason, { headers: outcome.headers });
      return ANSWERED;
    }
    const { bindings, outbound } = outcome;
    const recognised = outcome.fresh && this.recogniser?.(aor, outcome.fresh, outcome.current);
    if (!recognised) return this.register(request, aor, bindings, outbound);
    return recognised.then((replaced) =>
      this.register(request, aor, replaced.length > 0 ? bindings.filter((binding) => !replaced.includes(binding)) : bindings, outbound),
    );
  }

  /**
   * Commits the AOR's bindings, then answers the REGISTER with them. Promises chained rather than
   * async functions awaiting each other: every REGISTER goes through here, and each async frame
   * suspended costs it an object of its registers and a promise more.
   */
  private register(request: IncomingRequest, aor: string, bindings: readonly Binding[], outbound: boolean): Promise<void> {
    return this.commit(aor, bindings).then(() => {
      request.reply(200, 'OK', { headers: this.okHeaders(aor, bindings, request.message, outbound) });
      if (bindings.length > 0) this.emit('registered', aor, bindings);
    });
  }

  /** Writes the AOR's bindings to the store, then makes them the table's. */
  private commit(aor: string, bindings: readonly Binding[]): Promise<void> {
    // An AOR with bindings has been marked known by the commit that stored them.
    const before = this.table.has(aor) ? 'bound' : this.storedOnly.has(aor) ? undefined : 'unbound';
    return this.store.replace(aor, bindings, before).then(
      () => {
        // Rows of the AOR other than these, if it had any, were deleted with the write.
        this.storedOnly.delete(aor);
        this.stored(aor, bindings);
      },
      (error: unknown) => {
        // It may have been committed before it failed.
        for (const binding of bindings) this.mayBeStored(aor, binding.expiresAt);
        throw error;
      },
    );
  }

  /** The store may hold a row of the AOR, expiring at `expiresAt`, that the table does not. */
  private mayBeStored(aor: string, expiresAt: number): void {
    const latest = this.storedOnly.get(aor);
    if (latest === undefined || latest < expiresAt) this.storedOnly.set(aor, expiresAt);
  }

  /** Makes the AOR's bindings those just stored. */
  private stored(aor: string, bindings: readonly Binding[]): void {
    if (bindings.length === 0) {
      const had = this.table.delete(aor);
      if (had) this.emit('unregistered', aor);
    } else {
      this.table.set(aor, bindings);
      for (const binding of bindings) {
        if (binding.expiresAt < this.earliestExpiry) this.earliestExpiry = binding.expiresAt;
        // One whose connection closed while the store was written is left unreachable, not indexed for good.
        if (!binding.connectionId || !diesWithConnection(binding) || !this.isConnected(binding.connectionId)) continue;
        const aors = this.aorsByConnection.get(binding.connectionId);
        if (aors) aors.add(aor);
        else this.aorsByConnection.set(binding.connectionId, new Set([aor]));
      }
    }
  }

  /**
   * The 200's headers: every binding, with its GRUUs when the client supports them (RFC 5627 §5.1);
   * the extensions the client named that Parley supports; Require: outbound when its flows were
   * taken as such (RFC 5626 §6); the Path it registered (RFC 3327 §5.3).
   */
  private okHeaders(aor: string, bindings: readonly Binding[], message: SipMessage, outbound: boolean): Header[] {
    const now = this.now();
    const supported = message.has('supported') ? message.getAll('supported').map((tag) => tag.toLowerCase()) : [];
    const gruu = supported.includes('gruu');
    const headers: Header[] = bindings.map((b) => {
      let value = `<${b.contact}>;expires=${Math.max(0, Math.round((b.expiresAt - now) / 1000))}${b.q !== 1 ? `;q=${b.q}` : ''}`;
      if (b.instance) {
        value += `;+sip.instance=${b.instance}${b.regId !== undefined ? `;reg-id=${b.regId}` : ''}`;
        if (gruu) {
          const instance = instanceUrn(b.instance);
          value += `;pub-gruu="${this.gruus.publicGruu(aor, instance)}";temp-gruu="${this.gruus.temporaryGruu(aor, instance, b.callId)}"`;
        }
      }
      return { name: 'contact', value };
    });
    headers.push({ name: 'date', value: this.dateText(now) });
    if (supported.length === 0) return headers;
    const extensions = EXTENSIONS.filter((tag) => supported.includes(tag));
    if (extensions.length > 0) headers.push({ name: 'supported', value: extensions.join(', ') });
    if (outbound && supported.includes('outbound')) headers.push({ name: 'require', value: 'outbound' });
    if (supported.includes('path') && message.has('path')) headers.push({ name: 'path', value: message.getAll('path').join(', ') });
    return headers;
  }

  /** The Date of a 200 at `now`, written once a second rather than for each REGISTER. */
  private dateText(now: number): string {
    const second = Math.floor(now / 1000);
    if (second !== this.lastDate.second) this.lastDate = { second, text: new Date(second * 1000).toUTCString() };
    return this.lastDate.text;
  }

  /**
   * Works out the new binding list, or the error response; changes nothing. `current` is the AOR's
   * live bindings it started from, `fresh` the ones without +sip.instance of contacts not bound before
   * (devices that may have come back from a new address).
   */
  private evaluate(
    request: IncomingRequest,
    aor: string,
  ): Outcome | { bindings: readonly Binding[]; outbound: boolean; fresh?: Binding[]; current: readonly Binding[] } {
    const message = request.message;
    const now = this.now();
    const current = this.lookup(aor);
    const contactValues = message.getAll('contact');
    const expiresHeader = message.get('expires');
    const headerExpires = expiresHeader === undefined ? undefined : parseExpires(expiresHeader);
    if (expiresHeader !== undefined && headerExpires === undefined) return { status: 400, reason: 'Bad Expires header' };
    if (contactValues.length === 0) return { bindings: current, outbound: false, current };
    const callId = message.callId;
    const cseq = message.cseq.seq;

    if (contactValues.length === 1 ? contactValues[0] === '*' : contactValues.includes('*')) {
      if (contactValues.length !== 1 || headerExpires !== 0) return { status: 400, reason: 'Contact "*" needs Expires: 0 and no other contact' };
      return { bindings: [], outbound: false, current };
    }

    let contacts: NameAddr[];
    try {
      contacts = message.contacts;
      for (const c of contacts) {
        const uri = parseUri(c.uri);
        // RFC 5627 §5.1: a GRUU names a device already; registering it as one's contact would loop.
        if (uri.params.has('gr') && aor.endsWith(`@${uri.host}`)) return { status: 403, reason: 'Forbidden (a GRUU cannot be registered as a contact)' };
      }
    } catch (error) {
      return { status: 400, reason: `Bad Contact: ${(error as Error).message}` };
    }
    // The new list, one binding per contact, a contact's latest in the place it was set last. Few
    // bindings (maxContacts at most): a look through them costs less than a map of them.
    const next = current.slice();
    let outbound = false;
    let fresh: Binding[] | undefined;
    for (const contact of contacts) {
      const param = contact.params.get('expires');
      const asked = param !== undefined && param !== null ? parseExpires(param) : (headerExpires ?? this.options.defaultExpires);
      if (asked === undefined) return { status: 400, reason: 'Bad expires parameter' };
      const regId = contact.params.get('reg-id');
      if (regId !== undefined && (regId === null || !/^[0-9]{1,10}$/.test(regId))) return { status: 400, reason: 'Bad reg-id parameter' };
      const instance = contact.params.get('+sip.instance');
      if (regId !== undefined && instance) {
        if (!firstHopSupportsOutbound(message)) return { status: 439, reason: 'First Hop Lacks Outbound Support' };
        outbound = true;
      }
      // Compared with the bindings from before this request: a contact listed twice in it is one
      // binding, the later listing winning, not an out-of-order refresh.
      const urn = instance ? instanceUrn(instance) : undefined;
      const flow = regId ? Number(regId) : undefined;
      let previous: Binding | undefined;
      for (const existing of current) {
        const sameContact = existing.contact === contact.uri;
        if (sameContact) previous = existing;
        else if (urn === undefined || !isOfFlow(existing, urn, flow)) continue;
        if (existing.callId === callId && existing.cseq >= cseq) return { status: 500, reason: 'Out of order CSeq for this Call-ID' };
        removeContact(next, existing.contact);
      }
      removeContact(next, contact.uri);
      if (asked === 0) continue;
      if (asked < this.options.minExpires) {
        return { status: 423, headers: [{ name: 'min-expires', value: String(this.options.minExpires) }] };
      }
      const expires = Math.min(asked, this.options.maxExpires);
      const binding = this.bindingFor(request, aor, contact, expires, now);
      next.push(binding);
      if (!previous && !binding.instance) (fresh ??= []).push(binding);
    }
    if (next.length > this.options.maxContacts) {
      return { status: 403, reason: `Too many contacts (at most ${this.options.maxContacts})` };
    }
    if (next.length > 1) next.sort(byPreference);
    // The table keeps the list for as long as the AOR is registered: an exact copy, not the array
    // that grew by push, which V8 gave room for 16 more (128 bytes per registered AOR).
    return { bindings: next.slice(), outbound, fresh, current };
  }

  private bindingFor(request: IncomingRequest, aor: string, contact: NameAddr, expires: number, now: number): Binding {
    const message = request.message;
    const qText = contact.params.get('q');
    const q = qText ? Math.min(1, Math.max(0, Number(qText) || 0)) : 1;
    const instance = contact.params.get('+sip.instance');
    const regId = contact.params.get('reg-id');
    const path = message.has('path') ? message.getAll('path') : undefined;
    return {
      aor,
      contact: ownString(contact.uri),
      expiresAt: now + expires * 1000,
      q,
      callId: ownString(message.callId),
      cseq: message.cseq.seq,
      source: { proto: request.source.proto, host: request.source.host, port: request.source.port },
      connectionId: RELIABLE[request.source.proto] ? request.source.connectionId : undefined,
      instance: ownString(instance ?? undefined),
      regId: regId && instance ? Number(regId) : undefined,
      userAgent: ownString(message.get('user-agent')),
      path: path?.length ? ownString(path.join(', ')) : undefined,
      updatedAt: now,
    };
  }

  private async sweep(): Promise<void> {
    const now = this.now();
    if (now >= this.earliestExpiry) this.dropExpired(now);
    // Every time: the store may hold rows the table does not (those left out at start).
    await this.store.removeExpired(now);
    for (const [aor, expiresAt] of this.storedOnly) if (expiresAt <= now) this.storedOnly.delete(aor);
  }

  /** Drops the expired bindings from the table, and works out when the next one expires. */
  private dropExpired(now: number): void {
    let earliest = Infinity;
    // forEach, not for...of: no [aor, bindings] pair is made for each of the AORs.
    this.table.forEach((bindings, aor) => {
      let live = 0;
      for (const binding of bindings) {
        if (binding.expiresAt <= now) continue;
        live++;
        if (binding.expiresAt < earliest) earliest = binding.expiresAt;
      }
      // Most lists have nothing expired: they are left as they are rather than copied every sweep.
      if (live === bindings.length) return;
      this.emit('expired', aor, bindings.filter((b) => b.expiresAt <= now));
      if (live === 0) {
        this.table.delete(aor);
        this.emit('unregistered', aor);
      } else this.table.set(aor, bindings.filter((b) => b.expiresAt > now));
    });
    this.earliestExpiry = earliest;
  }
}

function parseExpires(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^[0-9]{1,10}$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/**
 * Whether a binding is of the device a contact comes from, which it replaces even when its URI
 * changed (a new address): with a reg-id (`flow`), that flow of the instance and a binding of it
 * without flows (RFC 5626 §6); without, every binding of the instance (RFC 5627 §5.1: one binding per instance).
 */
function isOfFlow(binding: Binding, urn: string, flow: number | undefined): boolean {
  return !!binding.instance && instanceUrn(binding.instance) === urn && (flow === undefined || binding.regId === undefined || binding.regId === flow);
}

/** Takes the binding of `contact` out of `bindings`, if there is one (there is at most one). */
function removeContact(bindings: Binding[], contact: string): void {
  for (let i = 0; i < bindings.length; i++) {
    if (bindings[i]!.contact !== contact) continue;
    bindings.splice(i, 1);
    return;
  }
}

/** Highest q first. */
const byPreference = (a: Binding, b: Binding) => b.q - a.q;

function isOfDevice(binding: Binding, device: Device): boolean {
  if (!binding.instance || instanceUrn(binding.instance) !== device.instance) return false;
  return device.callIdDigest === undefined || callIdDigest(binding.callId) === device.callIdDigest;
}

/**
 * RFC 5626 §6: flows are kept by the first hop, so a REGISTER that did not come straight from the
 * client (more than one Via) needs that hop's `ob` in the bottom Path entry, which it added first.
 */
function firstHopSupportsOutbound(message: SipMessage): boolean {
  if (message.vias.length === 1) return true;
  const path = message.getAll('path');
  if (path.length === 0) return false;
  try {
    return parseUri(parseNameAddr(path[path.length - 1]!).uri).params.has('ob');
  } catch {
    return false;
  }
}

/**
 * Whether a binding can be reached only over the stream connection it registered on: a WebSocket
 * client, or an outbound flow (reg-id, or `ob` in its Contact) straight from the client (no Path).
 * Such a binding is unreachable once that connection closes, and does not outlive a restart.
 */
function diesWithConnection(binding: Pick<Binding, 'source' | 'contact'> & Partial<Pick<Binding, 'regId' | 'path'>>): boolean {
  const proto = binding.source.proto;
  if (proto === 'ws' || proto === 'wss') return true;
  if (!RELIABLE[proto] || binding.path) return false;
  if (binding.regId !== undefined) return true;
  try {
    return parseUri(binding.contact).params.has('ob');
  } catch {
    return false;
  }
}

