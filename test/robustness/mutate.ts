// Deterministic mutation of SIP messages for the robustness fuzzer: a seeded PRNG, a corpus of valid
// messages and a set of mutators. Input number i of seed s is always the same bytes (for the same
// corpus: the messages below plus the RFC 4475 fixtures of the parser tests), so a failure is
// reproduced from the two numbers alone:
//   node --import tsx test/robustness/mutate.ts 0x5ea1f00d 643 > input.bin
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Seed used when PARLEY_FUZZ_SEED is not set. */
export const DEFAULT_SEED = 0x5ea1f00d;

/** PARLEY_FUZZ_SEED, decimal or 0x-hex, else DEFAULT_SEED. */
export function fuzzSeed(): number {
  const text = process.env.PARLEY_FUZZ_SEED?.trim();
  if (!text) return DEFAULT_SEED;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`PARLEY_FUZZ_SEED must be a non-negative integer, not "${text}"`);
  return value >>> 0;
}

/** mulberry32: small, fast, good enough for picking mutations, and the same on every platform. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 2^32). */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }
  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** Mixes the run seed with an input index so each input has its own stream (splitmix-like). */
export function inputSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const crlf = (lines: string[]): string => lines.join('\r\n');

/**
 * Valid messages to start from. Via sent-by ports are 9 (discard): a response to a mutant whose rport
 * was mutated away goes to 127.0.0.1:9, where nothing listens, rather than to someone's 5060.
 * `alice` is a live peer in the process fuzz (MESSAGEs to her are relayed), `bob` is unknown (404),
 * `carol` is who the REGISTER seeds register.
 */
export const SEEDS: ReadonlyArray<{ name: string; text: string }> = [
  {
    name: 'register',
    text: crlf([
      'REGISTER sip:localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKreg1a;rport',
      'Max-Forwards: 70',
      'From: <sip:carol@localhost>;tag=r1',
      'To: <sip:carol@localhost>',
      'Call-ID: reg-1@fuzz',
      'CSeq: 1 REGISTER',
      'Contact: <sip:carol@127.0.0.1:9>;expires=3600;q=0.5',
      'Expires: 3600',
      'User-Agent: fuzz/1',
      'Content-Length: 0',
      '',
      '',
    ]),
  },
  {
    name: 'register-star',
    text: crlf([
      'REGISTER sip:localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKreg2b',
      'Max-Forwards: 70',
      'From: "Carol" <sip:carol@localhost>;tag=r2',
      'To: "Carol" <sip:carol@localhost>',
      'Call-ID: reg-2@fuzz',
      'CSeq: 7 REGISTER',
      'Contact: *',
      'Expires: 0',
      'Content-Length: 0',
      '',
      '',
    ]),
  },
  {
    name: 'message',
    text: crlf([
      'MESSAGE sip:alice@localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmsg1c;rport',
      'Max-Forwards: 70',
      'From: <sip:dave@localhost>;tag=m1',
      'To: <sip:alice@localhost>',
      'Call-ID: msg-1@fuzz',
      'CSeq: 1 MESSAGE',
      'Content-Type: text/plain',
      'Content-Length: 11',
      '',
      'hello alice',
    ]),
  },
  {
    name: 'message-utf8',
    text: crlf([
      'MESSAGE sip:bob@localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmsg2d;rport',
      'Max-Forwards: 70',
      'From: "Dävé ☃" <sip:dave@localhost>;tag=m2',
      'To: sip:bob@localhost',
      'Call-ID: msg-2@fuzz',
      'CSeq: 2 MESSAGE',
      'Date: Sat, 13 Nov 2010 23:29:00 GMT',
      'Content-Type: text/plain;charset=utf-8',
      `Content-Length: ${Buffer.byteLength('grüße ☃ — 𝄞\r\nzweite Zeile')}`,
      '',
      'grüße ☃ — 𝄞\r\nzweite Zeile',
    ]),
  },
  {
    name: 'message-cpim',
    text: (() => {
      const body = crlf([
        'From: <sip:dave@localhost>',
        'To: <sip:alice@localhost>',
        'DateTime: 2024-01-01T00:00:00Z',
        '',
        'Content-Type: text/plain',
        '',
        'wrapped',
      ]);
      return crlf([
        'MESSAGE sip:alice@localhost SIP/2.0',
        'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmsg3e;rport',
        'Max-Forwards: 70',
        'From: <sip:dave@localhost>;tag=m3',
        'To: <sip:alice@localhost>',
        'Call-ID: msg-3@fuzz',
        'CSeq: 3 MESSAGE',
        'Content-Type: message/cpim',
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ]);
    })(),
  },
  {
    name: 'options',
    text: crlf([
      'OPTIONS sip:localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKopt1f;rport',
      'Max-Forwards: 70',
      'From: <sip:dave@localhost>;tag=o1',
      'To: <sip:localhost>',
      'Call-ID: opt-1@fuzz',
      'CSeq: 1 OPTIONS',
      'Accept: application/sdp, text/plain',
      'Content-Length: 0',
      '',
      '',
    ]),
  },
  {
    name: 'response',
    text: crlf([
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKresp1g;received=127.0.0.1;rport=9',
      'From: <sip:dave@localhost>;tag=p1',
      'To: <sip:alice@localhost>;tag=p2',
      'Call-ID: resp-1@fuzz',
      'CSeq: 1 MESSAGE',
      'Content-Length: 0',
      '',
      '',
    ]),
  },
  {
    name: 'response-body',
    text: crlf([
      'SIP/2.0 404 Not Found Here',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKresp2h',
      'From: <sip:dave@localhost>;tag=p3',
      'To: <sip:bob@localhost>;tag=p4',
      'Call-ID: resp-2@fuzz',
      'CSeq: 9 MESSAGE',
      'Content-Type: text/plain',
      'Content-Length: 4',
      '',
      'gone',
    ]),
  },
  {
    name: 'folding',
    text: crlf([
      'MESSAGE sip:alice@localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9',
      '  ;branch=z9hG4bKfold1i',
      '\t;rport',
      'Max-Forwards:',
      ' 70',
      'From: <sip:dave@localhost>',
      ' ;tag=f1',
      'To:   <sip:alice@localhost>  ',
      'Subject: a subject',
      '   folded over',
      '\tthree lines',
      'Call-ID: fold-1@fuzz',
      'CSeq: 4',
      '  MESSAGE',
      'Content-Type: text/plain',
      'Content-Length: 6',
      '',
      'folded',
    ]),
  },
  {
    name: 'compact',
    text: crlf([
      'MESSAGE sip:alice@localhost SIP/2.0',
      'v: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcomp1j;rport',
      'f: <sip:dave@localhost>;tag=c1',
      't: <sip:alice@localhost>',
      'i: comp-1@fuzz',
      'CSeq: 5 MESSAGE',
      'm: <sip:dave@127.0.0.1:9>',
      'k: path, outbound',
      'c: text/plain',
      's: compact',
      'l: 7',
      '',
      'compact',
    ]),
  },
  {
    name: 'multi-via',
    text: crlf([
      'MESSAGE sip:bob@localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmv1k;rport',
      'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKmv2k, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKmv3k;received=192.0.2.9',
      'v: SIP/2.0/TLS proxy.example.com:5061;branch=z9hG4bKmv4k',
      'Record-Route: <sip:192.0.2.1;lr>, <sip:192.0.2.2;lr>',
      'Max-Forwards: 68',
      'From: <sip:dave@localhost>;tag=mv',
      'To: <sip:bob@localhost>',
      'Call-ID: mv-1@fuzz',
      'CSeq: 6 MESSAGE',
      'Content-Type: text/plain',
      'Content-Length: 2',
      '',
      'hi',
    ]),
  },
  {
    name: 'ipv6',
    text: crlf([
      'MESSAGE sip:bob@[::1] SIP/2.0',
      'Via: SIP/2.0/UDP [::1]:9;branch=z9hG4bKv6l;rport',
      'Via: SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bKv6m',
      'Max-Forwards: 70',
      'From: <sip:dave@[2001:db8::9]:5060>;tag=v6',
      'To: <sip:bob@[::1]>',
      'Call-ID: v6-1@[2001:db8::9]',
      'CSeq: 8 MESSAGE',
      'Contact: <sip:dave@[::1]:9;transport=udp>',
      'Content-Type: text/plain',
      'Content-Length: 4',
      '',
      'ipv6',
    ]),
  },
  {
    name: 'escaped-uri',
    text: crlf([
      'MESSAGE sip:al%69ce@localhost;transport=udp;x-param=%41 SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKesc1n;rport',
      'Max-Forwards: 70',
      'From: "A \\"quoted\\" name" <sip:dave@localhost;user=phone>;tag=e1',
      'To: Alice <sip:alice@localhost>',
      'Call-ID: esc-1@fuzz',
      'CSeq: 10 MESSAGE',
      'Content-Type: text/plain',
      'Content-Length: 3',
      '',
      'esc',
    ]),
  },
  {
    name: 'invite-sdp',
    text: (() => {
      const sdp = crlf(['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 9 RTP/AVP 0', '']);
      return crlf([
        'INVITE sip:alice@localhost SIP/2.0',
        'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKinv1o;rport',
        'Max-Forwards: 70',
        'From: <sip:dave@localhost>;tag=i1',
        'To: <sip:alice@localhost>',
        'Call-ID: inv-1@fuzz',
        'CSeq: 1 INVITE',
        'Contact: <sip:dave@127.0.0.1:9>',
        'Content-Type: application/sdp',
        `Content-Length: ${sdp.length}`,
        '',
        sdp,
      ]);
    })(),
  },
  {
    name: 'unknown-method',
    text: crlf([
      'FROBNICATE sip:localhost SIP/2.0',
      'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKunk1p;rport',
      'Max-Forwards: 70',
      'From: <sip:dave@localhost>;tag=u1',
      'To: <sip:localhost>',
      'Call-ID: unk-1@fuzz',
      'CSeq: 1 FROBNICATE',
      'Proxy-Require: foo',
      'Content-Length: 0',
      '',
      '',
    ]),
  },
];

/** The RFC 4475 torture messages kept by the parser tests, when they are there: more shapes to start from. */
export function tortureSeeds(): Array<{ name: string; text: string }> {
  const dir = fileURLToPath(new URL('../sip/fixtures/rfc4475/', import.meta.url));
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.dat'))
    .sort()
    .map((f) => ({ name: `rfc4475/${f}`, text: readFileSync(dir + f, 'latin1') }));
}

export interface Seed {
  name: string;
  bytes: Buffer;
  /** Relative chance of being picked. */
  weight: number;
}

/**
 * All seeds as bytes (torture messages kept as raw octets). The messages above weigh 3 each, the
 * 50 torture messages 1 each, so that about half of the inputs start from a valid, local message.
 */
export function corpus(options: { includeTorture?: boolean } = {}): Seed[] {
  const own = SEEDS.map((s) => ({ name: s.name, bytes: Buffer.from(s.text, 'utf8'), weight: 3 }));
  const torture = options.includeTorture === false ? [] : tortureSeeds().map((s) => ({ name: s.name, bytes: Buffer.from(s.text, 'latin1'), weight: 1 }));
  return [...own, ...torture];
}

function pickSeed(rng: Rng, seeds: readonly Seed[]): Seed {
  const total = seeds.reduce((sum, s) => sum + s.weight, 0);
  let at = rng.int(total);
  for (const seed of seeds) {
    if (at < seed.weight) return seed;
    at -= seed.weight;
  }
  return seeds[seeds.length - 1]!;
}

// ---------------------------------------------------------------------------------------------------
// Mutators. Each takes the bytes and returns new bytes; none throws.

const INTERESTING_BYTES = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x25, 0x2c, 0x2f, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xc0, 0xfe, 0xff];
const INTERESTING_NUMBERS = [
  '0', '-1', '1', '00000000000000000001', '255', '256', '65535', '65536', '2147483647', '2147483648', '4294967295', '4294967296',
  '9999999999', '99999999999', '18446744073709551616', '1e3', '0x10', '+5', ' 7 ', '3.5', 'NaN', 'Infinity', '١٢٣',
];
const TOKENS = [
  'REGISTER', 'MESSAGE', 'OPTIONS', 'INVITE', 'ACK', 'BYE', 'CANCEL', 'SIP/2.0', 'SIP/3.0', 'sip:', 'sips:', 'tel:', 'mailto:', '<', '>', '"',
  '\\', ';tag=', ';branch=z9hG4bK', ';branch=', ';rport', ';received=', ';lr', ';transport=tcp', ';expires=', '?', '&', '@', '@@', ':', '::',
  '[::1]', '[', ']', '%', '%00', '%zz', '%C3%28', ',', ',,', '*', '=', ' ', '\t', 'localhost', '127.0.0.1', 'z9hG4bK', 'Via:', 'v:', 'To:',
  'From:', 'Call-ID:', 'CSeq:', 'Contact:', 'Content-Length:', 'l:', 'Max-Forwards: 0', 'Expires: 0', 'Proxy-Require: x', 'Route: <sip:x;lr>',
];
const UNICODE = [
  '\u0000', '\u00e9', '\u2028', '\u2029', '\u200b', '\u200e', '\u202e', '\ufeff', '\ufffd', '\uffff', '\ud83d\ude00', '\ud800', '\udfff',
  '\u0301', '\u3000', '\u00a0', '\u0085', '\u{1d11e}', '\u{10ffff}', 'ﬃ', 'İ', 'ß',
];

type Mutator = (rng: Rng, buf: Buffer, other: () => Buffer) => Buffer;

const at = (rng: Rng, buf: Buffer) => rng.int(buf.length + 1);

/** Line starts (offsets just after each LF, and 0). */
function lineSpans(buf: Buffer): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x0a) {
      spans.push([start, i + 1]);
      start = i + 1;
    }
  }
  if (start < buf.length) spans.push([start, buf.length]);
  return spans;
}

function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
  return out;
}

function replaceRange(buf: Buffer, start: number, end: number, insert: Buffer): Buffer {
  return Buffer.concat([buf.subarray(0, start), insert, buf.subarray(end)]);
}

function headEnd(buf: Buffer): number {
  const i = buf.indexOf('\r\n\r\n');
  return i >= 0 ? i : buf.length;
}

const MUTATORS: Record<string, Mutator> = {
  flipBit(rng, buf) {
    if (buf.length === 0) return buf;
    const out = Buffer.from(buf);
    for (let n = rng.range(1, 4); n > 0; n--) out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  },
  setByte(rng, buf) {
    if (buf.length === 0) return buf;
    const out = Buffer.from(buf);
    out[rng.int(out.length)] = rng.chance(0.6) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
    return out;
  },
  insertBytes(rng, buf) {
    const i = at(rng, buf);
    return replaceRange(buf, i, i, randomBytes(rng, rng.range(1, 16)));
  },
  deleteBytes(rng, buf) {
    if (buf.length === 0) return buf;
    const i = rng.int(buf.length);
    return replaceRange(buf, i, Math.min(buf.length, i + rng.range(1, 24)), Buffer.alloc(0));
  },
  duplicateLine(rng, buf) {
    const spans = lineSpans(buf);
    if (spans.length === 0) return buf;
    const [s, e] = rng.pick(spans);
    const copies = rng.chance(0.1) ? rng.range(2, 250) : 1;
    return replaceRange(buf, e, e, Buffer.concat(Array.from({ length: copies }, () => buf.subarray(s, e))));
  },
  removeLine(rng, buf) {
    const spans = lineSpans(buf);
    if (spans.length === 0) return buf;
    const [s, e] = rng.pick(spans);
    return replaceRange(buf, s, e, Buffer.alloc(0));
  },
  swapLines(rng, buf) {
    const spans = lineSpans(buf);
    if (spans.length < 2) return buf;
    const a = rng.int(spans.length);
    const b = rng.int(spans.length);
    if (a === b) return buf;
    const [x, y] = a < b ? [spans[a]!, spans[b]!] : [spans[b]!, spans[a]!];
    return Buffer.concat([buf.subarray(0, x[0]), buf.subarray(y[0], y[1]), buf.subarray(x[1], y[0]), buf.subarray(x[0], x[1]), buf.subarray(y[1])]);
  },
  truncate(rng, buf) {
    return buf.subarray(0, rng.int(buf.length + 1));
  },
  hugeHeaderValue(rng, buf) {
    const size = rng.pick([1000, 8191, 8192, 8193, 20000, 65000, 70000]);
    const unit = rng.pick(['a', ' ', ';x=1', ',', '<', '"', 'sip:a@b,', '%41', '\t', 'é', ';branch=z9hG4bK']);
    const value = unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
    const spans = lineSpans(buf);
    const end = headEnd(buf);
    if (spans.length > 1 && rng.chance(0.6)) {
      // Blow up an existing header value in place.
      const [s, e] = spans[rng.range(1, spans.length - 1)]!;
      if (s < end) {
        const lineEnd = buf[e - 2] === 0x0d ? e - 2 : e - 1;
        const pos = rng.range(s, Math.max(s, lineEnd));
        return replaceRange(buf, pos, pos, Buffer.from(value));
      }
    }
    const line = Buffer.from(`${rng.pick(['X-Huge', 'Subject', 'Via', 'Contact', 'To', 'Route', 'Call-ID'])}: ${value}\r\n`);
    const first = spans[0]?.[1] ?? 0;
    return replaceRange(buf, first, first, line);
  },
  contentLength(rng, buf) {
    const text = buf.toString('latin1');
    const value = rng.chance(0.5) ? rng.pick(INTERESTING_NUMBERS) : String(rng.int(rng.pick([10, 100, 70000, 2 ** 31])));
    const m = /^(Content-Length|l)[ \t]*:[^\r\n]*/im.exec(text);
    if (m && rng.chance(0.75)) {
      const replaced = `${m[1]}: ${value}`;
      return replaceRange(buf, m.index, m.index + Buffer.byteLength(m[0], 'latin1'), Buffer.from(replaced, 'latin1'));
    }
    const spans = lineSpans(buf);
    const first = spans[0]?.[1] ?? 0;
    return replaceRange(buf, first, first, Buffer.from(`${rng.chance(0.5) ? 'Content-Length' : 'l'}: ${value}\r\n`));
  },
  unicode(rng, buf) {
    let s = '';
    for (let n = rng.range(1, 6); n > 0; n--) s += rng.pick(UNICODE);
    const i = at(rng, buf);
    return replaceRange(buf, i, i, Buffer.from(s, 'utf8'));
  },
  invalidUtf8(rng, buf) {
    const seqs = [[0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xff, 0xfe], [0xef, 0xbb, 0xbf]];
    const i = at(rng, buf);
    return replaceRange(buf, i, i, Buffer.from(rng.pick(seqs)));
  },
  nul(rng, buf) {
    const i = at(rng, buf);
    return replaceRange(buf, i, rng.chance(0.3) ? Math.min(buf.length, i + 1) : i, Buffer.alloc(rng.range(1, 3)));
  },
  splice(rng, buf, other) {
    const b = other();
    return Buffer.concat([buf.subarray(0, rng.int(buf.length + 1)), b.subarray(rng.int(b.length + 1))]);
  },
  concat(rng, buf, other) {
    // Two messages in one datagram / one write, with or without a separator.
    return Buffer.concat([buf, Buffer.from(rng.pick(['', '\r\n', '\r\n\r\n', '\n'])), other()]);
  },
  crlf(rng, buf) {
    const text = buf.toString('latin1');
    const kind = rng.int(7);
    let out: string;
    if (kind === 0) out = text.replace(/\r\n/g, '\n');
    else if (kind === 1) out = text.replace(/\r\n/g, '\r');
    else if (kind === 2) out = text.replace(/\r\n/g, '\n\r');
    else if (kind === 3) out = '\r\n'.repeat(rng.range(1, 5)) + text;
    else if (kind === 4) {
      const i = rng.int(text.length + 1);
      out = text.slice(0, i) + rng.pick(['\r\n', '\n', '\r', '\r\n ', '\r\n\t', '\r\n\r\n', ' \r\n']) + text.slice(i);
    } else if (kind === 5) {
      // Only one CRLF changed.
      const positions = [...text.matchAll(/\r\n/g)].map((m) => m.index!);
      if (positions.length === 0) return buf;
      const p = rng.pick(positions);
      out = text.slice(0, p) + rng.pick(['\n', '\r', '', '\r\r\n', '\r\n\r\n']) + text.slice(p + 2);
    } else out = text.replace(/\r\n\r\n/, rng.pick(['\r\n', '\n\n', '\r\n \r\n', '\r\n\r\n\r\n']));
    return Buffer.from(out, 'latin1');
  },
  token(rng, buf) {
    const text = buf.toString('latin1');
    const token = Buffer.from(rng.pick(TOKENS), 'latin1');
    // Replace a word (or a separator) with a token, or insert the token.
    const words = [...text.matchAll(/[A-Za-z0-9.\-_]+|[^A-Za-z0-9.\-_]/g)];
    if (words.length === 0 || rng.chance(0.3)) {
      const i = at(rng, buf);
      return replaceRange(buf, i, i, token);
    }
    const w = rng.pick(words);
    return replaceRange(buf, w.index!, w.index! + w[0].length, token);
  },
  number(rng, buf) {
    const text = buf.toString('latin1');
    const runs = [...text.matchAll(/[0-9]+/g)];
    if (runs.length === 0) return buf;
    const r = rng.pick(runs);
    return replaceRange(buf, r.index!, r.index! + r[0].length, Buffer.from(rng.pick(INTERESTING_NUMBERS), 'utf8'));
  },
  headerName(rng, buf) {
    const text = buf.toString('latin1');
    const names = [...text.matchAll(/^([A-Za-z-]+)[ \t]*:/gm)];
    if (names.length === 0) return buf;
    const n = rng.pick(names);
    const replacement = rng.pick([n[1]!.toUpperCase(), n[1]!.toLowerCase(), `${n[1]} `, `${n[1]}\t`, ` ${n[1]}`, '', n[1]![0]!, 'X', `${n[1]}\0`, 'Via', 'Content-Length']);
    return replaceRange(buf, n.index!, n.index! + n[1]!.length, Buffer.from(replacement, 'latin1'));
  },
  manyHeaders(rng, buf) {
    const spans = lineSpans(buf);
    const first = spans[0]?.[1] ?? 0;
    const count = rng.pick([150, 199, 200, 201, 1000, 3000]);
    const name = rng.pick(['X-H', 'Via', 'Route', 'Contact', 'To']);
    const value = name === 'Via' ? 'SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmany' : name === 'Route' || name === 'Contact' ? '<sip:127.0.0.1:9;lr>' : 'x';
    const lines = Array.from({ length: count }, (_, i) => `${name}: ${value}${name === 'X-H' ? i : ''}\r\n`).join('');
    return replaceRange(buf, first, first, Buffer.from(lines));
  },
};

export const MUTATOR_NAMES = Object.keys(MUTATORS);

/** Largest mutant kept: a UDP datagram cannot be bigger, and bigger ones only test the size check. */
const MAX_MUTANT = 65507;

export interface Mutant {
  index: number;
  seedName: string;
  steps: string[];
  bytes: Buffer;
}

/**
 * Gives the seed's branches and Call-IDs a prefix of the input's own, so that Parley does not take an
 * input for a retransmission of an earlier one with the same branch (and absorb it unanswered), and
 * REGISTERs are not refused as out of order. Via lines without rport get one after their sent-by, so
 * that answers come back to the socket that sent the input instead of 127.0.0.1:5060.
 */
function personalize(bytes: Buffer, index: number): Buffer {
  const tag = index.toString(36);
  const text = bytes
    .toString('latin1')
    .replace(/z9hG4bK/g, `z9hG4bK${tag}.`)
    .replace(/^((?:Call-ID|i)[ \t]*:[ \t]*)/gim, `$1${tag}.`)
    .replace(/^((?:Via|v)[ \t]*:[ \t]*SIP[ \t]*\/[ \t]*[0-9.]+[ \t]*\/[ \t]*[A-Za-z]+[ \t]+(?:\[[0-9A-Fa-f:.]+\]|[^ \t;,:\r\n]+)(?:[ \t]*:[ \t]*[0-9]+)?)(?![^\r\n]*rport)/gim, '$1;rport');
  return Buffer.from(text, 'latin1');
}

/** Input number `index` of run `seed`: a seed message with 1 to 5 stacked mutations. */
export function mutant(seed: number, index: number, seeds: readonly Seed[]): Mutant {
  const rng = new Rng(inputSeed(seed, index));
  const start = pickSeed(rng, seeds);
  let bytes = personalize(start.bytes, index);
  const steps: string[] = [];
  const other = () => personalize(pickSeed(rng, seeds).bytes, index);
  for (let n = rng.chance(0.5) ? 1 : rng.range(2, 5); n > 0; n--) {
    const name = rng.pick(MUTATOR_NAMES);
    steps.push(name);
    bytes = MUTATORS[name]!(rng, bytes, other);
    if (bytes.length > MAX_MUTANT) bytes = bytes.subarray(0, MAX_MUTANT);
  }
  return { index, seedName: start.name, steps, bytes: Buffer.from(bytes) };
}

/** A short printable form of an input for failure messages. */
export function describe(m: Mutant): string {
  const preview = m.bytes.subarray(0, 300).toString('latin1').replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `#${m.index} from "${m.seedName}" via ${m.steps.join('+')} (${m.bytes.length} bytes): ${preview}${m.bytes.length > 300 ? '…' : ''}`;
}

// Run directly: writes input <index> of run <seed> to standard output, its description to standard error.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [seedText, indexText] = process.argv.slice(2);
  if (seedText === undefined || indexText === undefined) {
    process.stderr.write('usage: node --import tsx test/robustness/mutate.ts SEED INDEX > input.bin\n');
    process.exit(2);
  }
  const m = mutant(Number(seedText) >>> 0, Number(indexText), corpus());
  process.stderr.write(`${describe(m)}\n`);
  process.stdout.write(m.bytes);
}
