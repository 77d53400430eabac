// Parses SIP messages from datagrams and from stream framing (RFC 3261 §7, §18.3, §25).
// Errors carry a reason phrase for the 400 and, when enough was read, the message itself,
// so the transport layer can still answer instead of dropping.
import { COMPACT_FORMS, HeaderError, TOKEN, displayName, knownMethodAt, parseNameAddr, parseVia, safeHeaderValue } from './headers.js';
import { SipMessage } from './message.js';
import { spelledAt, spellings } from './spellings.js';
import { MAX_URI_LENGTH, type SipUri, UriError, parseUri } from './uri.js';

export class SipParseError extends Error {
  override name = 'SipParseError';
  /** Reason phrase for the 400 (or `status`) response. */
  readonly reason: string;
  constructor(
    reason: string,
    /** The message as far as it could be read; a response can be built when it has the core headers. */
    readonly partial?: SipMessage,
    readonly status = 400,
  ) {
    // The reason often quotes the input: what may not stand in a Reason-Phrase (RFC 3261 §25.1), and the
    // line separators some receivers end lines at, must not reach the response.
    const phrase = safeHeaderValue(reason);
    // What a peer sent is answered (400), never a fault of Parley's to trace: no stack is captured,
    // which was half the cost of refusing a datagram of garbage.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(phrase);
    Error.stackTraceLimit = stackTraceLimit;
    this.reason = phrase;
  }
}

const SEPARATOR = Buffer.from('\r\n\r\n');
const LF_SEPARATOR = Buffer.from('\n\n');
const CR = 0x0d;
const LF = 0x0a;
/** Bounds on what one message may make the parser do; past them it is refused rather than parsed. */
const MAX_HEADERS = 200;
const MAX_FIELD_LENGTH = 8192;

/** Finds where the header block ends: the index of the empty line and the length of its terminator. */
export function findHeadEnd(buf: Buffer, from = 0): { at: number; length: number } | undefined {
  const crlf = buf.indexOf(SEPARATOR, from);
  const lf = buf.indexOf(LF_SEPARATOR, from);
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { at: crlf, length: 4 };
  if (lf >= 0) return { at: lf, length: 2 };
  return undefined;
}

/**
 * Parses one whole message. On a datagram the body is what follows the head, cut to Content-Length
 * (RFC 3261 §18.3); a Content-Length larger than what arrived is an error.
 */
export function parseMessage(buf: Buffer): SipMessage {
  // Leading CRLFs (RFC 3261 §7.5) go before the end of the head is looked for, or they would be taken for it.
  let start = 0;
  while (buf[start] === CR || buf[start] === LF) start++;
  // One pass over the bytes finds where the head ends and what kinds of character it holds.
  const { end: headEnd, separator, kinds, everyCrBeforeLf } = scanHead(buf, start);
  const head = buf.toString('utf8', start, headEnd);
  const message = parseHead(head, (kinds & UNSAFE) !== 0 || (kinds !== PRINTABLE && UNSAFE_BESIDES_LINE_ENDS.test(head)), everyCrBeforeLf);
  // The body lies where the head ends and where Content-Length (if any) ends it; it is cut once read.
  const bodyStart = headEnd + separator;
  let bodyEnd = buf.length;
  const lengthText = message.get('content-length');
  if (lengthText !== undefined) {
    const length = parseContentLength(lengthText, message);
    if (length > bodyEnd - bodyStart) throw new SipParseError('Content-Length larger than the body received', message);
    bodyEnd = bodyStart + length;
  }
  if (bodyEnd > bodyStart) message.bodyWithin(buf, bodyStart, bodyEnd);
  validate(message);
  return message;
}

export function parseContentLength(text: string, message?: SipMessage): number {
  const length = decimalValue(text.trim(), 10);
  if (length < 0) throw new SipParseError('Bad Content-Length', message);
  return length;
}

/** The number `text` writes in decimal digits, at least one and at most `maxDigits`, and nothing else; else -1. */
function decimalValue(text: string, maxDigits = Infinity): number {
  if (text.length === 0 || text.length > maxDigits) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (!(digit >= 0 && digit <= 9)) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * Parses the start line and header lines; header values are unfolded and trimmed, nothing else is checked.
 * Lines end at LF or CRLF. They are read where they stand in `head`: a value is the one string cut from it.
 * `unchecked` and `everyCrBeforeLf`, when the caller knows them, spare looking through `head` for them.
 */
export function parseHead(head: string, unchecked = uncheckedText(head), everyCrBeforeLf = false): SipMessage {
  // RFC 3261 §7.5: leading CRLFs are ignored.
  let start = 0;
  for (let end = lineEnd(head, start); end.content === start && end.next <= head.length; end = lineEnd(head, start)) start = end.next;
  if (start >= head.length) throw new SipParseError('Empty message');
  const { content: startLineEnd, next: headersStart } = lineEnd(head, start);
  const message = new SipMessage({});
  // A start-line error is raised once the headers are read, so that it carries what a response needs.
  const startLineError = readStartLine(head.slice(start, startLineEnd), message);
  // Told once for the whole head rather than once per value; set before the headers are read, so
  // that a message that fails there is flagged too.
  message.uncheckedValues = unchecked;
  readHeaders(head, headersStart, message, everyCrBeforeLf);
  if (startLineError) throw startLineError;
  return message;
}

/**
 * Whether `head` holds a character safeHeaderValue would replace, other than CR and LF (the lines of a
 * head are made of those): then its values are SipMessage's uncheckedValues.
 */
function uncheckedText(head: string): boolean {
  return !PRINTABLE_ASCII.test(head) && UNSAFE_BESIDES_LINE_ENDS.test(head);
}

/** A head of printable ASCII lines, as nearly every one is: nothing in it for safeHeaderValue to replace. */
const PRINTABLE_ASCII = /^[\t\r\n\x20-\x7e]*$/;
/** What safeHeaderValue replaces, but CR and LF. */
const UNSAFE_BESIDES_LINE_ENDS = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]/;

const PRINTABLE = 0;
/** A control character safeHeaderValue replaces: in the decoded head too. */
const UNSAFE = 1;
/** A byte past ASCII: what it decodes to is told in the decoded head. */
const BEYOND_ASCII = 2;
/** A CR or an LF, which scanHead() looks at apart: lines end there, and the head. Not one of the kinds it ORs together. */
const LINE_END = 4;
/**
 * What each byte of a head is, for scanHead(): PRINTABLE_ASCII's characters but CR and LF, which are
 * LINE_END, UNSAFE_BESIDES_LINE_ENDS's below 0x80, and the rest.
 */
const BYTE_KINDS = new Uint8Array(256).map((_, c) =>
  c === CR || c === LF ? LINE_END : c >= 0x80 ? BEYOND_ASCII : PRINTABLE_ASCII.test(String.fromCharCode(c)) ? PRINTABLE : UNSAFE,
);

/** What scanHead() found, refilled by each call: read it at once. */
const headScan = { end: 0, separator: 0, kinds: PRINTABLE, everyCrBeforeLf: true };

/**
 * Where the head of the message in `buf` from `start` on ends: at the first CRLF CRLF or LF LF
 * (`end`, and the `separator`'s length), or at the end of `buf` with no separator; ORed, the
 * BYTE_KINDS of the bytes before it but CR and LF; and whether every CR of the head ends a line,
 * followed by an LF within the head (then no line holds a bare CR). One loop over the bytes, where a
 * search for each separator, a regular expression over the decoded head and a search for CRs line
 * by line took twice as long; a printable byte, nearly every one, costs it one look in BYTE_KINDS.
 */
function scanHead(buf: Buffer, start: number): typeof headScan {
  let kinds = PRINTABLE;
  const length = buf.length;
  let end = length;
  let separator = 0;
  let everyCrBeforeLf = true;
  // `start` holds no CR or LF (parseMessage skips them): no separator reaches before it.
  for (let i = start; i < length; i++) {
    const c = buf[i]!;
    const kind = BYTE_KINDS[c]!;
    if (kind === PRINTABLE) continue;
    if (kind !== LINE_END) {
      kinds |= kind;
      continue;
    }
    if (c === CR) {
      if (buf[i + 1] !== LF) everyCrBeforeLf = false;
      continue;
    }
    const before = buf[i - 1];
    if (before === LF) {
      end = i - 1;
      separator = 2;
      break;
    }
    if (before === CR && buf[i - 2] === LF && buf[i - 3] === CR) {
      end = i - 3;
      separator = 4;
      break;
    }
  }
  headScan.end = end;
  headScan.separator = separator;
  headScan.kinds = kinds;
  // An LF LF after a CR leaves that CR the head's last character, ending no line.
  headScan.everyCrBeforeLf = everyCrBeforeLf && buf[end - 1] !== CR;
  return headScan;
}

/**
 * Where the line at `start` ends: its content (a CR before the LF left out), and where the next line
 * starts (past the end of `text` after the last). One object, refilled by each call: read it at once.
 */
const lineBounds = { content: 0, next: 0 };
function lineEnd(text: string, start: number): { content: number; next: number } {
  const lf = text.indexOf('\n', start);
  if (lf < 0) {
    lineBounds.content = text.length;
    lineBounds.next = text.length + 1;
  } else {
    lineBounds.content = lf > start && text.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
    lineBounds.next = lf + 1;
  }
  return lineBounds;
}

const REQUEST_LINE_END = ' SIP/2.0';

/** Fills in method and URI, or status and reason; returns what is wrong with the line instead of throwing it. */
function readStartLine(line: string, message: SipMessage): SipParseError | undefined {
  if (line.includes('\r')) return new SipParseError('Bare CR in the start line', message);
  if (line.startsWith('SIP/')) {
    // "SIP/2.0 200 OK", as nearly every status line is (each member's answer to a room post), read without the regular expression.
    const usual = usualStatus(line);
    if (usual !== undefined) {
      message.status = usual;
      message.reason = line.length > STATUS_CODE_END ? line.slice(STATUS_CODE_END + 1) : '';
      return undefined;
    }
    // The code is exactly three digits and the space after it is required (RFC 3261 §25.1), so that
    // "SIP/2.0 4294967301 ..." is not read as a 429 (RFC 4475 §3.1.2.19); an absent reason is tolerated.
    // The reason may hold any UTF-8, U+2028 included, hence the s flag.
    const m = /^SIP\/([0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?$/s.exec(line);
    if (!m) return new SipParseError('Bad status line', message);
    if (m[1] !== '2.0') return new SipParseError('Version Not Supported', message, 505);
    const status = Number(m[2]);
    if (status < 100 || status > 699) return new SipParseError('Bad status code', message);
    message.status = status;
    message.reason = m[3] ?? '';
    return undefined;
  }
  // "METHOD URI SIP/2.0", as nearly every request line is, read without splitting it.
  const uriEnd = line.length - REQUEST_LINE_END.length;
  const space = line.indexOf(' ');
  if (space > 0 && line.endsWith(REQUEST_LINE_END) && line.indexOf(' ', space + 1) === uriEnd && uriEnd > space + 1) {
    const known = knownMethodAt(line, 0, space);
    const method = known ?? line.slice(0, space);
    if (known !== undefined || TOKEN.test(method)) {
      message.method = method;
      const uri = line.slice(space + 1, uriEnd);
      if (uri.length > MAX_URI_LENGTH) return new SipParseError('Request-URI Too Long', message, 414);
      message.uri = uri;
      return undefined;
    }
  }
  const parts = line.split(' ');
  // Taken before the rest of the line is checked, so that a malformed request line can still be answered.
  if (TOKEN.test(parts[0]!)) message.method = parts[0]!;
  if (parts.length !== 3) return new SipParseError('Malformed request line', message);
  const [, uri, version] = parts as [string, string, string];
  if (!message.method) return new SipParseError('Bad method', message);
  if (!/^SIP\/[0-9]+\.[0-9]+$/i.test(version)) return new SipParseError('Malformed request line', message);
  if (version.toUpperCase() !== 'SIP/2.0') return new SipParseError('Version Not Supported', message, 505);
  if (uri.length > MAX_URI_LENGTH) return new SipParseError('Request-URI Too Long', message, 414);
  message.uri = uri;
  return undefined;
}

/** Where the code of a status line "SIP/2.0 NNN ..." begins, and where it ends. */
const STATUS_CODE_START = 'SIP/2.0 '.length;
const STATUS_CODE_END = STATUS_CODE_START + 3;

/** The code of a status line "SIP/2.0 NNN" with a reason phrase after a space or none, NNN from 100 to 699; undefined for any other form. */
function usualStatus(line: string): number | undefined {
  if (!line.startsWith('SIP/2.0 ') || (line.length > STATUS_CODE_END && line.charCodeAt(STATUS_CODE_END) !== 32)) return undefined;
  let status = 0;
  for (let i = STATUS_CODE_START; i < STATUS_CODE_END; i++) {
    const digit = line.charCodeAt(i) - 48;
    if (!(digit >= 0 && digit <= 9)) return undefined;
    status = status * 10 + digit;
  }
  return status >= 100 && status <= 699 ? status : undefined;
}

/**
 * Appends the header fields of the lines of `head` from `start` on to `message`, unfolding
 * continuation lines. With `everyCrBeforeLf`, no line is looked through for a bare CR.
 */
function readHeaders(head: string, start: number, message: SipMessage, everyCrBeforeLf: boolean): void {
  // Where the next CR is, looked for again only once passed: a head of LF-ended lines is not scanned once per line.
  let cr = everyCrBeforeLf ? -1 : head.indexOf('\r', start);
  while (start <= head.length) {
    const line = lineEnd(head, start);
    const content = line.content;
    let next = line.next;
    // Folded lines are joined into a string of their own; the others, nearly all, are read in place.
    let folded: string | undefined;
    while (next < head.length && (head.charCodeAt(next) === 32 || head.charCodeAt(next) === 9)) {
      folded ??= head.slice(start, content);
      const continuation = lineEnd(head, next);
      folded += ' ' + trimWhitespace(head, next, continuation.content);
      next = continuation.next;
    }
    if (folded !== undefined) readField(folded, 0, folded.length, folded.includes('\r'), message);
    else if (content > start) {
      if (cr >= 0 && cr < start) cr = head.indexOf('\r', start);
      readField(head, start, content, cr >= start && cr < content, message);
    }
    start = next;
  }
}

/** Appends the header field of `text` from `start` to `end` to `message`. */
function readField(text: string, start: number, end: number, hasCr: boolean, message: SipMessage): void {
  const headers = message.headers;
  // Some receivers end lines at a lone CR: passed on, it would inject a header field.
  if (hasCr) throw new SipParseError('Bare CR in a header field', message);
  if (headers.length === MAX_HEADERS) throw new SipParseError(`More than ${MAX_HEADERS} header fields`, message);
  const colon = text.indexOf(':', start);
  if (colon <= start || colon >= end) throw new SipParseError(`Malformed header line "${truncate(text.slice(start, end))}"`, message);
  let name = spelledAt(USUAL_NAMES, text, start, colon);
  if (name === undefined) {
    const rawName = text.slice(start, colon).trimEnd();
    name = headerName(rawName);
    if (name === undefined) throw new SipParseError(`Bad header name "${truncate(rawName)}"`, message);
  }
  const value = trimWhitespace(text, colon + 1, end);
  if (value.length > MAX_FIELD_LENGTH) {
    throw new SipParseError(`${truncate(text.slice(start, colon).trimEnd())} header longer than ${MAX_FIELD_LENGTH} characters`, message);
  }
  headers.push({ name, value });
}

const headerNames = new Map<string, string>();

/**
 * The names code looks headers up by, each mapped to its own literal: a name read from the wire is
 * stored as that very string, so each comparison with a literal is one of pointers, not of text.
 */
const COMMON_NAMES = new Map(
  [
    'via', 'from', 'to', 'call-id', 'cseq', 'max-forwards', 'content-length', 'content-type', 'contact', 'expires', 'user-agent',
    'route', 'record-route', 'path', 'authorization', 'proxy-authorization', 'proxy-require', 'require', 'supported', 'date',
    'event', 'subject', 'allow', 'accept', 'server', 'p-asserted-identity', 'identity', 'identity-info',
  ].map((name) => [name, name]),
);

/**
 * The header names as nearly every sender spells them ("Call-ID", "v"), each standing for the name
 * it is stored under: found in the line itself, without cutting the name out.
 */
const USUAL_NAMES = spellings([
  ...Array.from(COMMON_NAMES.keys(), (name) => [displayName(name), name] as const),
  ...Object.entries(COMPACT_FORMS).map(([compact, name]) => [compact, COMMON_NAMES.get(name) ?? name] as const),
]);

/**
 * The name a header is stored under ("v" and "VIA" as "via"), or undefined when `raw` is no token.
 * Memoised, as displayName() is: the same few spellings come in every message.
 */
function headerName(raw: string): string | undefined {
  let name = headerNames.get(raw);
  if (name === undefined) {
    if (!TOKEN.test(raw)) return undefined;
    const lower = raw.toLowerCase();
    name = COMPACT_FORMS[lower] ?? COMMON_NAMES.get(lower) ?? lower;
    if (headerNames.size < 1000) headerNames.set(raw, name);
  }
  return name;
}

/** Header fields that must not repeat (only list headers may, RFC 3261 §7.3.1). */
const SINGLE_VALUED = ['from', 'to', 'call-id', 'cseq', 'max-forwards', 'content-length'];

const REQUIRED_HEADERS = [['via', 'Via'], ['from', 'From'], ['to', 'To'], ['call-id', 'Call-ID'], ['cseq', 'CSeq']] as const;

const ROUTING_HEADERS = ['route', 'record-route', 'path'] as const;

/** A bit for each header validate() looks for, so that one pass over the headers tells which are there. */
const HEADER_BITS = new Map(
  [...new Set([...SINGLE_VALUED, ...REQUIRED_HEADERS.map(([name]) => name), ...ROUTING_HEADERS, 'contact'])].map((name, i) => [name, 1 << i]),
);
const bitsOf = (names: readonly string[]) => names.reduce((bits, name) => bits | HEADER_BITS.get(name)!, 0);
const SINGLE_VALUED_BITS = bitsOf(SINGLE_VALUED);
const REQUIRED_BITS = bitsOf(REQUIRED_HEADERS.map(([name]) => name));
const ROUTING_BITS = bitsOf(ROUTING_HEADERS);
const CONTACT_BIT = HEADER_BITS.get('contact')!;

/**
 * Checks the headers every transaction needs (RFC 3261 §8.1.1) and, on a request, the request-URI and
 * the addresses it carries. What is parsed here is read through the message's own getters, so it is
 * cached for the layers above. A response is matched on its Via and CSeq alone: nothing else of it is parsed.
 */
export function validate(message: SipMessage): void {
  // Which of the headers looked for are there, and the first that must not repeat but does.
  let present = 0;
  let repeated: string | undefined;
  for (const { name } of message.headers) {
    const bit = HEADER_BITS.get(name);
    if (bit === undefined) continue;
    if (present & bit & SINGLE_VALUED_BITS) repeated ??= name;
    present |= bit;
  }
  // Looked for one by one only when one is missing, to name it.
  if ((present & REQUIRED_BITS) !== REQUIRED_BITS) {
    for (const [name, display] of REQUIRED_HEADERS) {
      if (!(present & HEADER_BITS.get(name)!)) throw new SipParseError(`Missing ${display} header`, message);
    }
  }
  try {
    if (repeated) throw new HeaderError(`more than one ${displayName(repeated)} header`);
    if (!message.isRequest) {
      // A response is matched on its top Via's branch and its CSeq (RFC 3261 §17.1.3), and nothing
      // else of it is read: the branch where it stands (topViaBranch), the rest passed on as it came.
      void message.cseq;
      return;
    }
    if (message.vias.length === 0) throw new HeaderError('empty Via');
    // From and To URIs are read by the layers above: a malformed one must be a 400 here, not a 500 there.
    checked('From URI', fromUri, message);
    checked('To URI', toUri, message);
    // Contact, Route, Record-Route and Path URIs become destinations (bindings, next hops): an address
    // no socket can take (port 0, a host that is no host) is refused here, naming the header.
    if (present & CONTACT_BIT) for (const contact of message.contacts) checked('Contact URI', parseUri, contact.uri);
    if (present & ROUTING_BITS) {
      for (const name of ROUTING_HEADERS) {
        if (!(present & HEADER_BITS.get(name)!)) continue;
        for (const value of message.getAll(name)) checked(`${displayName(name)} URI`, addressUri, value);
      }
    }
    if (message.cseq.method !== message.method) throw new HeaderError('CSeq method does not match the request method');
    const maxForwards = message.get('max-forwards');
    // Leading zeros are allowed (RFC 4475 §3.1.1.1), values above 255 are not (RFC 3261 §20.22).
    const hops = maxForwards === undefined ? 0 : decimalValue(maxForwards);
    if (hops < 0 || hops > 255) throw new HeaderError('bad Max-Forwards');
    // A Request-URI may not carry headers (RFC 3261 §19.1.1; RFC 4475 §3.1.2.11).
    if (checked('Request-URI', requestUri, message).headers.size > 0) throw new UriError('headers in the Request-URI');
  } catch (error) {
    if (error instanceof HeaderError || error instanceof UriError) {
      throw new SipParseError(capitalize(error.message), message);
    }
    throw error;
  }
}

const fromUri = (message: SipMessage) => message.fromUri;
const toUri = (message: SipMessage) => message.toUri;
const requestUri = (message: SipMessage) => message.requestUri;
const addressUri = (nameAddr: string) => parseUri(parseNameAddr(nameAddr).uri);

/** Reads a URI; what is wrong with it is said with `what` it is, e.g. "bad Contact URI: bad port "0"". */
function checked<T>(what: string, read: (from: T) => SipUri, from: T): SipUri {
  try {
    return read(from);
  } catch (error) {
    if (error instanceof UriError) throw new HeaderError(`bad ${what}: ${error.message}`);
    throw error;
  }
}

/**
 * Whether a response can be sent for `partial`: a request other than ACK with a readable top Via and a
 * CSeq, which is what the client matches a response on (RFC 3261 §17.1.3). From, To and Call-ID are
 * copied when present, but RFC 4475 §3.3.1 asks for a 400 even to a request that lacks them.
 */
export function canAnswer(partial: SipMessage | undefined): partial is SipMessage {
  if (!partial || !partial.isRequest || !partial.method || partial.method === 'ACK') return false;
  try {
    parseVia(partial.getAll('via')[0] ?? '');
    return partial.has('cseq');
  } catch {
    return false;
  }
}

/** Trims SP and HTAB only (String.prototype.trim would also strip U+FEFF and other characters of the value), of `text` from `from` to `to`. */
function trimWhitespace(text: string, from: number, to: number): string {
  let start = from;
  let end = to;
  while (start < end && (text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9)) start++;
  while (end > start && (text.charCodeAt(end - 1) === 32 || text.charCodeAt(end - 1) === 9)) end--;
  return text.slice(start, end);
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
