// The registrar's RPC method: registrar.lookup, the live bindings of an address-of-record.
import { invalidParams, type RpcMethods } from '../plugin/index.js';
import { type SipUri, aorOf, formatPeer, parseUri, sipUriOfAor, splitAor } from '../sip/index.js';
import type { Binding } from '../store/index.js';
import type { Registrar } from './registrar.js';

export function registrarMethods(registrar: () => Registrar): RpcMethods {
  return {
    'registrar.lookup': {
      params: [{ name: 'aor' }],
      call: ({ aor }) => {
        const key = normalizeAor(aor!);
        return { aor: sipUriOfAor(key), bindings: registrar().lookup(key).map(describeBinding) };
      },
    },
  };
}

/**
 * "sip:alice@Example.com" or "alice@example.com" -> "alice@example.com", the registrar's key: a URI is
 * read as one (its escapes undone, its parameters left out, as the registrar reads a REGISTER's To);
 * a bare address is taken as written.
 */
export function normalizeAor(text: string, param = 'aor'): string {
  const refused = () => invalidParams(`"${param}" must be user@domain, got "${text.slice(0, 80)}"`);
  if (/^sips?:/i.test(text)) {
    let uri: SipUri;
    try {
      uri = parseUri(text);
    } catch {
      throw refused();
    }
    if (uri.user === '') throw refused();
    return aorOf(uri);
  }
  const { user, domain } = splitAor(text);
  if (user === '' || domain === '') throw refused();
  return `${user}@${domain.toLowerCase()}`;
}

/** What an operator needs to know about a binding; the registrar's bookkeeping (Call-ID, CSeq, connection id) stays inside. */
function describeBinding(binding: Binding) {
  return {
    contact: binding.contact,
    expires: Math.max(0, Math.round((binding.expiresAt - Date.now()) / 1000)),
    q: binding.q,
    source: formatPeer(binding.source),
    userAgent: binding.userAgent ?? null,
    instance: binding.instance ?? null,
    regId: binding.regId ?? null,
    path: binding.path ?? null,
  };
}
