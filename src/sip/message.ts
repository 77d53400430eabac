// The SIP message model: start line, ordered header list, body. Structured header values are
// parsed on first use and cached, so the hot path pays only for what it reads.
import { randomFillSync } from 'node:crypto';
import {
  type CSeq, type NameAddr, type Via, LIST_HEADERS, displayName, formatVia, paramOf, parseCSeq, parseNameAddr, parseVia, safeHeaderValue, splitList,
} from './headers.js';
import { type SipUri, parseUri } from './uri.js';

export interface Header {
  /** Lower-cased long form ("v" is stored as "via"). */
  name: string;
  value: string;
}

const CRLF = '\r\n';

export class SipMessage {
  /** Request method; '' for a response. */
  method: string;
  /** Request-URI text; '' for a response. */
  uri: string;
  /** Status code; 0 for a request. */
  status: number;
  reason: string;
  headers: Header[];
  private bodyBytes: Buffer;
  /** The datagram the body is still to be cut from (bodyWithin), or undefined once it is cut or set. */
  private bodySource: Buffer | undefined = undefined;
  private bodyStart = 0;
  private bodyEnd = 0;
  // Structured values, parsed on first read and kept until their own header is edited.
  private cachedVias: Via[] | undefined = undefined;
  private cachedFrom: NameAddr | undefined = undefined;
  private cachedTo: NameAddr | undefined = undefined;
  private cachedCseq: CSeq | undefined = undefined;
  private cachedRequestUri: SipUri | undefined = undefined;
  private cachedFromUri: SipUri | undefined = undefined;
  private cachedToUri: SipUri | undefined = undefined;
  private cachedContacts: NameAddr[] | undefined = undefined;
  /**
   * Whether a header value may hold a character that may not go out (see the constructor): only the
   * parser leaves such values, as they were read, for the layers above to see. Headers copied from
   * this message into another are checked again only when this is set.
   */
  uncheckedValues = false;

  /**
   * Every way a value gets into a message but the parser (which leaves no CR or LF in a value) goes
   * through here or add/set/prepend, and there CR, LF and other controls become spaces: whatever a
   * feature builds a value from (a nick, a decoded user part, an XMPP name), it cannot start a header line.
   */
  constructor(init: { method?: string; uri?: string; status?: number; reason?: string; headers?: Header[]; body?: Buffer }) {
    this.method = init.method ?? '';
    // The parser starts from an empty message: nothing to check in what is not given.
    this.uri = init.uri === undefined ? '' : safeHeaderValue(init.uri);
    this.status = init.status ?? 0;
    this.reason = init.reason === undefined ? '' : safeHeaderValue(init.reason);
    this.headers = init.headers ? safeHeaders(init.headers) : [];
    this.bodyBytes = init.body ?? EMPTY;
  }

  get body(): Buffer {
    if (this.bodySource !== undefined) {
      this.bodyBytes = this.bodySource.subarray(this.bodyStart, this.bodyEnd);
      this.bodySource = undefined;
    }
    return this.bodyBytes;
  }

  set body(body: Buffer) {
    this.bodyBytes = body;
    this.bodySource = undefined;
  }

  /** Sets the body to the bytes of `source` from `start` to `end`, cut only when read: an answer that reads no body cuts none. */
  bodyWithin(source: Buffer, start: number, end: number): void {
    this.bodySource = source;
    this.bodyStart = start;
    this.bodyEnd = end;
  }

  get isRequest(): boolean {
    return this.status === 0;
  }

  get(name: string): string | undefined {
    for (const h of this.headers) if (h.name === name) return h.value;
    return undefined;
  }

  /** Every value of a header, list headers split at their commas. */
  getAll(name: string): string[] {
    return this.readAll(name, asIs);
  }

  /** What `read` makes of every value of a header, as getAll gives them: one list, not getAll's and another. */
  private readAll<T>(name: string, read: (value: string) => T): T[] {
    const out: T[] = [];
    const list = LIST_HEADERS.has(name);
    for (const h of this.headers) {
      if (h.name !== name) continue;
      // A list value without a comma, as nearly every one, is one value: no list is made for it.
      if (!list) out.push(read(h.value));
      else if (!h.value.includes(',')) out.push(read(h.value.trim()));
      else for (const value of splitList(h.value)) out.push(read(value));
    }
    return out;
  }

  has(name: string): boolean {
    return this.indexOf(name) >= 0;
  }

  /** Replaces every value of `name` with one value, in the place of the first. */
  set(name: string, value: string): this {
    const header = { name, value: safeHeaderValue(value) };
    const headers = this.headers;
    let at = -1;
    for (let i = 0; i < headers.length; i++) {
      if (headers[i]!.name !== name) continue;
      if (at < 0) {
        at = i;
        headers[i] = header;
      } else headers.splice(i--, 1);
    }
    if (at < 0) headers.push(header);
    this.forget(name);
    return this;
  }

  add(name: string, value: string): this {
    this.headers.push({ name, value: safeHeaderValue(value) });
    this.forget(name);
    return this;
  }

  /** Inserts before the first header of that name (or at the top): how a proxy adds its Via. */
  prepend(name: string, value: string): this {
    const at = this.indexOf(name);
    this.headers.splice(at < 0 ? 0 : at, 0, { name, value: safeHeaderValue(value) });
    this.forget(name);
    return this;
  }

  remove(name: string): this {
    const headers = this.headers;
    for (let i = headers.length - 1; i >= 0; i--) if (headers[i]!.name === name) headers.splice(i, 1);
    this.forget(name);
    return this;
  }

  /** Removes the first value of a list header (the topmost Via or Route). */
  removeFirstValue(name: string): this {
    const at = this.indexOf(name);
    if (at < 0) return this;
    const values = splitList(this.headers[at]!.value);
    if (values.length <= 1) this.headers.splice(at, 1);
    else this.headers[at] = { name, value: values.slice(1).join(', ') };
    this.forget(name);
    return this;
  }

  /**
   * Puts `via` in place of the topmost Via, as removing that value and prepending the new one would,
   * and keeps it as the parsed top Via: the one edit a proxy makes to every request costs no re-parse.
   * The message must have a Via. `via` is the message's own top Via with addresses added (received,
   * rport), and `text` its value when the caller has it as text already: made of the message's own
   * values and of addresses, it is checked only when those values may hold what may not go out
   * (uncheckedValues), not once more on every request.
   */
  replaceTopVia(via: Via, text = formatVia(via)): this {
    const at = this.indexOf('via');
    const value = this.uncheckedValues ? safeHeaderValue(text) : text;
    const line = this.headers[at]!.value;
    const values = line.includes(',') ? splitList(line) : undefined;
    if (!values || values.length <= 1) this.headers[at] = { name: 'via', value };
    else this.headers.splice(at, 1, { name: 'via', value }, { name: 'via', value: values.slice(1).join(', ') });
    if (this.cachedVias) this.cachedVias[0] = via;
    return this;
  }

  get vias(): Via[] {
    return (this.cachedVias ??= this.readAll('via', parseVia));
  }

  get via(): Via {
    const via = this.vias[0];
    if (!via) throw new Error('message has no Via');
    return via;
  }

  get from(): NameAddr {
    return (this.cachedFrom ??= parseNameAddr(this.required('from')));
  }

  get to(): NameAddr {
    return (this.cachedTo ??= parseNameAddr(this.required('to')));
  }

  /** The From URI, parsed. */
  get fromUri(): SipUri {
    return (this.cachedFromUri ??= parseUri(this.from.uri));
  }

  /** The To URI, parsed: the Request-URI's own parse when it is the same text, as it is on most requests to a user. */
  get toUri(): SipUri {
    if (this.cachedToUri !== undefined) return this.cachedToUri;
    const text = this.to.uri;
    return (this.cachedToUri = text === this.uri && this.isRequest ? this.requestUri : parseUri(text));
  }

  /** The Contact values but "*", parsed. */
  get contacts(): NameAddr[] {
    if (this.cachedContacts) return this.cachedContacts;
    const contacts: NameAddr[] = [];
    for (const value of this.getAll('contact')) if (value !== '*') contacts.push(parseNameAddr(value));
    return (this.cachedContacts = contacts);
  }

  get callId(): string {
    return this.required('call-id');
  }

  get cseq(): CSeq {
    return (this.cachedCseq ??= parseCSeq(this.required('cseq')));
  }

  get requestUri(): SipUri {
    return (this.cachedRequestUri ??= parseUri(this.uri));
  }

  /** Invalidates cached parses after the request-URI or headers were edited in place. */
  touch(): this {
    this.cachedVias = this.cachedFrom = this.cachedTo = this.cachedCseq = this.cachedRequestUri = undefined;
    this.cachedFromUri = this.cachedToUri = this.cachedContacts = undefined;
    return this;
  }

  /** Drops what was parsed from header `name`, which was just edited; the other headers' parses stay. */
  private forget(name: string): void {
    switch (name) {
      case 'via':
        this.cachedVias = undefined;
        break;
      case 'from':
        this.cachedFrom = this.cachedFromUri = undefined;
        break;
      case 'to':
        this.cachedTo = this.cachedToUri = undefined;
        break;
      case 'cseq':
        this.cachedCseq = undefined;
        break;
      case 'contact':
        this.cachedContacts = undefined;
        break;
    }
  }

  private indexOf(name: string): number {
    const headers = this.headers;
    for (let i = 0; i < headers.length; i++) if (headers[i]!.name === name) return i;
    return -1;
  }

  private required(name: string): string {
    const value = this.get(name);
    if (value === undefined) throw new Error(`message has no ${displayName(name)}`);
    return value;
  }

  /** The wire form. Content-Length is always written from the body. */
  toBuffer(): Buffer {
    const startLine = this.isRequest ? `${this.method} ${this.uri} SIP/2.0${CRLF}` : `SIP/2.0 ${this.status} ${this.reason}${CRLF}`;
    // The values are those made safe as they were set, or those the parser read (uncheckedValues), as they came.
    return wireForm(startLine + headerLines(this.headers, false), this.body);
  }

  toString(): string {
    return this.toBuffer().toString('utf8');
  }
}

export const EMPTY = Buffer.alloc(0);

const asIs = (value: string): string => value;

/**
 * A message's bytes from its start line and header lines (`head`, each line CRLF-ended) and its body:
 * Content-Length is written here, from the body, and the head is encoded straight into the result.
 */
export function wireForm(head: string, body: Buffer): Buffer {
  const fullHead = `${head}Content-Length: ${body.length}${CRLF}${CRLF}`;
  if (body.length === 0) return Buffer.from(fullHead, 'utf8');
  const headBytes = Buffer.byteLength(fullHead, 'utf8');
  const out = Buffer.allocUnsafe(headBytes + body.length);
  out.write(fullHead, 0, 'utf8');
  body.copy(out, headBytes);
  return out;
}

/** One header line, CRLF-ended, of a value made safe to send (see SipMessage's constructor). */
export function headerLine(name: string, value: string): string {
  return appendSafeLine('', name, value);
}

/**
 * The header lines, CRLF-ended, of `headers` but Content-Length (wireForm writes it from the body),
 * each value made safe to send first when `check` is set.
 */
export function headerLines(headers: readonly Header[], check: boolean): string {
  const append = check ? appendSafeLine : appendLine;
  let lines = '';
  for (const h of headers) if (h.name !== 'content-length') lines = append(lines, h.name, h.value);
  return lines;
}

/** `head` and a header line after it: where every header line of a message Parley writes is written. */
function appendLine(head: string, name: string, value: string): string {
  return head + fieldPrefix(name) + value + CRLF;
}

/** `head` and a header line after it, of a value made safe to send (see SipMessage's constructor). */
function appendSafeLine(head: string, name: string, value: string): string {
  return appendLine(head, name, safeHeaderValue(value));
}

const fieldPrefixes = new Map<string, string>();

/** "Via: " for "via": the start of a header line, made once per header name. */
function fieldPrefix(name: string): string {
  let prefix = fieldPrefixes.get(name);
  if (prefix === undefined) {
    prefix = `${displayName(name)}: `;
    if (fieldPrefixes.size < 1000) fieldPrefixes.set(name, prefix);
  }
  return prefix;
}

/**
 * A message made of header objects taken from `source` (a response's copied Via, From and To, a
 * forwarded request's headers): they are checked as the constructor would only when `source` may
 * hold values that may not go out, so a copy of a clean message costs no pass over its values.
 */
export function withHeadersOf(
  source: SipMessage,
  headers: Header[],
  init: { method?: string; uri?: string; status?: number; reason?: string; body?: Buffer },
): SipMessage {
  const message = new SipMessage(init);
  message.headers = source.uncheckedValues ? safeHeaders(headers) : headers;
  return message;
}

/**
 * The list a message is built with, an unsafe value replaced in place by a safe copy of its header
 * (the list becomes the message's own, as before; the Header objects, which may be shared, are not
 * changed). Nothing is allocated when every value is safe, as nearly always.
 */
function safeHeaders(headers: Header[]): Header[] {
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    const value = safeHeaderValue(header.value);
    if (value !== header.value) headers[i] = { name: header.name, value };
  }
  return headers;
}

/** Reason phrases of the responses Parley sends. */
export const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 200: 'OK', 202: 'Accepted', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 407: 'Proxy Authentication Required',
  408: 'Request Timeout', 413: 'Request Entity Too Large', 414: 'Request-URI Too Long', 415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme', 420: 'Bad Extension', 423: 'Interval Too Brief', 480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected', 483: 'Too Many Hops', 486: 'Busy Here',
  488: 'Not Acceptable Here', 489: 'Bad Event', 500: 'Server Internal Error', 501: 'Not Implemented',
  503: 'Service Unavailable', 504: 'Server Time-out', 505: 'Version Not Supported', 513: 'Message Too Large',
  600: 'Busy Everywhere', 603: 'Decline', 604: 'Does Not Exist Anywhere',
};

/** The two 32-bit hashes fnvHashes() leaves, read at once. */
const hashes = new Uint32Array(2);

/**
 * Two 32-bit FNV-1a-style hashes of `parts` into `hashes`: several parts hash as their concatenation
 * with "|" between, without it being made.
 */
function fnvHashes(parts: readonly string[]): Uint32Array {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let p = 0; p < parts.length; p++) {
    if (p > 0) {
      a = Math.imul(a ^ 0x7c, 0x01000193);
      b = Math.imul(b ^ 0x7c, 0x5bd1e995);
    }
    const text = parts[p]!;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
  }
  hashes[0] = a;
  hashes[1] = b;
  return hashes;
}

/**
 * A fast non-cryptographic hash as a token (fnvHashes in base 36): for marks that must tell requests
 * apart and be the same for the same request, not resist forgery; kept in this form where stored.
 */
export function fnv1a(...parts: string[]): string {
  const hash = fnvHashes(parts);
  return base36(hash[0]!) + base36(hash[1]!);
}

/** The same hashes as fnv1a in 16 hexadecimal digits: written from a table, less than half base 36's time. */
export function fnv1aHex(...parts: string[]): string {
  const hash = fnvHashes(parts);
  return hexOf(hash[0]!) + hexOf(hash[1]!);
}

const HEX_BYTES = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

function hexOf(u: number): string {
  return HEX_BYTES[u >>> 24]! + HEX_BYTES[(u >>> 16) & 0xff]! + HEX_BYTES[(u >>> 8) & 0xff]! + HEX_BYTES[u & 0xff]!;
}

const BASE36_DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * `u.toString(36)` for an unsigned 32-bit integer, in the same digits: V8 writes a number past the
 * small-integer range in another base by floating-point steps, several times slower, so the last
 * digit is split off to leave a small integer.
 */
function base36(u: number): string {
  if (u < 0x40000000) return u.toString(36);
  const rest = Math.floor(u / 36);
  return rest.toString(36) + BASE36_DIGITS[u - rest * 36]!;
}

/** Random bytes drawn a block at a time: one system call for hundreds of tags and branches. */
const randomPool = Buffer.allocUnsafe(4096);
let randomPoolUsed = randomPool.length;

/** `length` random lower-case hex digits: tags, branches, Call-IDs (at least 32 random bits, RFC 3261 §19.3, from 8 digits on). */
export function randomToken(length = 10): string {
  const bytes = (length + 1) >> 1;
  if (randomPoolUsed + bytes > randomPool.length) {
    randomFillSync(randomPool);
    randomPoolUsed = 0;
  }
  const token = randomPool.toString('hex', randomPoolUsed, randomPoolUsed + bytes);
  randomPoolUsed += bytes;
  return token.length === length ? token : token.slice(0, length);
}

/**
 * Builds a response to `request` (RFC 3261 §8.2.6), for a caller that needs it as a message (to add
 * to it, to hand it on): the headers responseHead writes, as a header list.
 */
export function createResponse(
  request: SipMessage,
  status: number,
  reason = REASONS[status] ?? 'Unknown',
  toTag?: string,
): SipMessage {
  return withHeadersOf(request, copyToResponse(request, status, toTag, [], pushHeader), { status, reason });
}

/**
 * The status line and header lines (each CRLF-ended) of a response to `request`, written straight
 * from the request's header values as the parser read them: no response message, no header list.
 * Lines the caller adds and wireForm() complete it; the bytes are those of createResponse's toBuffer().
 */
export function responseHead(request: SipMessage, status: number, reason?: string, toTag?: string): string {
  const append = request.uncheckedValues ? appendSafeLine : appendLine;
  // Only a phrase given is checked: REASONS' own are safe.
  const phrase = reason === undefined ? (REASONS[status] ?? 'Unknown') : safeHeaderValue(reason);
  return copyToResponse(request, status, toTag, `SIP/2.0 ${status} ${phrase}${CRLF}`, append);
}

function pushHeader(headers: Header[], name: string, value: string): Header[] {
  headers.push({ name, value });
  return headers;
}

/**
 * What a response to `request` copies from it (RFC 3261 §8.2.6), in the request's order: every Via,
 * the From, Call-ID and CSeq as they are, and the first To, tagged when it has no tag (toWithTag).
 * `write` takes each name and value after `into` and gives what the next one goes after: the one
 * choice of a response's headers, whether they are written straight as text (responseHead) or
 * listed for a message (createResponse).
 */
function copyToResponse<T>(request: SipMessage, status: number, toTag: string | undefined, into: T, write: (into: T, name: string, value: string) => T): T {
  const taggedTo = toWithTag(request, status, toTag);
  let toSeen = false;
  for (const h of request.headers) {
    const name = h.name;
    let value = h.value;
    if (name === 'to') {
      if (taggedTo !== undefined && !toSeen) value = taggedTo;
      toSeen = true;
    } else if (name !== 'via' && name !== 'from' && name !== 'call-id' && name !== 'cseq') continue;
    into = write(into, name, value);
  }
  return into;
}

/**
 * The To value a response carries in place of the request's first To, with a tag added (RFC 3261
 * §8.2.6.2): the last To's value, tagged; undefined when the request's To needs no tag (it has one,
 * it has no To, or the response is a 100).
 */
function toWithTag(request: SipMessage, status: number, toTag: string | undefined): string | undefined {
  if (status <= 100 || hasToTag(request)) return undefined;
  let toValue: string | undefined;
  for (const h of request.headers) if (h.name === 'to') toValue = h.value;
  if (toValue === undefined) return undefined;
  return `${toValue};tag=${toTag === undefined ? randomToken() : safeHeaderValue(toTag)}`;
}

/** Whether the To carries a tag header parameter; a "tag" URI parameter inside <> is not one. */
function hasToTag(request: SipMessage): boolean {
  try {
    return paramOf(request.to, 'tag') !== undefined;
  } catch {
    return false;
  }
}
