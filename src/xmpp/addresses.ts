// Addresses across the gateway, in the two conventions it offers:
// - separator (the one of Kamailio's xmpp module): sip:romeo*xmpp.example@<gateway_domain> is
//   romeo@xmpp.example, and XMPP users write to alice*sip.example@<xmpp_domain> for sip:alice@sip.example;
// - rfc7247 (RFC 7247 §4-5): the same address on both sides, sip:romeo@x is romeo@x.
// Either way a SIP user part becomes a JID localpart through XEP-0106 escaping, since a localpart
// forbids characters (' / : & ...) a SIP user part may hold, and back through unescaping.
import { type SipUri, sipAddress } from '../sip/index.js';

export interface Jid {
  /** Localpart as it appears in the JID (escaped); '' for a domain JID. */
  local: string;
  domain: string;
  /** '' for a bare JID. */
  resource: string;
}

export interface AddressMapping {
  /** The XMPP user a SIP MESSAGE to `target` (a URI of the gateway domain) is for. */
  xmppRecipient(target: SipUri): Jid | undefined;
  /** The JID XMPP users see a SIP user as; undefined when the user has none. */
  xmppSender(sender: SipUri): Jid | undefined;
  /** The SIP URI an XMPP message to `recipient` (a JID of the XMPP domain) is for. */
  sipRecipient(recipient: Jid): string | undefined;
  /** The SIP URI SIP users see an XMPP user as. */
  sipSender(sender: Jid): string | undefined;
}

export interface AddressOptions {
  convention: 'separator' | 'rfc7247';
  separator: string;
  gatewayDomain: string;
  xmppDomain: string;
}

// XEP-0106 §4: the characters a localpart cannot hold, and "\" only where it would start an escape.
const ESCAPED = /[ "&'/:<>@]|\\(?=20|22|26|27|2f|3a|3c|3e|40|5c)/g;
const ESCAPE_SEQUENCE = /\\(20|22|26|27|2f|3a|3c|3e|40|5c)/g;
/** RFC 7622 §3.3: a localpart has at most 1023 octets; control characters are not allowed in any part. */
const MAX_LOCALPART = 1023;
const CONTROL = /[\x00-\x1f\x7f]/;
const DOMAIN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The JID localpart for `text` (XEP-0106 escaping), or undefined when no localpart can carry it. */
export function escapeLocal(text: string): string | undefined {
  // XEP-0106 §4.1: a localpart cannot begin or end with a space, escaped or not.
  if (text === '' || text.startsWith(' ') || text.endsWith(' ') || CONTROL.test(text)) return undefined;
  const local = text.replace(ESCAPED, (c) => `\\${c.charCodeAt(0).toString(16)}`);
  return Buffer.byteLength(local) <= MAX_LOCALPART ? local : undefined;
}

export function unescapeLocal(local: string): string {
  return local.replace(ESCAPE_SEQUENCE, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Splits a JID (RFC 7622 §3.1: the resource starts at the first "/", the localpart ends at the first "@"). */
export function parseJid(text: string): Jid | undefined {
  const slash = text.indexOf('/');
  const bare = slash < 0 ? text : text.slice(0, slash);
  const at = bare.indexOf('@');
  const local = at < 0 ? '' : bare.slice(0, at);
  const domain = bare.slice(at + 1).toLowerCase();
  if (!DOMAIN.test(domain) || (at >= 0 && local === '') || CONTROL.test(text)) return undefined;
  return { local, domain, resource: slash < 0 ? '' : text.slice(slash + 1) };
}

export function formatJid({ local, domain, resource }: Jid): string {
  return `${local ? `${local}@` : ''}${domain}${resource ? `/${resource}` : ''}`;
}

export function addressMapping(options: AddressOptions): AddressMapping {
  return options.convention === 'separator' ? separatorMapping(options) : directMapping(options);
}

function separatorMapping({ separator, gatewayDomain, xmppDomain }: AddressOptions): AddressMapping {
  /** "user<sep>domain" split at the last separator, as a domain never holds one. */
  const split = (text: string): { user: string; domain: string } | undefined => {
    const at = text.lastIndexOf(separator);
    const user = text.slice(0, at);
    const domain = text.slice(at + separator.length).toLowerCase();
    return at > 0 && DOMAIN.test(domain) ? { user, domain } : undefined;
  };
  return {
    xmppRecipient(target) {
      const parts = split(target.user);
      const local = parts && escapeLocal(parts.user);
      return local ? { local, domain: parts.domain, resource: '' } : undefined;
    },
    xmppSender(sender) {
      const local = sender.user ? escapeLocal(`${sender.user}${separator}${sender.host}`) : undefined;
      return local ? { local, domain: xmppDomain, resource: '' } : undefined;
    },
    sipRecipient(recipient) {
      const parts = split(unescapeLocal(recipient.local));
      return parts && sipAddress(parts.user, parts.domain);
    },
    sipSender(sender) {
      return sender.local ? sipAddress(`${unescapeLocal(sender.local)}${separator}${sender.domain}`, gatewayDomain) : undefined;
    },
  };
}

function directMapping({ xmppDomain }: AddressOptions): AddressMapping {
  return {
    xmppRecipient(target) {
      const local = escapeLocal(target.user);
      return local ? { local, domain: target.host, resource: '' } : undefined;
    },
    // The XMPP server accepts from a component only addresses of the component's own domain.
    xmppSender(sender) {
      const local = sender.host === xmppDomain ? escapeLocal(sender.user) : undefined;
      return local ? { local, domain: xmppDomain, resource: '' } : undefined;
    },
    sipRecipient(recipient) {
      return recipient.local ? sipAddress(unescapeLocal(recipient.local), recipient.domain) : undefined;
    },
    sipSender(sender) {
      return sender.local ? sipAddress(unescapeLocal(sender.local), sender.domain) : undefined;
    },
  };
}
