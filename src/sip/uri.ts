// SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), plus an opaque form for any other scheme.
import { isIPv4, isIPv6 } from 'node:net';
import { ownString } from '../util/own-string.js';

export interface SipUri {
  readonly scheme: string;
  /** Unescaped user part; '' when absent. For tel: the subscriber number. */
  readonly user: string;
  readonly password?: string;
  /** Lower-cased host; IPv6 references keep their brackets. '' for tel and opaque URIs. */
  readonly host: string;
  readonly port?: number;
  readonly params: ReadonlyMap<string, string | null>;
  readonly headers: ReadonlyMap<string, string>;
  /** Everything after "scheme:" for schemes Parley does not interpret. */
  readonly opaque?: string;
}

export class UriError extends Error {
  override name = 'UriError';
}

const USER_CHARS = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})*$/;
const PASSWORD_CHARS = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*$/;
const PARAM_CHARS = /^(?:[A-Za-z0-9\-_.!~*'()[\]/:&+$]|%[0-9A-Fa-f]{2})+$/;
/** Characters no URI holds (RFC 3986 §2): made once, as a literal in parseUriText would make a RegExp object per URI parsed. */
const ILLEGAL_IN_URI = /[\s<>"]/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;
/** What a URI without parameters or headers holds, as nearly every one: shared, as nothing changes a parsed URI. */
const NONE: ReadonlyMap<string, never> = new Map<string, never>();

export function unescapeUriPart(part: string): string {
  if (!part.includes('%')) return part;
  try {
    return decodeURIComponent(part);
  } catch {
    throw new UriError(`bad escape in "${part}"`);
  }
}

/** Longest URI accepted: bounds the work and the size of error messages an attacker can cause. */
export const MAX_URI_LENGTH = 8192;

/** URIs parsed lately, by their text: the same From, To and Request-URIs come in message after message. */
const recentUris = new Map<string, SipUri>();
const MAX_RECENT_URIS = 2048;
/** Longer URIs are parsed each time, so that the memo stays small. */
const MAX_REMEMBERED_URI_LENGTH = 256;

/**
 * Parses a URI; throws UriError naming what is wrong. A parsed URI is never changed (its maps are
 * read-only), so one parse of a text is shared by every message that carries it.
 */
export function parseUri(text: string): SipUri {
  let uri = recentUris.get(text);
  if (uri === undefined) {
    if (text.length > MAX_REMEMBERED_URI_LENGTH) return parseUriText(text);
    // Remembered in a copy of its own: a URI cut from a message would keep the whole message alive.
    const own = ownString(text);
    uri = parseUriText(own);
    if (recentUris.size >= MAX_RECENT_URIS) recentUris.clear();
    recentUris.set(own, uri);
  }
  return uri;
}

function parseUriText(text: string): SipUri {
  if (text.length > MAX_URI_LENGTH) throw new UriError(`URI longer than ${MAX_URI_LENGTH} characters`);
  const colon = text.indexOf(':');
  if (colon <= 0) throw new UriError(`no scheme in URI "${text}"`);
  const scheme = text.slice(0, colon).toLowerCase();
  if (!SCHEME.test(scheme)) throw new UriError(`bad URI scheme "${text.slice(0, colon)}"`);
  const rest = text.slice(colon + 1);
  if (ILLEGAL_IN_URI.test(rest)) throw new UriError(`illegal character in URI "${text}"`);
  if (scheme === 'sip' || scheme === 'sips') return parseSipRest(scheme, rest);
  if (scheme === 'tel') return parseTelRest(rest);
  return { scheme, user: '', host: '', params: NONE, headers: NONE, opaque: rest };
}

function parseSipRest(scheme: string, rest: string): SipUri {
  let user = '';
  let password: string | undefined;
  // The user part may hold '?' and ';' (RFC 3261 §25.1 "user-unreserved"), but '@' appears nowhere
  // after it, so the userinfo has to be cut off before looking for parameters and headers.
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const pw = userinfo.indexOf(':');
    const rawUser = pw >= 0 ? userinfo.slice(0, pw) : userinfo;
    if (rawUser === '') throw new UriError('empty user part before "@"');
    if (!USER_CHARS.test(rawUser)) throw new UriError(`illegal character in user part "${rawUser}"`);
    user = unescapeUriPart(rawUser);
    if (pw >= 0) {
      const rawPassword = userinfo.slice(pw + 1);
      if (!PASSWORD_CHARS.test(rawPassword)) throw new UriError('illegal character in password');
      password = unescapeUriPart(rawPassword);
    }
  }
  let headersPart = '';
  const question = rest.indexOf('?');
  if (question >= 0) {
    headersPart = rest.slice(question + 1);
    rest = rest.slice(0, question);
  }
  const semi = rest.indexOf(';');
  const hostport = semi >= 0 ? rest.slice(0, semi) : rest;
  const { host, port } = parseHostPort(hostport);
  const params = semi >= 0 ? parseUriParams(rest.slice(semi + 1)) : NONE;
  let headers: ReadonlyMap<string, string> = NONE;
  if (headersPart) {
    const parsed = (headers = new Map<string, string>());
    for (const pair of headersPart.split('&')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UriError(`bad URI header "${pair}"`);
      parsed.set(unescapeUriPart(pair.slice(0, eq)), unescapeUriPart(pair.slice(eq + 1)));
    }
  }
  return { scheme, user, password, host, port, params, headers };
}

function parseTelRest(rest: string): SipUri {
  const semi = rest.indexOf(';');
  const number = semi >= 0 ? rest.slice(0, semi) : rest;
  if (!/^\+?[0-9A-Fa-f*#().\-]+$/.test(number)) throw new UriError(`bad telephone number "${number}"`);
  const params = semi >= 0 ? parseUriParams(rest.slice(semi + 1)) : NONE;
  return { scheme: 'tel', user: number, host: '', params, headers: NONE };
}

export function parseHostPort(hostport: string): { host: string; port?: number } {
  let host = hostport;
  let portText: string | undefined;
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close < 0) throw new UriError(`unclosed IPv6 reference "${hostport}"`);
    host = hostport.slice(0, close + 1);
    const after = hostport.slice(close + 1);
    if (after) {
      if (!after.startsWith(':')) throw new UriError(`junk after IPv6 reference "${hostport}"`);
      portText = after.slice(1);
    }
  } else {
    const colon = hostport.indexOf(':');
    if (colon >= 0) {
      host = hostport.slice(0, colon);
      portText = hostport.slice(colon + 1);
    }
  }
  if (!isValidHost(host)) throw new UriError(`bad host "${host}"`);
  let port: number | undefined;
  if (portText !== undefined) {
    port = portNumber(portText);
    if (port === undefined) throw new UriError(`bad port "${portText}"`);
  }
  return { host: host.toLowerCase(), port };
}

/**
 * Whether `host` is something a socket can be pointed at: a DNS name (RFC 3261 §25.1 hostname: labels of
 * letters, digits and inner hyphens, the last one starting with a letter), an IPv4 address, or an IPv6
 * address in brackets. Wire values that later become destinations are checked with this where parsed.
 */
export function isValidHost(host: string): boolean {
  if (host.charCodeAt(0) === 91 /* [ */) return host.charCodeAt(host.length - 1) === 93 /* ] */ && isIPv6(host.slice(1, -1));
  return isIPv4(host) || isHostname(host);
}

function isHostname(host: string): boolean {
  // One trailing dot (a fully qualified name) is allowed.
  const end = host.charCodeAt(host.length - 1) === 46 /* . */ ? host.length - 1 : host.length;
  if (end === 0 || end > 253) return false;
  let labelStart = 0;
  for (let i = 0; i <= end; i++) {
    const c = i === end ? 46 : host.charCodeAt(i);
    if (c === 46) {
      const length = i - labelStart;
      if (length === 0 || length > 63 || host.charCodeAt(i - 1) === 45 /* - */) return false;
      if (i === end && !isLetter(host.charCodeAt(labelStart))) return false; // toplabel: IPv4-like names are not names
      labelStart = i + 1;
    } else if (c === 45) {
      if (i === labelStart) return false;
    } else if (!isLetter(c) && !isDigit(c)) return false;
  }
  return true;
}

export function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

export function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** A port a socket can use (1-65535) from its decimal text, or undefined. Port 0 means "any" to a socket: not a destination. */
export function portNumber(text: string): number | undefined {
  if (text.length === 0 || text.length > 5) return undefined;
  let port = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    port = port * 10 + (c - 48);
  }
  return port >= 1 && port <= 65535 ? port : undefined;
}

function parseUriParams(text: string): Map<string, string | null> {
  const params = new Map<string, string | null>();
  for (const param of text.split(';')) {
    if (param === '') throw new UriError('empty URI parameter');
    const eq = param.indexOf('=');
    const name = eq >= 0 ? param.slice(0, eq) : param;
    const value = eq >= 0 ? param.slice(eq + 1) : null;
    if (!PARAM_CHARS.test(name) || (value !== null && value !== '' && !PARAM_CHARS.test(value))) {
      throw new UriError(`bad URI parameter "${param}"`);
    }
    params.set(unescapeUriPart(name).toLowerCase(), value === null ? null : unescapeUriPart(value));
  }
  return params;
}

/** What a user part holds as it is (RFC 3261 §25.1 unreserved and user-unreserved), as a character class's contents. */
const USER_LITERAL = "A-Za-z0-9\\-_.!~*'()&=+$,;?/";
const USER_ESCAPE = new RegExp(`[^${USER_LITERAL}]`, 'g');
/** A user part that needs no escaping, as nearly every one: nothing to replace. */
const USER_AS_IS = new RegExp(`^[${USER_LITERAL}]*$`);
/** An AOR whose user part needs no escaping and whose domain holds no "@": its URI is the AOR behind "sip:". */
const AOR_AS_IS = new RegExp(`^[${USER_LITERAL}]+@[^@]*$`);
const PARAM_ESCAPE = /[^A-Za-z0-9\-_.!~*'()[\]/:&+$]/g;

export function escapeUser(user: string): string {
  return USER_AS_IS.test(user) ? user : user.replace(USER_ESCAPE, (c) => encodeURIComponent(c));
}

/** Escapes what a uri-parameter may not hold literally, so that formatting then parsing gives the value back. */
function escapeParam(text: string): string {
  return text.replace(PARAM_ESCAPE, (c) => encodeURIComponent(c));
}

export function formatUri(uri: SipUri): string {
  if (uri.opaque !== undefined) return `${uri.scheme}:${uri.opaque}`;
  let out = `${uri.scheme}:`;
  if (uri.scheme === 'tel') out += uri.user;
  else {
    if (uri.user) out += escapeUser(uri.user) + (uri.password !== undefined ? `:${encodeURIComponent(uri.password)}` : '') + '@';
    out += uri.host;
    if (uri.port !== undefined) out += `:${uri.port}`;
  }
  for (const [name, value] of uri.params) out += value === null ? `;${escapeParam(name)}` : `;${escapeParam(name)}=${escapeParam(value)}`;
  if (uri.headers.size) {
    out += '?' + [...uri.headers].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  }
  return out;
}

/** The address-of-record key of a URI: "user@host" (host lower-cased, user as is). */
export function aorOf(uri: SipUri): string {
  return uri.user ? `${uri.user}@${uri.host}` : uri.host;
}

/**
 * An AOR as aorOf writes it, cut into its user (unescaped, '' when it has none) and its domain: at
 * its last "@", as a user part may hold an escaped one.
 */
export function splitAor(aor: string): { user: string; domain: string } {
  const at = aor.lastIndexOf('@');
  return at < 0 ? { user: '', domain: aor } : { user: aor.slice(0, at), domain: aor.slice(at + 1) };
}

/**
 * An address as a person types one, in a command or an RPC call: a SIP or SIPS URI (read as sip:),
 * user@domain, or, given `defaultDomain`, a bare user of that domain. Throws UriError as parseUri does.
 */
export function parseTypedAddress(text: string, defaultDomain?: string): SipUri {
  if (/^sips?:/i.test(text)) return parseUri(text.replace(/^sips?:/i, 'sip:'));
  return parseUri(`sip:${text.includes('@') || defaultDomain === undefined ? text : `${text}@${defaultDomain}`}`);
}

/** The domain of an AOR as aorOf writes it. */
export function domainOfAor(aor: string): string {
  return aor.slice(aor.lastIndexOf('@') + 1);
}

/** The SIP URI of an AOR as aorOf writes it, its user escaped: the URI aorOf reads as that AOR again. */
export function sipUriOfAor(aor: string): string {
  // Each leg of a room post names its member this way: the usual AOR is not cut apart to be joined again.
  if (AOR_AS_IS.test(aor)) return `sip:${aor}`;
  const { user, domain } = splitAor(aor);
  return sipAddress(user, domain);
}

/** "sip:user@domain" of an unescaped `user` ('': none) and a domain, without port or parameters: the user escaped. */
export function sipAddress(user: string, domain: string): string {
  return user === '' ? `sip:${domain}` : `sip:${escapeUser(user)}@${domain}`;
}
