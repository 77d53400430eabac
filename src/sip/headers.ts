// Structured forms of the headers Parley reads: name-addr (From, To, Contact, Route), Via, CSeq,
// and the splitting of comma-separated header values (RFC 3261 §7.3.1).
import { isIP } from 'node:net';
import { ownString } from '../util/own-string.js';
import { literals, spelledAt } from './spellings.js';
import { isDigit, isLetter, isValidHost, portNumber } from './uri.js';

export class HeaderError extends Error {
  override name = 'HeaderError';
}

/** Long canonical names of the compact forms (RFC 3261 §7.3.3 and later RFCs). */
export const COMPACT_FORMS: Record<string, string> = {
  a: 'accept-contact', b: 'referred-by', c: 'content-type', d: 'request-disposition', e: 'content-encoding',
  f: 'from', i: 'call-id', j: 'reject-contact', k: 'supported', l: 'content-length', m: 'contact',
  n: 'identity-info', o: 'event', r: 'refer-to', s: 'subject', t: 'to', u: 'allow-events', v: 'via',
  x: 'session-expires', y: 'identity',
};

/** Headers whose values are comma-separated lists that may also be split across header lines. */
export const LIST_HEADERS = new Set([
  'via', 'route', 'record-route', 'contact', 'path', 'allow', 'supported', 'require', 'proxy-require',
  'unsupported', 'accept', 'accept-encoding', 'accept-language', 'allow-events', 'content-encoding',
  'content-language', 'in-reply-to', 'service-route',
]);

const DISPLAY_CASE: Record<string, string> = {
  'call-id': 'Call-ID', cseq: 'CSeq', 'www-authenticate': 'WWW-Authenticate', 'mime-version': 'MIME-Version',
  'sip-etag': 'SIP-ETag', 'sip-if-match': 'SIP-If-Match', 'rseq': 'RSeq', 'rack': 'RAck',
};

const displayNames = new Map<string, string>();

/** "content-length" -> "Content-Length", with the RFC's irregular spellings. Memoised: it runs for every header sent. */
export function displayName(name: string): string {
  let display = displayNames.get(name);
  if (display === undefined) {
    display = DISPLAY_CASE[name] ?? name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
    if (displayNames.size < 1000) displayNames.set(name, display);
  }
  return display;
}

/** Splits a header value at commas that are outside quotes and angle brackets. */
export function splitList(value: string): string[] {
  if (!value.includes(',')) return [value.trim()];
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (quoted) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) quoted = false;
    } else if (c === 34) quoted = true;
    else if (c === 60 /* < */) depth++;
    else if (c === 62 /* > */) depth--;
    else if (c === 44 /* , */ && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (quoted || depth !== 0) throw new HeaderError('unbalanced quotes or angle brackets');
  out.push(value.slice(start).trim());
  return out;
}

export type Params = Map<string, string | null>;

/** Parses ";a=b;c" header parameters starting at the first ';' of `text`. Names are lower-cased. */
export function parseParams(text: string): Params {
  if (USUAL_PARAMS.test(text)) return usualParams(text);
  const params: Params = new Map();
  let i = 0;
  while (i < text.length) {
    i = skipBlanks(text, i);
    if (i >= text.length) break;
    if (text.charCodeAt(i) !== SEMICOLON) throw new HeaderError(`expected ";" before "${text.slice(i)}"`);
    i = skipBlanks(text, i + 1);
    let j = i;
    // Whether the name is all token characters, and lower case, is told while it is scanned: TOKEN is
    // tried only when not, and a name already in lower case (nearly all) is not copied into it.
    let tokenOnly = true;
    let lowerCase = true;
    for (let c = codeAt(text, j); j < text.length && !endsParamName(c); c = codeAt(text, ++j)) {
      if (c >= 128 || !(CHAR_CLASSES[c]! & TOKEN_CHAR)) tokenOnly = false;
      if (c >= 65 && c <= 90) lowerCase = false;
    }
    const name = lowerCase && tokenOnly ? (usualParamName(text, i, j) ?? text.slice(i, j)) : text.slice(i, j).toLowerCase();
    if (!name || !(tokenOnly || TOKEN.test(name))) throw new HeaderError(`bad parameter name "${text.slice(i, j)}"`);
    j = skipBlanks(text, j);
    if (codeAt(text, j) === EQUALS) {
      j = skipBlanks(text, j + 1);
      if (codeAt(text, j) === QUOTE) {
        const end = closingQuote(text, j);
        params.set(name, text.slice(j, end + 1));
        i = end + 1;
      } else {
        let k = j;
        let valueChars = true;
        for (let c = codeAt(text, k); k < text.length && !endsParamValue(c); c = codeAt(text, ++k)) {
          if (c >= 128 || !(CHAR_CLASSES[c]! & PARAM_VALUE_CHAR)) valueChars = false;
        }
        const value = text.slice(j, k);
        // What PARAM_VALUE allows, checked while the value was scanned.
        if (!value || !valueChars) throw new HeaderError(`bad value for parameter "${name}"`);
        params.set(name, value);
        i = k;
      }
    } else {
      params.set(name, null);
      i = j;
    }
  }
  return params;
}

/**
 * Parameters as nearly every sender writes them: no blanks, no quotes, names in lower case. What
 * parseParams checks a character at a time, one regular expression checks here, several times faster.
 */
const USUAL_PARAMS = /^(?:;[a-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~[\]:]+)?)*$/;

/** What parseParams reads from `text` of the USUAL_PARAMS form from `start` on, cut at its ";" and "=". */
function usualParams(text: string, start = 0): Params {
  const params: Params = new Map();
  for (let i = start + 1; i < text.length; i = paramBounds.end + 1) {
    const { nameEnd, end } = usualParamAt(text, i);
    params.set(usualParamName(text, i, nameEnd) ?? text.slice(i, nameEnd), usualParamValue(text, nameEnd, end));
  }
  return params;
}

/**
 * The value of parameter `name` (lower case) in `text` from `start` on, of the USUAL_PARAMS form, as the Map
 * usualParams makes of it would give it (the last of that name): null for one without a value,
 * undefined when there is none. Read where it stands: no Map, and no string but the value found.
 */
function usualParam(text: string, start: number, name: string): string | null | undefined {
  let found: string | null | undefined;
  for (let i = start + 1; i < text.length; i = paramBounds.end + 1) {
    const { nameEnd, end } = usualParamAt(text, i);
    if (nameEnd - i === name.length && text.startsWith(name, i)) found = usualParamValue(text, nameEnd, end);
  }
  return found;
}

/** Where a parameter of usual-form text ends, as usualParamAt() finds it: its name at `nameEnd`, the whole at `end`. */
const paramBounds = { nameEnd: 0, end: 0 };

/**
 * Where the parameter whose name starts at `from` in `text` (of the USUAL_PARAMS form) ends: at the
 * next ";" or the end of `text`, its name at its "=" if it has one. The one walker over parameters
 * kept as text. One object, refilled by each call: read it at once.
 */
function usualParamAt(text: string, from: number): typeof paramBounds {
  let end = text.indexOf(';', from);
  if (end < 0) end = text.length;
  const equals = text.indexOf('=', from);
  paramBounds.nameEnd = equals < 0 || equals > end ? end : equals;
  paramBounds.end = end;
  return paramBounds;
}

/** The value of the parameter usualParamAt() found: null when it has none. */
function usualParamValue(text: string, nameEnd: number, end: number): string | null {
  return nameEnd === end ? null : text.slice(nameEnd + 1, end);
}

/**
 * What a header read from the wire (a Via, a name-addr) holds of parameters: when they are of the
 * USUAL_PARAMS form (checked as read), their text, made a Map only once asked for as one; the few a
 * request's way through Parley reads (branch, rport, received, tag) are read from the text
 * (paramOf), so that most requests make no Map. `params` is an accessor, not an own property: a
 * spread copy of a Via or name-addr ({...via}) has none, so copies name the fields they take.
 */
class ReadParams {
  /** The text the parameters stand in from `start` on, while they are not made a Map. */
  private text: string | undefined;
  private start = 0;
  private parsed: Params | undefined;

  /** `text`: the parameters as read, from their first ";" on; parsed (and checked) at once unless of the USUAL_PARAMS form. */
  constructor(text: string) {
    if (USUAL_PARAMS.test(text)) this.text = text;
    else this.parsed = parseParams(text);
  }

  get params(): Params {
    return (this.parsed ??= usualParams(this.text!, this.start));
  }

  /** Whether the parameters are still the text they were read as, not made a Map. */
  protected get isText(): boolean {
    return this.parsed === undefined;
  }

  param(name: string): string | null | undefined {
    return this.parsed === undefined ? usualParam(this.text!, this.start, name) : this.parsed.get(name);
  }

  /**
   * Takes the parameters as `text` has them from `start` on, when they are still text: the same
   * parameters with some added or given a value (received, rport), still of the USUAL_PARAMS form.
   * False when they were made a Map already.
   */
  retext(text: string, start: number): boolean {
    if (this.parsed !== undefined) return false;
    this.text = text;
    this.start = start;
    return true;
  }
}

/** Parameter `name` of a parsed header, as `params.get(name)` gives it, without making a Map of them when they are still text. */
export function paramOf(of: { params: Params }, name: string): string | null | undefined {
  return of instanceof ReadParams ? of.param(name) : of.params.get(name);
}

/** The parameter names nearly every Via, From, To and Contact carries. */
const USUAL_PARAM_NAMES = literals(['branch', 'rport', 'received', 'tag', 'transport', 'lr', 'expires', 'q', 'maddr', 'ttl', '+sip.instance', 'reg-id']);

/** The usual parameter name that `text` holds from `start` to `end`, if it is one. */
function usualParamName(text: string, start: number, end: number): string | undefined {
  return spelledAt(USUAL_PARAM_NAMES, text, start, end);
}

const SEMICOLON = 59;
const EQUALS = 61;
const QUOTE = 34;

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * The code of the character of `text` at `i`, or -1 past its end. A scan that stops at the end reads
 * there: read with charCodeAt, that one out-of-bounds read makes V8 recompile the whole function
 * with a slower load of every character (parseParams took half as long again).
 */
function codeAt(text: string, i: number): number {
  return i < text.length ? text.charCodeAt(i) : -1;
}

function skipBlanks(text: string, i: number): number {
  while (isBlank(codeAt(text, i))) i++;
  return i;
}

function endsParamName(c: number): boolean {
  return c === EQUALS || c === SEMICOLON || isBlank(c);
}

function endsParamValue(c: number): boolean {
  return c === SEMICOLON || isBlank(c);
}

export const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
const PARAM_VALUE = /^[A-Za-z0-9\-.!%*_+`'~[\]:]+$/;

const TOKEN_CHAR = 1;
const PARAM_VALUE_CHAR = 2;
/**
 * For each ASCII character, whether TOKEN and PARAM_VALUE allow it (bits TOKEN_CHAR, PARAM_VALUE_CHAR), so
 * that parseParams checks names and values as it scans them; neither allows any character past ASCII.
 */
const CHAR_CLASSES = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const char = String.fromCharCode(c);
  CHAR_CLASSES[c] = (TOKEN.test(char) ? TOKEN_CHAR : 0) | (PARAM_VALUE.test(char) ? PARAM_VALUE_CHAR : 0);
}

function closingQuote(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (c === '"') return i;
  }
  throw new HeaderError('unterminated quoted string');
}

export function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    const inner = value.slice(1, -1);
    // Most quoted strings hold no escape: nothing to replace.
    return inner.includes('\\') ? inner.replace(/\\(.)/g, '$1') : inner;
  }
  return value;
}

/** A quoted-string of any text: `"` and `\` escaped, and what cannot be quoted (CR, LF, other controls) made a space. */
export function quote(value: string): string {
  return `"${safeHeaderValue(value).replace(/(["\\])/g, '\\$1')}"`;
}

// Control characters but HTAB (RFC 3261 §25.1 allows none in a header value), C1 controls and the
// Unicode line and paragraph separators: CR or LF would end the header line and start another, and
// some receivers also end lines at the others.
const UNSAFE_IN_HEADER = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/;
const UNSAFE_IN_HEADER_ALL = new RegExp(UNSAFE_IN_HEADER.source, 'g');

/** `value` with every character that may not stand in a header line replaced by a space. */
export function safeHeaderValue(value: string): string {
  return UNSAFE_IN_HEADER.test(value) ? value.replace(UNSAFE_IN_HEADER_ALL, ' ') : value;
}

/** A From/To/Contact/Route value: display name, URI text and header parameters. */
export interface NameAddr {
  displayName?: string;
  uri: string;
  params: Params;
}

// parseNameAddr's regular expressions, made once: a literal in its body is a new RegExp object on every call (two a request).
const TOKEN_DISPLAY_NAME = /^[A-Za-z0-9\-.!%*_+`'~ \t]+$/;
const BLANKS = /[ \t]+/g;
const WHITESPACE = /\s/;
const COMMA_OR_QUESTION_MARK = /[,?]/;

export function parseNameAddr(value: string): NameAddr {
  const text = value.trim();
  let displayName: string | undefined;
  let uri: string;
  let rest: string;
  let open: number;
  if (text.startsWith('"')) {
    const end = closingQuote(text, 0);
    displayName = unquote(text.slice(0, end + 1));
    open = text.indexOf('<', end + 1);
    if (open < 0 || text.slice(end + 1, open).trim() !== '') throw new HeaderError('expected "<" after display name');
  } else {
    open = text.indexOf('<');
  }
  if (open >= 0) {
    if (displayName === undefined) {
      const name = text.slice(0, open).trim();
      if (name) {
        if (!TOKEN_DISPLAY_NAME.test(name)) throw new HeaderError(`bad display name "${name}"`);
        displayName = name.replace(BLANKS, ' ');
      }
    }
    const close = text.indexOf('>', open);
    if (close < 0) throw new HeaderError('missing ">"');
    uri = text.slice(open + 1, close);
    // No LWS may follow "<" or precede ">" (LAQUOT/RAQUOT, RFC 3261 §25.1; RFC 4475 §3.1.2.14).
    if (WHITESPACE.test(uri)) throw new HeaderError(`whitespace in URI "${uri}"`);
    if (!uri) throw new HeaderError('bad URI ""');
    rest = text.slice(close + 1);
  } else {
    // addr-spec form: parameters after the URI belong to the header, not the URI (RFC 3261 §20.10).
    const semi = text.indexOf(';');
    uri = semi >= 0 ? text.slice(0, semi) : text;
    rest = semi >= 0 ? text.slice(semi) : '';
    if (COMMA_OR_QUESTION_MARK.test(uri)) throw new HeaderError('URI with "," or "?" must be enclosed in "<>"');
    uri = uri.trim();
    if (!uri || WHITESPACE.test(uri)) throw new HeaderError(`bad URI "${uri}"`);
  }
  return new ReadNameAddr(displayName, uri, rest);
}

/** A name-addr as parseNameAddr reads it: its parameters made a Map only when asked for as one (see ReadParams). */
class ReadNameAddr extends ReadParams implements NameAddr {
  constructor(
    public displayName: string | undefined,
    public uri: string,
    params: string,
  ) {
    super(params);
  }
}

export function formatParams(params: Params): string {
  let out = '';
  for (const [name, value] of params) out += value === null ? `;${name}` : `;${name}=${value}`;
  return out;
}

export function formatNameAddr(addr: NameAddr): string {
  const name = addr.displayName ? `${quote(addr.displayName)} ` : '';
  return `${name}<${addr.uri}>${formatParams(addr.params)}`;
}

export interface Via {
  transport: string;
  host: string;
  port?: number;
  params: Params;
  branch?: string;
}

/**
 * A Via value: sent-protocol, sent-by host and port, and the parameters. Any protocol name and version is
 * readable (sent-protocol, RFC 3261 §20.42), so that a request of an unsupported version can still be
 * answered with a 505.
 */
const VIA = /^[A-Za-z0-9\-.!%*_+`'~]+[ \t]*\/[ \t]*[A-Za-z0-9\-.!%*_+`'~]+[ \t]*\/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+(\[[0-9a-fA-F:.]+\]|[^ \t:;]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*(.*)$/i;

const USUAL_VIA_START = 'SIP/2.0/';
const LINE_TERMINATOR = /[\n\r\u2028\u2029]/;

/**
 * What VIA reads from a Via of the usual form, "SIP/2.0/UDP host[:port][;params]" (blanks only where
 * shown, no IPv6 reference): transport, host, port and parameters, read without the regular expression.
 * Null for any other form, which VIA then reads.
 */
function usualVia(text: string): [transport: string, host: string, port: string | undefined, params: string] | null {
  // VIA's "." takes no line terminator: a value holding one is left to it, to be refused as it was.
  if (!text.startsWith(USUAL_VIA_START) || LINE_TERMINATOR.test(text)) return null;
  let i = USUAL_VIA_START.length;
  while (isLetter(codeAt(text, i))) i++;
  if (i === USUAL_VIA_START.length || codeAt(text, i) !== 32) return null;
  const hostStart = i + 1;
  let hostEnd = hostStart;
  while (hostEnd < text.length && !endsViaHost(text.charCodeAt(hostEnd))) hostEnd++;
  if (hostEnd === hostStart || text.charCodeAt(hostStart) === 91 /* [ */ || isBlank(codeAt(text, hostEnd))) return null;
  let port: string | undefined;
  let paramsStart = hostEnd;
  if (codeAt(text, hostEnd) === 58) {
    let portEnd = hostEnd + 1;
    while (isDigit(codeAt(text, portEnd))) portEnd++;
    if (portEnd === hostEnd + 1 || portEnd - hostEnd - 1 > 5 || (portEnd < text.length && text.charCodeAt(portEnd) !== SEMICOLON)) return null;
    port = text.slice(hostEnd + 1, portEnd);
    paramsStart = portEnd;
  }
  return [text.slice(USUAL_VIA_START.length, i), text.slice(hostStart, hostEnd), port, text.slice(paramsStart)];
}

function endsViaHost(c: number): boolean {
  return c === 58 /* : */ || c === SEMICOLON || isBlank(c);
}

export function parseVia(value: string): Via {
  const text = value.trim();
  const paramsStart = text.indexOf(';');
  const sentByText = paramsStart < 0 ? text : text.slice(0, paramsStart);
  let sentBy = recentSentBys.get(sentByText);
  let paramsText: string;
  // A sent-by read before in a Via of the usual form is read the same in this one (usualVia reads
  // nothing past the first ";" but the parameters), unless a line terminator sends it to VIA.
  if (sentBy !== undefined && !LINE_TERMINATOR.test(text)) paramsText = paramsStart < 0 ? '' : text.slice(paramsStart);
  else {
    const usual = usualVia(text);
    const m = usual ?? VIA.exec(text)?.slice(1);
    if (!m) throw new HeaderError(`bad Via "${value}"`);
    // sent-by, received and rport are where responses go (RFC 3261 §18.2.2, RFC 3581): each must be an address.
    if (!isValidHost(m[1]!)) throw new HeaderError(`bad Via host "${m[1]}"`);
    const port = m[2] === undefined ? undefined : portNumber(m[2]);
    if (m[2] !== undefined && port === undefined) throw new HeaderError(`bad Via port ${m[2]}`);
    sentBy = { transport: m[0]!.toUpperCase(), host: m[1]!.toLowerCase(), port };
    if (usual) rememberSentBy(sentByText, sentBy);
    paramsText = m[3]!;
  }
  const via = new ReadVia(sentBy, sentByText, paramsText, text.length - paramsText.length);
  const received = via.param('received');
  if (received !== undefined && !isIpLiteral(received)) throw new HeaderError('bad Via received');
  const rport = via.param('rport');
  if (rport !== undefined && rport !== null && portNumber(rport) === undefined) throw new HeaderError(`bad Via rport ${rport}`);
  return via;
}

/**
 * A Via as parseVia reads it: its parameters made a Map only when asked for as one (see ReadParams),
 * and the three read on every request's way in (branch, rport, received: checked by parseVia, then
 * matched and stamped on by the stack) read from their text in one walk, as it is read.
 */
class ReadVia extends ReadParams implements Via {
  transport: string;
  host: string;
  port: number | undefined;
  branch: string | undefined = undefined;
  /** Its rport and received as the text has them (see ReadParams.param), while `readAsText`. */
  private rport: string | null | undefined = undefined;
  private received: string | null | undefined = undefined;
  /** Whether rport and received were read from the text the parameters are now (they change as it is stamped). */
  private readAsText = false;

  constructor(
    sentBy: SentBy,
    /** The Via's text up to its first ";". */
    private readonly sentByText: string,
    params: string,
    /** Where the parameters start in the Via's text. */
    private readonly paramsStart: number,
  ) {
    super(params);
    this.transport = sentBy.transport;
    this.host = sentBy.host;
    this.port = sentBy.port;
    if (!this.isText) {
      this.branch = this.param('branch') ?? undefined;
      return;
    }
    for (let i = 1; i < params.length; i = paramBounds.end + 1) {
      const { nameEnd, end } = usualParamAt(params, i);
      const name = usualParamName(params, i, nameEnd);
      // The names' own literals (usualParamName): told apart by reference.
      if (name === BRANCH) this.branch = usualParamValue(params, nameEnd, end) ?? undefined;
      else if (name === RPORT) this.rport = usualParamValue(params, nameEnd, end);
      else if (name === RECEIVED) this.received = usualParamValue(params, nameEnd, end);
    }
    this.readAsText = true;
  }

  override param(name: string): string | null | undefined {
    // Once made a Map, the parameters are what the Map says: the stack may have edited it.
    if (this.readAsText && this.isText) {
      if (name === RPORT) return this.rport;
      if (name === RECEIVED) return this.received;
    }
    return super.param(name);
  }

  /**
   * Takes the parameters of `text`, `value` (this Via's value) with received or rport added after its
   * sent-by, as they now are (see ReadParams.retext).
   */
  restamped(value: string, text: string): boolean {
    if (!value.startsWith(this.sentByText) || !this.retext(text, this.paramsStart)) return false;
    // What was read of the parameters before they were stamped is no longer what they say.
    this.readAsText = false;
    return true;
  }
}

const RPORT = 'rport';
const RECEIVED = 'received';

/**
 * Takes the parameters of `text` as those of `via`, when it is a Via parseVia read from `value`
 * whose parameters are still text, and `text` is `value` with parameters added or given a value
 * after its sent-by; false otherwise (then its params are to be edited).
 */
export function restampVia(via: Via, value: string, text: string): boolean {
  return via instanceof ReadVia && via.restamped(value, text);
}

/** What a Via says before its parameters ("SIP/2.0/UDP host:port"), read and checked. Shared: never changed. */
interface SentBy {
  readonly transport: string;
  readonly host: string;
  readonly port: number | undefined;
}

/**
 * Sent-bys of usual-form Vias read lately, by their text: a client puts the same one on request after
 * request, and only the parameters after it (the branch) change.
 */
const recentSentBys = new Map<string, SentBy>();
const MAX_RECENT_SENT_BYS = 1024;

function rememberSentBy(text: string, sentBy: SentBy): void {
  if (recentSentBys.size >= MAX_RECENT_SENT_BYS) recentSentBys.clear();
  // In a copy of its own: text cut from a message would keep the whole message alive.
  recentSentBys.set(ownString(text), sentBy);
}

/**
 * The branch parameter of the first Via of `value` (a Via header's value, maybe a list), read where
 * it stands instead of parsing the Via: what a response is matched to its client transaction on
 * (RFC 3261 §17.1.3), for every response Parley gets. Parameter names are told apart ignoring case
 * and blanks, as parseVia does; a Via holding a quoted string is left to parseVia. Undefined when
 * the first Via has no branch; a HeaderError when its branch has characters parseVia refuses (none
 * at all, or any no parameter value may hold), as parseVia's own when it reads the Via.
 */
export function topViaBranch(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === COMMA) return undefined;
    if (c === QUOTE) return parsedBranch(value);
    if (c !== SEMICOLON) continue;
    let start = skipBlanks(value, i + 1);
    if (value.slice(start, start + BRANCH.length).toLowerCase() !== BRANCH) continue;
    start = skipBlanks(value, start + BRANCH.length);
    if (codeAt(value, start) !== EQUALS) continue;
    start = skipBlanks(value, start + 1);
    let end = start;
    for (let v = codeAt(value, end); end < value.length && !endsParamValue(v) && v !== COMMA; v = codeAt(value, ++end)) {
      if (v >= 128 || !(CHAR_CLASSES[v]! & PARAM_VALUE_CHAR)) throw new HeaderError(`bad Via branch "${value.slice(start)}"`);
    }
    if (end === start) throw new HeaderError('bad Via branch: empty');
    return value.slice(start, end);
  }
  return undefined;
}

const BRANCH = 'branch';
const COMMA = 44;

function parsedBranch(value: string): string | undefined {
  return parseVia(splitList(value)[0]!).branch;
}

/** An IPv4 or IPv6 address, the latter with or without brackets (RFC 3261 and RFC 5118 §4.5 spell it both ways). */
function isIpLiteral(value: string | null): boolean {
  if (value === null) return false;
  return value.charCodeAt(0) === 91 /* [ */ ? isValidHost(value) : isIP(value) !== 0;
}

export function formatVia(via: Via): string {
  return `SIP/2.0/${via.transport} ${via.host}${via.port !== undefined ? `:${via.port}` : ''}${formatParams(via.params)}`;
}

export interface CSeq {
  seq: number;
  method: string;
}

/** The methods RFC 3261 and its extensions define. */
export const SIP_METHODS: readonly string[] = [
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER',
  'MESSAGE', 'UPDATE',
];
const METHODS_BY_LENGTH = literals(SIP_METHODS);

/**
 * The method of SIP_METHODS that `text` holds from `start` to `end`, as that very literal (see
 * spelledAt), for the request line and CSeq; undefined for any other text. Methods are
 * case-sensitive (RFC 3261 §7.1).
 */
export function knownMethodAt(text: string, start: number, end: number): string | undefined {
  return spelledAt(METHODS_BY_LENGTH, text, start, end);
}

export function parseCSeq(value: string): CSeq {
  return usualCSeq(value) ?? parseAnyCSeq(value);
}

/**
 * A CSeq of the usual form, "1 MESSAGE" (digits, one space, a method, nothing around them), read
 * without the regular expression; null for any other form, which parseAnyCSeq reads.
 */
function usualCSeq(value: string): CSeq | null {
  let i = 0;
  let seq = 0;
  for (let c = codeAt(value, 0); c >= 48 && c <= 57; c = codeAt(value, ++i)) seq = seq * 10 + (c - 48);
  if (i === 0 || i > 10 || codeAt(value, i) !== 32 || i + 1 === value.length) return null;
  const known = knownMethodAt(value, i + 1, value.length);
  if (known === undefined) {
    for (let j = i + 1; j < value.length; j++) {
      const c = value.charCodeAt(j);
      if (c >= 128 || !(CHAR_CLASSES[c]! & TOKEN_CHAR)) return null;
    }
  }
  if (seq > 0xffffffff) throw new HeaderError('CSeq number above 2**32-1');
  return { seq, method: known ?? value.slice(i + 1) };
}

function parseAnyCSeq(value: string): CSeq {
  const m = /^([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)$/.exec(value.trim());
  if (!m) throw new HeaderError(`bad CSeq "${value}"`);
  const seq = Number(m[1]);
  if (seq > 0xffffffff) throw new HeaderError('CSeq number above 2**32-1');
  return { seq, method: m[2]! };
}
