// Parses SIP messages from datagrams and from stream framing (RFC 3261 §7, §18.3, §25).
// Errors carry a reason phrase for the 400 and, when enough was read, the message itself,
// so the transport layer can still answer instead of dropping.
import { COMPACT_FORMS, HeaderError, TOKEN, parseCSeq, parseNameAddr, parseVia } from './headers.js';
import { EMPTY, type Header, SipMessage } from './message.js';
import { UriError, parseUri } from './uri.js';

export class SipParseError extends Error {
  override name = 'SipParseError';
  constructor(
    /** Reason phrase for the 400 (or `status`) response. */
    readonly reason: string,
    /** The message as far as it could be read; a response can be built when it has the core headers. */
    readonly partial?: SipMessage,
    readonly status = 400,
  ) {
    super(reason);
  }
}

const SEPARATOR = Buffer.from('\r\n\r\n');
const LF_SEPARATOR = Buffer.from('\n\n');

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
  const end = findHeadEnd(buf);
  const headEnd = end ? end.at : buf.length;
  const message = parseHead(buf.toString('utf8', 0, headEnd));
  let body = end ? buf.subarray(headEnd + end.length) : EMPTY;
  const lengthText = message.get('content-length');
  if (lengthText !== undefined) {
    const length = parseContentLength(lengthText, message);
    if (length > body.length) throw new SipParseError('Content-Length larger than the body received', message);
    body = body.subarray(0, length);
  }
  message.body = body;
  validate(message);
  return message;
}

export function parseContentLength(text: string, message?: SipMessage): number {
  const trimmed = text.trim();
  if (!/^[0-9]{1,10}$/.test(trimmed)) throw new SipParseError('Bad Content-Length', message);
  return Number(trimmed);
}

/** Parses the start line and header lines; header values are unfolded and trimmed, nothing else is checked. */
export function parseHead(head: string): SipMessage {
  const lines = head.split(/\r?\n/);
  let first = 0;
  while (first < lines.length && lines[first] === '') first++; // RFC 3261 §7.5: leading CRLFs are ignored
  const startLine = lines[first];
  if (startLine === undefined) throw new SipParseError('Empty message');
  const headers: Header[] = [];
  for (let i = first + 1; i < lines.length; i++) {
    let line = lines[i]!;
    while (i + 1 < lines.length && (lines[i + 1]!.startsWith(' ') || lines[i + 1]!.startsWith('\t'))) {
      line += ' ' + lines[++i]!.trim();
    }
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new SipParseError(`Malformed header line "${truncate(line)}"`, new SipMessage({ headers }));
    const rawName = line.slice(0, colon).trimEnd();
    if (!TOKEN.test(rawName)) throw new SipParseError(`Bad header name "${truncate(rawName)}"`, new SipMessage({ headers }));
    const lower = rawName.toLowerCase();
    headers.push({ name: COMPACT_FORMS[lower] ?? lower, value: line.slice(colon + 1).trim() });
  }
  if (startLine.startsWith('SIP/')) {
    const m = /^SIP\/([0-9]+\.[0-9]+) ([0-9]{3}) ?(.*)$/.exec(startLine);
    if (!m) throw new SipParseError('Bad status line', new SipMessage({ headers }));
    if (m[1] !== '2.0') throw new SipParseError('Version Not Supported', new SipMessage({ headers }), 505);
    const status = Number(m[2]);
    if (status < 100 || status > 699) throw new SipParseError('Bad status code', new SipMessage({ headers }));
    return new SipMessage({ status, reason: m[3]!, headers });
  }
  const parts = startLine.split(' ');
  const partial = new SipMessage({ headers });
  if (parts.length !== 3) throw new SipParseError('Malformed request line', partial);
  const [method, uri, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) throw new SipParseError('Bad method', partial);
  partial.method = method;
  if (!/^SIP\/[0-9]+\.[0-9]+$/i.test(version)) throw new SipParseError('Malformed request line', partial);
  if (version.toUpperCase() !== 'SIP/2.0') throw new SipParseError('Version Not Supported', partial, 505);
  partial.uri = uri;
  return partial;
}

/** Checks the headers every transaction needs (RFC 3261 §8.1.1) and the request-URI. */
export function validate(message: SipMessage): void {
  for (const name of ['via', 'from', 'to', 'call-id', 'cseq'] as const) {
    if (!message.has(name)) throw new SipParseError(`Missing ${name === 'call-id' ? 'Call-ID' : name === 'cseq' ? 'CSeq' : name[0]!.toUpperCase() + name.slice(1)} header`, message);
  }
  try {
    if (message.vias.length === 0) throw new HeaderError('empty Via');
    parseNameAddr(message.get('from')!);
    parseNameAddr(message.get('to')!);
    const cseq = parseCSeq(message.get('cseq')!);
    if (message.headers.filter((h) => h.name === 'cseq' || h.name === 'call-id').length > 2) {
      throw new HeaderError('duplicate Call-ID or CSeq');
    }
    if (message.isRequest) {
      if (cseq.method !== message.method) throw new HeaderError('CSeq method does not match the request method');
      const maxForwards = message.get('max-forwards');
      if (maxForwards !== undefined && !/^[0-9]{1,3}$/.test(maxForwards)) throw new HeaderError('bad Max-Forwards');
      parseUri(message.uri);
    }
  } catch (error) {
    if (error instanceof HeaderError || error instanceof UriError) {
      throw new SipParseError(capitalize(error.message), message);
    }
    throw error;
  }
}

/** Whether `partial` has what a response needs (RFC 3261 §8.2.6): a readable Via and the dialog headers. */
export function canAnswer(partial: SipMessage | undefined): partial is SipMessage {
  if (!partial || !partial.isRequest || !partial.method || partial.method === 'ACK') return false;
  try {
    parseVia(partial.getAll('via')[0] ?? '');
    return partial.has('from') && partial.has('to') && partial.has('call-id') && partial.has('cseq');
  } catch {
    return false;
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
