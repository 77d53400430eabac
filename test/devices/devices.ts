// Devices of one user for the tests of GRUUs and outbound flows: REGISTERs with +sip.instance,
// reg-id and the option tags a phone names, and the GRUUs read from the 200.
import { randomUUID } from 'node:crypto';
import type { Header, SipMessage, TimerQueue } from '../../src/sip/index.js';
import type { TestUA } from '../support/ua.js';
import type { StreamUA } from '../support/stream-ua.js';

export interface DeviceRegistration {
  /** `urn:uuid:...`; a new one when absent. */
  instance?: string;
  regId?: number;
  supported?: string;
  expires?: number;
  /** Contact URI parameters after the UA's own contact, e.g. ";ob". */
  uriParams?: string;
  headers?: Header[];
}

/** The bodies of the MESSAGEs a UA received, in the order they came. */
export const messages = (ua: TestUA) => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());

export function newInstance(): string {
  return `urn:uuid:${randomUUID()}`;
}

/** A REGISTER of the UA's contact as a device, sent over the UA's own socket or connection. */
export function registerDevice(ua: TestUA | StreamUA, options: DeviceRegistration = {}): Promise<SipMessage> {
  let contact = `<${ua.contact}${options.uriParams ?? ''}>;+sip.instance="<${options.instance ?? newInstance()}>"`;
  if (options.regId !== undefined) contact += `;reg-id=${options.regId}`;
  const headers: Header[] = [
    { name: 'contact', value: contact },
    { name: 'expires', value: String(options.expires ?? 3600) },
    ...(options.headers ?? []),
  ];
  if (options.supported) headers.push({ name: 'supported', value: options.supported });
  return ua.send(ua.build('REGISTER', `sip:${ua.options.domain}`, { to: `<${ua.aor}>`, headers }));
}

/** The value of a quoted Contact parameter (pub-gruu, temp-gruu) of the 200's Contact for `contact`. */
export function contactParam(response: SipMessage, contact: string, name: string): string | undefined {
  const value = response.getAll('contact').find((c) => c.startsWith(`<${contact}`));
  return value && new RegExp(`;${name}="([^"]+)"`).exec(value)?.[1];
}

/**
 * Has `timers` (a server's SIP timers: its transactions, its devices' redeliveries) run on the wall
 * clock plus what the test moved it forward by: what is due past a back-off is seen without waiting for it.
 */
export function movableClock(timers: TimerQueue): { advance(ms: number): void } {
  let moved = 0;
  // Replaced while it shows the same time: what is scheduled keeps its due time.
  Object.assign(timers, { clock: { now: () => Date.now() + moved } });
  return {
    advance(ms: number) {
      moved += ms;
      timers.tick();
    },
  };
}
