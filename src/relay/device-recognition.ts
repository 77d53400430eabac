// Recognition: which device a binding without +sip.instance is. A device registering from an address
// the user was not seen at is the one it was before when it matches a remembered device of the user
// with nothing but the port changed: the same User-Agent, and the same scheme, user, host and
// transport in its contact (clientOf). A client over TCP, TLS or a WebSocket comes back from a new
// local port with each connection, a softphone restarted from a new UDP port. Whether it is that
// device depends on how the old one is registered (stillRegistered): one gone is (it takes over,
// takeover.ts), one still registered over a stream connection that looks open may be (successors.ts),
// one still registered over UDP is another device until its binding expires (two phones of one model
// behind one NAT differ in nothing but the port).
import { deviceKey, isInstanceDevice, type Binding, type RememberedDevice } from '../store/index.js';
import { parseUri } from '../sip/index.js';

/** Of the remembered devices like a binding, those it is (gone) and those it may be (still registered). */
export interface Likeness {
  was: string[];
  mayBe: string[];
}

/**
 * The remembered devices (`known` of `remembered`, without +sip.instance) that differ from `binding`
 * in nothing but the port, told apart by whether they are `registered` (stillRegistered).
 */
export function likeness(binding: Binding, remembered: readonly RememberedDevice[], known: ReadonlySet<string>, registered: ReadonlySet<string>): Likeness {
  const client = clientOf(binding.contact, binding.userAgent);
  const was: string[] = [];
  const mayBe: string[] = [];
  if (client === undefined) return { was, mayBe };
  for (const d of remembered) {
    if (!known.has(d.device) || isInstanceDevice(d.device) || clientOf(d.contact, d.userAgent) !== client) continue;
    (registered.has(d.device) ? mayBe : was).push(d.device);
  }
  return { was, mayBe };
}

/**
 * The devices of `current` bindings that count as still registered, another device than one like
 * them at a new address until known otherwise: registered over UDP (two phones of one model behind
 * one NAT, each on its own port; a phone out of coverage a moment), or over a stream connection that
 * is open and took what was sent over it lately. Gone (`gone`): registered only over a closed
 * connection, or over one that did not take what was sent (it has deliveries waiting that could not be sent).
 */
export function stillRegistered(current: readonly Binding[], gone: (binding: Binding) => boolean): Set<string> {
  return new Set(current.filter((binding) => isDatagram(binding) || !gone(binding)).map(deviceKey));
}

/** Whether a binding was registered over UDP, where a new port tells nothing of which device it is. */
export function isDatagram(binding: Binding): boolean {
  return binding.source.proto === 'udp';
}

/**
 * What tells a client apart from the user's other devices without +sip.instance, the port left out:
 * its User-Agent, and its contact's scheme, user, host and transport. A web client over a WebSocket
 * makes up its contact's user and a `.invalid` host each time it starts (RFC 7118 §5): they tell
 * nothing, only its User-Agent does. Undefined for a contact that is no URI.
 */
function clientOf(contact: string, userAgent: string | undefined): string | undefined {
  try {
    const uri = parseUri(contact);
    const transport = uri.params.get('transport')?.toLowerCase() ?? 'udp';
    const madeUp = (transport === 'ws' || transport === 'wss') && uri.host.toLowerCase().endsWith('.invalid');
    return [userAgent ?? '', uri.scheme, madeUp ? '' : uri.user, madeUp ? '.invalid' : uri.host, transport].join('\n');
  } catch {
    return undefined;
  }
}
