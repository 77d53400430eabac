// Presence with the test UA: PIDF bodies, PUBLISH, and the subscriber's side of a SUBSCRIBE dialog.
// NOTIFYs are read from what the UA recorded, so none can arrive before the test looks for it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Header, SipMessage } from '../../src/sip/index.js';
import { PIDF_TYPE, parsePidf, type PresenceState } from '../../src/presence/index.js';
import type { TestUA } from './ua.js';

export function pidf(entity: string, basic: 'open' | 'closed', extra: { note?: string; activities?: string[] } = {}): string {
  const note = extra.note === undefined ? '' : `<note>${extra.note}</note>`;
  const activities = extra.activities
    ? `<dm:person id="p1"><rpid:activities>${extra.activities.map((a) => `<rpid:${a}/>`).join('')}</rpid:activities></dm:person>`
    : '';
  return `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="${entity}">
  <tuple id="t1"><status><basic>${basic}</basic></status>${note}</tuple>${activities}
</presence>`;
}

export interface PublishOptions {
  /** The PIDF document; none for a refresh. */
  body?: string;
  etag?: string;
  expires?: number;
  event?: string;
  contentType?: string;
}

/** A PUBLISH of the UA's own presence. */
export function publish(ua: TestUA, options: PublishOptions): Promise<SipMessage> {
  const headers: Header[] = [{ name: 'event', value: options.event ?? 'presence' }];
  if (options.expires !== undefined) headers.push({ name: 'expires', value: String(options.expires) });
  if (options.etag !== undefined) headers.push({ name: 'sip-if-match', value: options.etag });
  return ua.send(ua.build('PUBLISH', ua.aor, { headers, body: options.body, contentType: options.contentType ?? PIDF_TYPE }));
}

/** The state a NOTIFY carries. */
export function stateIn(notify: SipMessage): PresenceState {
  return parsePidf(notify.body.toString('utf8'));
}

export interface SubscribeOptions {
  expires?: number;
  event?: string;
  headers?: Header[];
}

/** The subscriber's side of a SUBSCRIBE dialog. */
export class Watch {
  private consumed = 0;

  private constructor(
    readonly ua: TestUA,
    readonly callId: string,
    private readonly from: string,
    private readonly to: string,
    private readonly remoteTarget: string,
  ) {}

  /** Sends an initial SUBSCRIBE; `watch` is there when it was accepted. */
  static async subscribe(ua: TestUA, presentity: string, options: SubscribeOptions = {}): Promise<{ response: SipMessage; watch?: Watch }> {
    const request = ua.build('SUBSCRIBE', presentity, { headers: subscribeHeaders(ua, options) });
    const response = await ua.send(request);
    if (response.status >= 300) return { response };
    const remoteTarget = /<([^>]+)>/.exec(response.get('contact') ?? '')?.[1] ?? presentity;
    return { response, watch: new Watch(ua, request.callId, request.get('from')!, response.get('to')!, remoteTarget) };
  }

  /** An in-dialog SUBSCRIBE: a refresh, or the end of the subscription with 0. */
  refresh(expires: number): Promise<SipMessage> {
    const request = this.ua.build('SUBSCRIBE', this.remoteTarget, { to: this.to, headers: subscribeHeaders(this.ua, { expires }) });
    request.set('call-id', this.callId).set('from', this.from);
    return this.ua.send(request);
  }

  /** The next NOTIFY of this dialog, in the order they came. */
  async nextNotify(timeoutMs = 5000): Promise<SipMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.notifies().length <= this.consumed) {
      if (Date.now() > deadline) throw new Error(`${this.ua.aor}: no NOTIFY within ${timeoutMs} ms`);
      await sleep(20);
    }
    return this.notifies()[this.consumed++]!;
  }

  /** Resolves when no NOTIFY came for `ms`; rejects when one did. */
  async noNotifyWithin(ms: number): Promise<void> {
    await sleep(ms);
    const extra = this.notifies().slice(this.consumed);
    if (extra.length > 0) throw new Error(`unexpected NOTIFY: ${extra[0]!.get('subscription-state')} ${extra[0]!.body.toString()}`);
  }

  private notifies(): SipMessage[] {
    return this.ua.received.filter((m) => m.method === 'NOTIFY' && m.callId === this.callId);
  }
}

function subscribeHeaders(ua: TestUA, options: SubscribeOptions): Header[] {
  const headers: Header[] = [
    { name: 'event', value: options.event ?? 'presence' },
    { name: 'contact', value: `<${ua.contact}>` },
    ...(options.headers ?? []),
  ];
  if (options.expires !== undefined) headers.push({ name: 'expires', value: String(options.expires) });
  return headers;
}

/** Reads NOTIFYs of a watch until one states what `expected` says (intermediate ones are skipped). */
export async function notified(watch: Watch, expected: Partial<PresenceState>, timeoutMs = 8000): Promise<PresenceState> {
  const deadline = Date.now() + timeoutMs;
  const seen: PresenceState[] = [];
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no NOTIFY with ${JSON.stringify(expected)}; got ${JSON.stringify(seen)}`);
    let state: PresenceState;
    try {
      state = stateIn(await watch.nextNotify(left));
    } catch {
      throw new Error(`no NOTIFY with ${JSON.stringify(expected)}; got ${JSON.stringify(seen)}`);
    }
    seen.push(state);
    const matches = Object.entries(expected).every(([key, value]) => JSON.stringify(state[key as keyof PresenceState]) === JSON.stringify(value));
    if (matches) return state;
  }
}
