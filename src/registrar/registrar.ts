// REGISTER handling (RFC 3261 §10.3) over an in-memory location table that is written through
// to the store before the 200 OK goes out, so an acknowledged registration survives a crash.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { logBackgroundFailure, type Binding, type LocationStore } from '../store/index.js';
import { type IncomingRequest, type Peer, RELIABLE, parseUri, type NameAddr } from '../sip/index.js';
import type { Header } from '../sip/message.js';

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
}

/** The registrar's answer to one REGISTER, before it is sent. */
type Outcome = { status: number; reason?: string; headers?: Header[] };

export class Registrar extends EventEmitter {
  private readonly table = new Map<string, Binding[]>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Serialises REGISTERs of one AOR so concurrent ones cannot lose each other's contacts. */
  private readonly queues = new Map<string, Promise<void>>();

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
    const now = this.now();
    for (const binding of await this.store.listAll()) {
      if (binding.expiresAt <= now || !reachableAfterRestart(binding)) continue;
      const { connectionId: _stale, ...rest } = binding;
      const list = this.table.get(binding.aor) ?? [];
      list.push(rest);
      this.table.set(binding.aor, list);
    }
    // A sweep the store cannot complete is done again by the next one.
    const sweepFailed = logBackgroundFailure(this.log, 'expired bindings sweep');
    this.sweepTimer = setInterval(() => void this.sweep().catch(sweepFailed), 5000).unref();
  }

  stop(): void {
    clearInterval(this.sweepTimer);
  }

  /** Live bindings of an AOR, highest q first. */
  lookup(aor: string): Binding[] {
    const now = this.now();
    return (this.table.get(aor) ?? []).filter((b) => b.expiresAt > now);
  }

  get aorCount(): number {
    return this.table.size;
  }

  isKnown(aor: string): Promise<boolean> {
    return this.table.has(aor) ? Promise.resolve(true) : this.store.isKnown(aor);
  }

  /** Where to send a request for a binding, or undefined when it cannot be reached now. */
  targetOf(binding: Pick<Binding, 'source' | 'connectionId' | 'contact'>): Peer | undefined {
    const source = binding.source;
    if (source.proto === 'udp') return source;
    if (binding.connectionId && this.isConnected(binding.connectionId)) return { ...source, connectionId: binding.connectionId };
    if (source.proto === 'ws' || source.proto === 'wss') return undefined;
    // The client's connection is gone: a stream contact is reached where its Contact says it listens.
    try {
      const uri = parseUri(binding.contact);
      return { proto: source.proto, host: uri.host.replace(/^\[|\]$/g, ''), port: uri.port ?? (source.proto === 'tls' ? 5061 : 5060) };
    } catch {
      return undefined;
    }
  }

  /** Drops WebSocket bindings whose connection closed: such a contact can never be reached again. */
  connectionClosed(connectionId: string): void {
    for (const [aor, bindings] of this.table) {
      if (!bindings.some((b) => b.connectionId === connectionId && isWebSocket(b))) continue;
      const kept = bindings.filter((b) => b.connectionId !== connectionId);
      // Not dropped, such a binding is only useless: unreachable (targetOf), it expires in time.
      void this.commit(aor, kept).catch(logBackgroundFailure(this.log, 'dropping the bindings of a closed WebSocket'));
    }
  }

  handle(request: IncomingRequest, aor: string): Promise<void> {
    const previous = this.queues.get(aor);
    // Nothing queued for the AOR, as nearly always: no hop through a resolved promise first.
    const next = previous ? previous.then(() => this.process(request, aor)) : this.process(request, aor);
    const settled = next.catch(() => {});
    this.queues.set(aor, settled);
    void settled.then(() => {
      if (this.queues.get(aor) === settled) this.queues.delete(aor);
    });
    return next;
  }

  private async process(request: IncomingRequest, aor: string): Promise<void> {
    const outcome = this.evaluate(request, aor);
    if ('bindings' in outcome) {
      await this.commit(aor, outcome.bindings);
      request.reply(200, 'OK', { headers: this.contactHeaders(aor) });
      if (outcome.bindings.length > 0) this.emit('registered', aor, outcome.bindings);
      return;
    }
    request.reply(outcome.status, outcome.reason, { headers: outcome.headers });
  }

  private async commit(aor: string, bindings: Binding[]): Promise<void> {
    await this.store.replace(aor, bindings);
    if (bindings.length === 0) {
      const had = this.table.delete(aor);
      if (had) this.emit('unregistered', aor);
    } else this.table.set(aor, bindings);
  }

  private contactHeaders(aor: string): Header[] {
    const now = this.now();
    const headers: Header[] = this.lookup(aor).map((b) => ({
      name: 'contact',
      value: `<${b.contact}>;expires=${Math.max(0, Math.round((b.expiresAt - now) / 1000))}${b.q !== 1 ? `;q=${b.q}` : ''}`,
    }));
    headers.push({ name: 'date', value: new Date(now).toUTCString() });
    return headers;
  }

  /** Works out the new binding list, or the error response; changes nothing. */
  private evaluate(request: IncomingRequest, aor: string): Outcome | { bindings: Binding[] } {
    const message = request.message;
    const now = this.now();
    const current = this.lookup(aor);
    const contactValues = message.getAll('contact');
    const expiresHeader = message.get('expires');
    const headerExpires = expiresHeader === undefined ? undefined : parseExpires(expiresHeader);
    if (expiresHeader !== undefined && headerExpires === undefined) return { status: 400, reason: 'Bad Expires header' };
    if (contactValues.length === 0) return { bindings: current };
    const callId = message.callId;
    const cseq = message.cseq.seq;

    if (contactValues.some((c) => c === '*')) {
      if (contactValues.length !== 1 || headerExpires !== 0) return { status: 400, reason: 'Contact "*" needs Expires: 0 and no other contact' };
      return { bindings: [] };
    }

    let contacts: NameAddr[];
    try {
      contacts = message.contacts;
      for (const c of contacts) parseUri(c.uri);
    } catch (error) {
      return { status: 400, reason: `Bad Contact: ${(error as Error).message}` };
    }
    const before = new Map(current.map((b) => [b.contact, b]));
    const next = new Map(before);
    for (const contact of contacts) {
      const param = contact.params.get('expires');
      const asked = param !== undefined && param !== null ? parseExpires(param) : (headerExpires ?? this.options.defaultExpires);
      if (asked === undefined) return { status: 400, reason: 'Bad expires parameter' };
      // Compared with the bindings from before this request: a contact listed twice in it is one
      // binding, the later listing winning, not an out-of-order refresh.
      const existing = before.get(contact.uri) ?? sameInstance(current, contact);
      if (existing && existing.callId === callId && existing.cseq >= cseq) {
        return { status: 500, reason: 'Out of order CSeq for this Call-ID' };
      }
      if (existing) next.delete(existing.contact);
      next.delete(contact.uri);
      if (asked === 0) continue;
      if (asked < this.options.minExpires) {
        return { status: 423, headers: [{ name: 'min-expires', value: String(this.options.minExpires) }] };
      }
      const expires = Math.min(asked, this.options.maxExpires);
      next.set(contact.uri, this.bindingFor(request, aor, contact, expires, now));
    }
    const bindings = [...next.values()].sort((a, b) => b.q - a.q);
    if (bindings.length > this.options.maxContacts) {
      return { status: 403, reason: `Too many contacts (at most ${this.options.maxContacts})` };
    }
    return { bindings };
  }

  private bindingFor(request: IncomingRequest, aor: string, contact: NameAddr, expires: number, now: number): Binding {
    const message = request.message;
    const qText = contact.params.get('q');
    const q = qText ? Math.min(1, Math.max(0, Number(qText) || 0)) : 1;
    const instance = contact.params.get('+sip.instance');
    const regId = contact.params.get('reg-id');
    const path = message.getAll('path');
    return {
      aor,
      contact: contact.uri,
      expiresAt: now + expires * 1000,
      q,
      callId: message.callId,
      cseq: message.cseq.seq,
      source: { proto: request.source.proto, host: request.source.host, port: request.source.port },
      connectionId: RELIABLE[request.source.proto] ? request.source.connectionId : undefined,
      instance: instance ?? undefined,
      regId: regId ? Number(regId) : undefined,
      userAgent: message.get('user-agent'),
      path: path.length ? path.join(', ') : undefined,
      updatedAt: now,
    };
  }

  private async sweep(): Promise<void> {
    const now = this.now();
    for (const [aor, bindings] of this.table) {
      // Most lists have nothing expired: they are left as they are rather than copied every sweep.
      if (bindings.every((b) => b.expiresAt > now)) continue;
      const live = bindings.filter((b) => b.expiresAt > now);
      if (live.length === 0) {
        this.table.delete(aor);
        this.emit('unregistered', aor);
      } else if (live.length !== bindings.length) this.table.set(aor, live);
    }
    await this.store.removeExpired(now);
  }
}

function parseExpires(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^[0-9]{1,10}$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/** RFC 5626: a contact from the same instance and reg-id replaces the old one even if its URI changed. */
function sameInstance(current: Binding[], contact: NameAddr): Binding | undefined {
  const instance = contact.params.get('+sip.instance');
  if (!instance) return undefined;
  const regId = contact.params.get('reg-id');
  return current.find((b) => b.instance === instance && String(b.regId ?? '') === (regId ?? ''));
}

/** A binding learnt over a WebSocket dies with its connection; others can still be reached. */
function reachableAfterRestart(binding: Binding): boolean {
  return !isWebSocket(binding);
}

function isWebSocket(binding: Binding): boolean {
  return binding.source.proto === 'ws' || binding.source.proto === 'wss';
}

