// Small raw-socket helpers for the robustness tests: what a fuzzer needs to talk to a Parley process
// without trusting Parley's own stack (and without a test UA that throws on odd input).
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import { type Header, SipMessage, SipParseError, createResponse, parseMessage, parseVia, randomToken } from '../../src/sip/index.js';
import { COMPACT_FORMS, TOKEN } from '../../src/sip/headers.js';
import { canAnswer, findHeadEnd } from '../../src/sip/parser.js';
import type { Endpoint } from '../support/process.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function bindUdp(): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      // A send error must not become an uncaught 'error' event of the test process.
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

export function closeUdp(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}

/** A request with everything RFC 3261 §8.1.1 asks for, from a UDP socket of ours. */
export function request(method: string, uri: string, localPort: number, extra: { from?: string; to?: string; headers?: Array<[string, string]>; body?: string } = {}): SipMessage {
  const message = new SipMessage({
    method,
    uri,
    headers: [
      { name: 'via', value: `SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${randomToken(12)};rport` },
      { name: 'max-forwards', value: '70' },
      { name: 'from', value: `${extra.from ?? '<sip:probe@localhost>'};tag=${randomToken()}` },
      { name: 'to', value: extra.to ?? `<${uri}>` },
      { name: 'call-id', value: `${randomToken(12)}@probe` },
      { name: 'cseq', value: `1 ${method}` },
      ...(extra.headers ?? []).map(([name, value]) => ({ name, value })),
    ],
  });
  if (extra.body !== undefined) {
    message.add('content-type', 'text/plain');
    message.body = Buffer.from(extra.body);
  }
  return message;
}

/**
 * Sends a request over UDP from `socket` and resolves with the final response whose top Via carries
 * the same branch (retransmitting every 500 ms), or undefined after `timeoutMs`.
 */
export function transact(socket: UdpSocket, server: Endpoint, message: SipMessage, timeoutMs = 5000): Promise<SipMessage | undefined> {
  const branch = message.via.branch;
  const bytes = message.toBuffer();
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const response = lenient(data);
      if (!response || response.isRequest || response.status < 200) return;
      try {
        // Only the top Via: a 400 repeats the request's Vias, the bad one that caused it included.
        if (parseVia(response.getAll('via')[0] ?? '').branch !== branch) return;
      } catch {
        return;
      }
      done(response);
    };
    const send = () => {
      try {
        socket.send(bytes, server.port, server.host);
      } catch {
        done(undefined); // the socket was closed under us
      }
    };
    const retransmit = setInterval(send, 500);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    const done = (result: SipMessage | undefined) => {
      clearInterval(retransmit);
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(result);
    };
    socket.on('message', onMessage);
    send();
  });
}

/** parseMessage, falling back to what could be read of a message that does not validate. */
export function lenient(data: Buffer): SipMessage | undefined {
  try {
    return parseMessage(data);
  } catch (error) {
    if (error instanceof SipParseError) return error.partial;
    return undefined;
  }
}

/** What Parley should do with an input, worked out with its own parser: answer it, or stay silent. */
export interface Expectation {
  /** A response may come back (a request other than ACK with a readable top Via and CSeq). */
  answerable: boolean;
  /** The input parsed and validated. */
  valid: boolean;
  /** Top Via branch of the input, when readable. */
  branch?: string;
}

export function expectationFor(input: Buffer): Expectation {
  try {
    const message = parseMessage(input);
    const answerable = message.isRequest && message.method !== 'ACK';
    return { answerable, valid: true, branch: answerable ? message.via.branch : undefined };
  } catch (error) {
    if (!(error instanceof SipParseError)) return { answerable: false, valid: false };
    const partial = error.partial;
    if (!canAnswer(partial)) return { answerable: false, valid: false };
    let branch: string | undefined;
    try {
      branch = parseVia(partial.getAll('via')[0] ?? '').branch;
    } catch {
      branch = undefined;
    }
    return { answerable: true, valid: false, branch };
  }
}

/** What was found wrong with a message Parley sent. */
export interface Inspection {
  message?: SipMessage;
  isRequest: boolean;
  status: number;
  /** Framing and status violations. */
  problems: string[];
  /** A header line holds a CR or LF that is not part of its CRLF terminator (a problem). */
  bareCr: boolean;
  /** The reason phrase holds characters RFC 3261 §25.1 does not allow there, e.g. NUL (a problem). */
  badReason: boolean;
  /** The reason phrase holds U+2028/U+2029, which some parsers take for a line end (a problem). */
  lineSeparatorInReason: boolean;
  /** A header value is longer than Parley itself accepts (8192), e.g. a To of 8192 plus the added tag: counted, not a problem. */
  overLong: boolean;
}

/** Header lines as Parley writes them (no folding expected, but tolerated); a string says what is wrong. */
function readHeaders(lines: string[]): Header[] | string {
  const headers: Header[] = [];
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && headers.length > 0) {
      headers[headers.length - 1]!.value += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) return `malformed header line ${JSON.stringify(line.slice(0, 100))}`;
    const name = line.slice(0, colon).trim();
    if (!TOKEN.test(name)) return `bad header name ${JSON.stringify(name.slice(0, 100))}`;
    const lower = name.toLowerCase();
    headers.push({ name: COMPACT_FORMS[lower] ?? lower, value: line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '') });
  }
  return headers;
}

const STATUS_LINE = /^SIP\/2\.0 ([0-9]{3}) ([^]*)$/;
/** Reason-Phrase: reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB, i.e. no CTL but HTAB. */
const BAD_REASON_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Checks a message Parley sent: a head ending in CRLFCRLF, lines ending in CRLF, a start line and
 * header lines that read, exactly one Content-Length equal to the body length, a readable top Via;
 * a response must be 2xx, 4xx or 5xx, and a 2xx (or a request) must also validate fully.
 */
export function inspectDatagram(data: Buffer): Inspection {
  const problems: string[] = [];
  const out: Inspection = { isRequest: false, status: 0, problems, bareCr: false, badReason: false, lineSeparatorInReason: false, overLong: false };
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) {
    problems.push('no CRLFCRLF after the head');
    return out;
  }
  if (findHeadEnd(data)?.at !== end) problems.push('an LF LF before the CRLFCRLF');
  const head = data.toString('utf8', 0, end);
  const lines = head.split('\r\n');
  out.bareCr = lines.some((line) => line.includes('\r') || line.includes('\n'));
  if (out.bareCr) problems.push('a bare CR in a header line (a receiver that ends lines at CR would see another header)');
  // Read here rather than by parseHead, so that Parley's own input limits (e.g. 8192 characters per
  // value) do not hide the rest, and each problem is named.
  const startLine = lines[0]!;
  const status = STATUS_LINE.exec(startLine);
  const requestLine = /^([A-Za-z0-9.!%*_+`'~-]+) ([^ ]+) SIP\/2\.0$/.exec(startLine);
  if (!status && !requestLine) {
    problems.push(`bad start line ${JSON.stringify(startLine.slice(0, 100))}`);
    return out;
  }
  if (status) {
    const reason = status[2]!;
    out.badReason = BAD_REASON_CHAR.test(reason);
    out.lineSeparatorInReason = /[\u2028\u2029]/.test(reason);
    if (out.badReason) problems.push('a control character in the reason phrase (RFC 3261 §25.1 allows none but HTAB)');
    if (out.lineSeparatorInReason) problems.push('U+2028/U+2029 in the reason phrase');
  }
  const headers = readHeaders(lines.slice(1));
  if (typeof headers === 'string') {
    problems.push(headers);
    return out;
  }
  out.overLong = headers.some((h) => h.value.length > 8192);
  const message = status
    ? new SipMessage({ status: Number(status[1]), reason: status[2]!, headers })
    : new SipMessage({ method: requestLine![1]!, uri: requestLine![2]!, headers });
  out.message = message;
  out.isRequest = message.isRequest;
  out.status = message.status;
  const lengths = message.headers.filter((h) => h.name === 'content-length');
  const body = data.length - end - 4;
  if (lengths.length !== 1) problems.push(`${lengths.length} Content-Length headers`);
  else if (lengths[0]!.value !== String(body)) problems.push(`Content-Length ${lengths[0]!.value} but ${body} body bytes`);
  try {
    parseVia(message.getAll('via')[0] ?? '');
  } catch {
    problems.push('no readable top Via');
  }
  problems.push(...statusProblems(message));
  if (!out.overLong && (message.isRequest || (message.status >= 200 && message.status < 300))) {
    try {
      parseMessage(data);
    } catch (error) {
      problems.push(`${message.isRequest ? 'request' : '2xx'} does not validate: ${(error as Error).message}`);
    }
  }
  return out;
}

/**
 * Cuts what Parley wrote on a stream into messages by Content-Length, independently of Parley's
 * framer. Returns the complete messages and keeps the rest; `error` when the stream cannot be cut.
 */
export class StreamSplitter {
  private buffer = Buffer.alloc(0);
  keepalives = 0;

  push(chunk: Buffer): { messages: Buffer[]; error?: string } {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const messages: Buffer[] = [];
    for (;;) {
      let skip = 0;
      while (skip + 1 < this.buffer.length && this.buffer[skip] === 0x0d && this.buffer[skip + 1] === 0x0a) skip += 2;
      if (skip > 0) {
        this.keepalives++;
        this.buffer = this.buffer.subarray(skip);
      }
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return { messages };
      const head = this.buffer.toString('latin1', 0, end);
      const lengths = [...head.matchAll(/\r\n(?:Content-Length|l)[ \t]*:[ \t]*([^\r\n]*)/gi)].map((m) => m[1]!.trim());
      if (lengths.length !== 1 || !/^[0-9]+$/.test(lengths[0]!)) {
        return { messages, error: `cannot frame: Content-Length ${JSON.stringify(lengths)} in ${JSON.stringify(head.slice(0, 200))}` };
      }
      const total = end + 4 + Number(lengths[0]);
      if (this.buffer.length < total) return { messages };
      messages.push(Buffer.from(this.buffer.subarray(0, total)));
      this.buffer = this.buffer.subarray(total);
    }
  }
}

export function statusProblems(message: SipMessage): string[] {
  if (message.isRequest) return [];
  const s = message.status;
  return (s >= 200 && s < 300) || (s >= 400 && s < 600) ? [] : [`status ${s} is not 2xx, 4xx or 5xx`];
}

/**
 * A UDP peer that registers as `user` and answers every request it gets with 200, keeping count of
 * what arrived and of relayed requests that do not parse.
 */
export class AnsweringPeer {
  requests = 0;
  readonly problems: string[] = [];
  private constructor(readonly socket: UdpSocket, readonly user: string) {}

  static async create(user: string): Promise<AnsweringPeer> {
    const peer = new AnsweringPeer(await bindUdp(), user);
    peer.socket.on('message', (data: Buffer, rinfo: RemoteInfo) => peer.onMessage(data, rinfo));
    return peer;
  }

  get port(): number {
    return this.socket.address().port;
  }

  async register(server: Endpoint): Promise<number | undefined> {
    const aor = `sip:${this.user}@localhost`;
    const message = request('REGISTER', 'sip:localhost', this.port, {
      from: `<${aor}>`,
      to: `<${aor}>`,
      headers: [['contact', `<sip:${this.user}@127.0.0.1:${this.port}>`], ['expires', '3600']],
    });
    // transact() listens on the same socket; onMessage ignores responses.
    return (await transact(this.socket, server, message))?.status;
  }

  private onMessage(data: Buffer, rinfo: RemoteInfo): void {
    const inspection = inspectDatagram(data);
    if (!inspection.message?.isRequest) return;
    this.requests++;
    if (inspection.problems.length > 0) this.problems.push(`${inspection.problems.join('; ')}: ${JSON.stringify(data.subarray(0, 200).toString('latin1'))}`);
    const message = lenient(data);
    if (!message || !canAnswer(message)) return;
    try {
      this.socket.send(createResponse(message, 200).toBuffer(), rinfo.port, rinfo.address);
    } catch {
      // closed
    }
  }

  close(): void {
    closeUdp(this.socket);
  }
}
