// A grammar-aware SIP fuzzer: each case is a well-formed request for one of Parley's handlers
// (registrar, relay, rooms, presence, XMPP gateway, per-user gateway, OPTIONS, dialog methods and
// unknown ones) with one to three of its meanings changed field by field: ports and numbers out of
// range, hosts that are empty, overlong or malformed, %00 and %0D%0A in user parts, display names and
// parameters, duplicated single-value headers, 70 Vias, 1,000 Contacts, nested multipart bodies,
// broken PIDF, odd command arguments, wrong digest answers. mutate.ts changes bytes; this changes meanings.
//
// Case i of seed s is always the same request (the transport, our sent-by and the digest answer are
// filled in when it is sent), so a failure is reproduced from the two numbers:
//   node --import tsx test/robustness/semantic.ts 0x5ea1f00d 643 [UDP|TCP|TLS|WS] > case.bin
//
// Bodies stay under sip.max_message_size (64 KiB) unless a mutation means to exceed it, so that they
// reach the handlers rather than the transport's size check.
//
// Every address in a case is safe to act on from a test machine: hosts are loopback literals, names
// (which the child process may not resolve, see loopback-only.mjs) or invalid; ports are 9 (discard),
// 1 (closed) or invalid, so nothing Parley sends on a case's behalf reaches another service.
import { pathToFileURL } from 'node:url';
import { Rng, inputSeed } from './mutate.js';

/** The addresses the cases are aimed at; the harness configures Parley to match. */
export const DOMAIN = 'localhost';
/** XMPP gateway domain (xmpp.xmpp_domain in component mode, linked to a closed port, so it queues). */
export const XMPP_GATEWAY = 'xmpp-gw.localhost';
/** Per-user gateway network aliases (gateway.jdomain and irc_domain defaults for DOMAIN). */
export const GATEWAY_XMPP_ALIAS = `xmpp.${DOMAIN}`;
export const GATEWAY_IRC_ALIAS = `irc.${DOMAIN}`;
/** The provisioned user the authenticated cases are sent as, and a registered one that answers 200. */
export const FUZZ_USER = 'fuzzer';
export const ANSWERING_USER = 'carol';
/** Provisioned but never registered: MESSAGEs to it are stored. */
export const OFFLINE_USER = 'dave';
/** The room the room cases talk to (created on the first #join). */
export const ROOM = 'chat-fuzz';
/** A TCP port nothing listens on: #link servers and the XMPP component link point there. */
export const CLOSED_PORT = 1;

export type Transport = 'UDP' | 'TCP' | 'TLS' | 'WS';

/** What only the sender knows: how the case travels and, for authenticated cases, the digest answer. */
export interface RenderContext {
  transport: Transport;
  /** host:port of the sending socket, for the top Via. */
  sentBy: string;
  /** The Authorization (REGISTER) or Proxy-Authorization value for `method` and `uri`, when the sender has a nonce. */
  credentials?: (method: string, uri: string) => string | undefined;
}

/** A request under construction: the top Via is kept apart so the sender can fill in its transport. */
interface Draft {
  method: string;
  uri: string;
  via: { transport?: string; sentBy?: string; params: Array<[string, string | null]> };
  /** Vias below the top one. */
  lowerVias: string[];
  headers: Array<[string, string]>;
  body: Buffer;
  /** Content-Length as written when a mutation chose one; else the body's length. */
  contentLength?: string;
  /** Whether the case carries the fuzz user's digest answer. */
  authenticate: boolean;
  /** A mutation of the digest answer, applied after it is computed. */
  spoilCredentials?: (value: string) => string;
}

export interface SemanticCase {
  index: number;
  /** The handler the case is aimed at, e.g. "rooms-manager". */
  target: string;
  /** What was changed, in order. */
  mutations: string[];
  /** The top Via branch, when a mutation left it readable as sent; responses are matched on it. */
  branch?: string;
  /** Whether the top Via asks for the response at the source port (rport), i.e. back to the sender. */
  rport: boolean;
  /** Content-Length does not match the body: on a stream it desynchronises framing, so it goes alone. */
  breaksFraming: boolean;
  authenticate: boolean;
  draft: Draft;
}

// ---------------------------------------------------------------------------------------------
// Value sets

const big = (n: number) => 'a'.repeat(n);
/** Numbers at every edge a parser or a timer meets: zero, 2^31, 2^32, 2^53, negative, not numbers. */
export const NUMBERS = [
  '0', '1', '-1', '2147483647', '2147483648', '4294967295', '4294967296', '9007199254740992', '9007199254740993',
  '18446744073709551616', '99999999999999999999999999999', '-2147483649', '1e3', '1e400', '0x10', '3.5', '-0', '+5',
  '00000000000000000000000000060', 'abc', '', ' ', 'NaN', 'Infinity', '१२', '5 5', '60;x', '\t60',
];
/** q-values: the same, and the edges of RFC 3261's 0..1 with up to three decimals. */
const Q_VALUES = [...NUMBERS, '0.0', '1.000', '1.0001', '0.', '.5', '2', '-0.5', '0.5.5'];
/** Ports of Via, URIs and commands: only 9 (discard) and 1 (closed) are real, the rest are out of range or not numbers. */
export const PORTS = ['0', '65536', '-1', '99999', '4294967305', '9007199254740993', 'abc', '', '9', String(CLOSED_PORT), '00009', '6553', '65535'];
/** Hosts: empty, overlong, malformed, IPv6 references with and without their brackets; loopback or unresolvable only. */
export const HOSTS = [
  '', big(64), `${big(63)}.${big(63)}.${big(63)}.${big(63)}.com`, big(300), '-bad-.example.com', 'exa mple.com', 'a..b', '.', '..',
  'localhost.', 'LOCALHOST', 'x@y', '127.0.0.1', '127.0.0.256', '127.1', '0127.0.0.1', '2130706433', '[::1]', '[::1', '::1]', '::1',
  '[]', '[zz::1]', '[::ffff:127.0.0.1]', '[::1%25lo]', `[${'1:'.repeat(20)}1]`, '[::1]:9', '1.2.3.4.5', 'host_name.invalid',
  'xn--bcher-kva.invalid', 'bücher.invalid', '%00', 'a%0D%0Ab', '*', 'sip:localhost',
];
/** Put into user parts, display names and parameters. */
export const INJECTIONS = ['%00', '%0D%0A', '%0d%0aX-Injected:%20yes', '%0A', '%0D', '%', '%zz', '%C3%28', '%E2%80%A8', '%FF%FE', `${big(2000)}%00`];
/** Raw characters inside a quoted display name: a CRLF written as such would end the line, so it is escaped or bare. */
const DISPLAY_NAMES = ['"a\\\r\\\nX-Injected: yes"', '"\0"', '"a\rb"', '"\\"', `"${big(9000)}"`, '"\u2028"', '"%0D%0A"', '""', '"unterminated', 'bare\u0007name'];
/** Date headers: year 0001, year 9999, far past and future, and garbage. */
export const DATES = [
  'Mon, 01 Jan 0001 00:00:00 GMT', 'Fri, 31 Dec 9999 23:59:59 GMT', 'Thu, 01 Jan 1970 00:00:00 GMT', 'Sat, 13 Nov 2010 23:29:00 GMT',
  'Tue, 99 Foo 2024 99:99:99 GMT', 'garbage', '', '2024-13-45T99:99:99Z', '1e400', '-271821-04-20', '+275760-09-13T00:00:00.001Z',
  'Wed, 31 Dec 275760 23:59:59 GMT', `${big(5000)}`, 'Mon, 01 Jan 0000 00:00:00 GMT',
];
/** Methods Parley serves and some it does not. */
export const METHODS = [
  'REGISTER', 'MESSAGE', 'OPTIONS', 'PUBLISH', 'SUBSCRIBE', 'NOTIFY', 'INVITE', 'ACK', 'BYE', 'CANCEL', 'INFO', 'PRACK', 'REFER', 'UPDATE',
  'FOO', 'GET', 'message', 'M'.repeat(200), 'MESSAGE!', 'BREW',
];
/** Headers RFC 3261 allows once; duplicating them must not confuse anyone. */
const SINGLE_VALUE = ['from', 'to', 'call-id', 'cseq', 'max-forwards', 'content-length', 'expires', 'content-type', 'event', 'sip-if-match', 'min-expires', 'date'];

// ---------------------------------------------------------------------------------------------
// Bodies

const pidf = (entity: string, basic: string, note = '') =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="${entity}">` +
  `<tuple id="t1"><status><basic>${basic}</basic></status>${note ? `<note>${note}</note>` : ''}</tuple>` +
  '<dm:person id="p1"><rpid:activities><rpid:away/></rpid:activities></dm:person></presence>';

/** Presence documents, good and broken. */
function pidfBody(rng: Rng, entity: string): { text: string; name: string } {
  const documents: Array<[string, () => string]> = [
    ['open', () => pidf(entity, 'open', 'in a meeting')],
    ['closed', () => pidf(entity, 'closed')],
    ['basic of garbage', () => pidf(entity, big(1000))],
    ['unclosed', () => pidf(entity, 'open').slice(0, -20)],
    ['not XML', () => 'this is not xml <'],
    ['empty', () => ''],
    ['wrong namespace', () => pidf(entity, 'open').replace('urn:ietf:params:xml:ns:pidf"', 'urn:example"')],
    ['other entity', () => pidf('sip:someone-else@localhost', 'open')],
    ['entity with CRLF', () => pidf('sip:a%0D%0Ab@localhost', 'open', 'x\r\ny')],
    ['8,000 nested elements', () => pidf(entity, 'open').replace('</tuple>', `${'<x>'.repeat(8000)}deep${'</x>'.repeat(8000)}</tuple>`)],
    ['billion laughs', () => `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>${pidf(entity, 'open', '&lol3;').replace(/^<\?xml[^>]*>/, '')}`],
    ['external entity', () => `<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>${pidf(entity, 'open', '&x;').replace(/^<\?xml[^>]*>/, '')}`],
    ['800 tuples', () => pidf(entity, 'open').replace('<tuple', `${'<tuple id="x"><status><basic>open</basic></status></tuple>'.repeat(800)}<tuple`)],
    ['2,000 activities', () => pidf(entity, 'open').replace('<rpid:away/>', '<rpid:other>x</rpid:other>'.repeat(2000))],
    ['invalid UTF-8', () => `${pidf(entity, 'open', '\uFFFD')}`],
    ['a 50 KB note', () => pidf(entity, 'open', big(50_000))],
  ];
  const [name, make] = rng.pick(documents);
  return { name, text: make() };
}

/** A multipart/mixed body nested `depth` deep, with its Content-Type (boundary spoilt in some variants). */
function nestedMultipart(rng: Rng, depth: number): { contentType: string; body: string; name: string } {
  let inner = 'Content-Type: text/plain\r\n\r\nhello from the innermost part';
  let contentType = 'text/plain';
  for (let level = depth; level > 0; level--) {
    const boundary = `b${level}`;
    contentType = `multipart/mixed;boundary=${boundary}`;
    inner = `Content-Type: ${contentType}\r\n\r\n--${boundary}\r\n${inner}\r\n--${boundary}--\r\n`;
  }
  const body = inner.slice(inner.indexOf('\r\n\r\n') + 4);
  const variant = rng.int(5);
  if (variant === 1) return { contentType: 'multipart/mixed', body, name: `multipart ${depth} deep, no boundary parameter` };
  if (variant === 2) return { contentType, body: body.replace(/--b\d+--\r\n$/, ''), name: `multipart ${depth} deep, unterminated` };
  if (variant === 3) return { contentType: `${contentType};boundary=other`, body, name: `multipart ${depth} deep, two boundaries` };
  if (variant === 4) return { contentType: 'multipart/related;type="application/pidf+xml";boundary=b1', body, name: `multipart/related ${depth} deep` };
  return { contentType, body, name: `multipart ${depth} deep` };
}

/** Command arguments that are odd in every way a parser can meet. */
const ODD_ARGS = ['', '%00', big(5000), '\u202e', '😀', 'a b c d e f g h', 'tls=bogus', '-', '@', '@@', 'a@', '@b', '*', '#', '\t', '"quoted"', 'sip:', 'sip:x@[::1', 'x@y@z'];

function roomCommand(rng: Rng, index: number): string {
  const weird = () => rng.pick([...ODD_ARGS, 'bob', 'sip:bob@localhost', `sip:${FUZZ_USER}@${DOMAIN}`, `sip:x@${rng.pick(HOSTS)}`]);
  return rng.pick([
    () => '#join', () => '#leave', () => '#members', () => `#topic ${weird()}`, () => `#invite ${weird()}`, () => `#add ${weird()}`,
    () => `#remove ${weird()}`, () => `#modify ${weird()} ${rng.pick(['admin', 'member', 'owner', 'god', ''])}`, () => `#nick ${weird()}`,
    () => '#destroy', () => '#help', () => `plain text ${index}`, () => '', () => '#', () => `#${weird()}`, () => `#join\r\n#leave\r\n#join`,
    () => `${'#members\n'.repeat(200)}`, () => `#exit`, () => `#deny ${weird()}`, () => `#list`, () => `#role ${weird()} admin`,
  ])();
}

function managerCommand(rng: Rng, index: number): string {
  const name = rng.pick([`chat-f${index % 50}`, ROOM, 'chat-', `chat-${big(300)}`, 'chat-%00', 'notaroom', '', 'chat-a b', `chat-${rng.pick(INJECTIONS)}`]);
  return rng.pick([
    () => `#create ${name}`, () => `#create ${name} private`, () => `#create ${name} ${rng.pick(ODD_ARGS)}`, () => '#rooms', () => '#help',
    () => `#members ${name}`, () => `#join ${name}`, () => `#destroy ${name}`, () => `#${rng.pick(ODD_ARGS)}`, () => 'not a command',
  ])();
}

function gatewayCommand(rng: Rng, index: number): string {
  const server = () => rng.pick([`127.0.0.1:${CLOSED_PORT}`, `127.0.0.1:${rng.pick(PORTS)}`, `[::1]:${CLOSED_PORT}`, '[::1', `${rng.pick(HOSTS)}:${CLOSED_PORT}`, 'example.net', '', ':', `127.0.0.1:${CLOSED_PORT}:5`]);
  const account = () => rng.pick([`fuzz${index % 7}@example.net`, 'a@b', '@', 'a@', `${big(3000)}@example.net`, `x%00@example.net`, 'nick@irc.example', rng.pick(ODD_ARGS)]);
  const tls = () => rng.pick(['', 'tls=none', 'tls=starttls', 'tls=direct', 'tls=', 'tls=bogus', 'tls=none tls=direct']);
  return rng.pick([
    () => `#link xmpp ${account()} secret ${server()} ${tls()}`, () => `#link irc ${account()} secret ${server()} ${tls()}`,
    () => `#link ${rng.pick(['xmpp', 'irc', 'msn', '', big(100)])} ${account()}`, () => '#link', () => `#unlink ${rng.pick(['1', '0', '-1', '99999999999999999999', 'abc', ...ODD_ARGS])}`,
    () => '#accounts', () => `#online ${rng.pick(['', '1', ...ODD_ARGS])}`, () => `#offline ${rng.pick(['', '1', ...ODD_ARGS])}`, () => '#status',
    () => `#allow ${rng.pick(ODD_ARGS)}`, () => `#deny ${rng.pick(ODD_ARGS)}`, () => '#help', () => `#${rng.pick(ODD_ARGS)}`, () => 'hello gateway',
  ])();
}

// ---------------------------------------------------------------------------------------------
// Targets: a valid request for each handler

interface Target {
  name: string;
  weight: number;
  build(rng: Rng, index: number): Omit<Draft, 'via' | 'lowerVias' | 'headers' | 'contentLength' | 'spoilCredentials'> & {
    to?: string;
    from?: string;
    headers?: Array<[string, string]>;
    contentType?: string;
  };
}

const sip = (user: string, host = DOMAIN) => `sip:${user}@${host}`;
/** A sender outside Parley's domains, reachable only at the discard port: replies to it go nowhere. */
const STRANGER = 'sip:stranger@127.0.0.1:9';

const TARGETS: Target[] = [
  {
    name: 'registrar',
    weight: 12,
    build: (rng, index) => {
      const user = rng.pick([FUZZ_USER, `fuzzreg${index % 5}`]);
      const contact = rng.pick([`<sip:${user}@127.0.0.1:9>`, `<sip:${user}@127.0.0.1:9;transport=tcp>;expires=60`, '*', `<sip:${user}@[::1]:9>;q=0.5`, `"Me" <sip:${user}@unresolvable.invalid>`]);
      const headers: Array<[string, string]> = [['contact', contact], ['expires', rng.pick(['3600', '0', '60'])]];
      if (rng.chance(0.2)) headers.push(['path', '<sip:127.0.0.1:9;lr>']);
      if (rng.chance(0.2)) headers.push(['supported', 'path, outbound']);
      return { method: 'REGISTER', uri: `sip:${DOMAIN}`, to: `<${sip(user)}>`, from: `<${sip(user)}>`, headers, body: Buffer.alloc(0), authenticate: user === FUZZ_USER };
    },
  },
  {
    name: 'relay-local',
    weight: 10,
    build: (rng, index) => ({ method: 'MESSAGE', uri: sip(ANSWERING_USER), body: Buffer.from(`relay #${index} ✓`), contentType: rng.pick(['text/plain', 'text/plain;charset=utf-8', 'message/cpim', 'application/im-iscomposing+xml']), authenticate: true }),
  },
  {
    name: 'relay-offline',
    weight: 5,
    build: (_rng, index) => ({ method: 'MESSAGE', uri: sip(OFFLINE_USER), body: Buffer.from(`stored #${index}`), contentType: 'text/plain', authenticate: true }),
  },
  {
    name: 'relay-unknown',
    weight: 4,
    build: (_rng, index) => ({ method: 'MESSAGE', uri: sip(`nobody${index % 100}`), body: Buffer.from('anyone?'), contentType: 'text/plain', authenticate: true }),
  },
  {
    name: 'relay-foreign',
    weight: 4,
    build: (rng) => ({ method: 'MESSAGE', uri: sip('someone', rng.pick(['example.com', '127.0.0.1:9', '[::1]:9', 'unresolvable.invalid'])), body: Buffer.from('far away'), contentType: 'text/plain', authenticate: true }),
  },
  {
    name: 'rooms-manager',
    weight: 8,
    build: (rng, index) => ({ method: 'MESSAGE', uri: sip('chat-manager'), body: Buffer.from(managerCommand(rng, index)), contentType: 'text/plain', authenticate: true }),
  },
  {
    name: 'room',
    weight: 10,
    build: (rng, index) => ({ method: 'MESSAGE', uri: sip(rng.chance(0.8) ? ROOM : `chat-f${index % 50}`), body: Buffer.from(roomCommand(rng, index)), contentType: rng.pick(['text/plain', 'text/plain;charset=utf-8', 'application/im-iscomposing+xml']), authenticate: true }),
  },
  {
    name: 'presence-publish',
    weight: 8,
    build: (rng) => {
      const entity = sip(FUZZ_USER);
      const document = pidfBody(rng, entity);
      const headers: Array<[string, string]> = [['event', rng.pick(['presence', 'presence', 'presence.winfo', 'dialog', ''])], ['expires', rng.pick(['3600', '60', '0'])]];
      if (rng.chance(0.3)) headers.push(['sip-if-match', rng.pick(['unknown-etag', '', big(500), '%00'])]);
      return { method: 'PUBLISH', uri: entity, body: Buffer.from(document.text), contentType: rng.pick(['application/pidf+xml', 'application/pidf+xml', 'text/plain', 'application/xml']), headers, authenticate: true };
    },
  },
  {
    name: 'presence-subscribe',
    weight: 7,
    build: (rng) => {
      const headers: Array<[string, string]> = [
        ['event', rng.pick(['presence', 'presence', 'presence.winfo', 'foo', '', 'presence;id=%00'])],
        ['expires', rng.pick(['3600', '60', '0'])],
        ['contact', rng.pick(['<sip:fuzz@127.0.0.1:9>', '<sip:fuzz@unresolvable.invalid>', '<sip:fuzz@127.0.0.1:9;transport=tcp>'])],
      ];
      if (rng.chance(0.5)) headers.push(['accept', rng.pick(['application/pidf+xml', 'text/plain', '*/*'])]);
      return { method: 'SUBSCRIBE', uri: sip(rng.pick([ANSWERING_USER, FUZZ_USER, OFFLINE_USER, 'nobody'])), body: Buffer.alloc(0), headers, authenticate: true };
    },
  },
  {
    name: 'presence-notify',
    weight: 2,
    build: (rng) => ({ method: 'NOTIFY', uri: sip(FUZZ_USER), body: Buffer.from(pidfBody(rng, sip(FUZZ_USER)).text), contentType: 'application/pidf+xml', headers: [['event', 'presence'], ['subscription-state', rng.pick(['active;expires=60', 'terminated;reason=timeout', '', 'bogus'])]], authenticate: true }),
  },
  {
    name: 'xmpp-gateway',
    weight: 7,
    build: (rng, index) => {
      const user = rng.pick([`romeo*xmpp.example`, `juliet${index % 10}*capulet.example`, '*', 'a*', '*b', 'a*b*c', `${big(1100)}*x.example`, 'x%00*y.example', 'x*%5B::1%5D', 'x*127.0.0.1']);
      const subscribe = rng.chance(0.2);
      return subscribe
        ? { method: 'SUBSCRIBE', uri: sip(user, XMPP_GATEWAY), body: Buffer.alloc(0), headers: [['event', 'presence'], ['contact', '<sip:fuzz@127.0.0.1:9>'], ['expires', '60']], authenticate: true }
        : { method: 'MESSAGE', uri: sip(user, XMPP_GATEWAY), body: Buffer.from(rng.pick(['hello xmpp', '', '<message/>', ']]>', '\u0000', big(20_000)])), contentType: rng.pick(['text/plain', 'text/plain;charset=utf-8', 'text/plain;charset=iso-8859-1', 'text/html']), authenticate: true };
    },
  },
  {
    name: 'user-gateway',
    weight: 8,
    build: (rng, index) => {
      const toNetwork = rng.chance(0.25);
      const uri = toNetwork
        ? rng.pick([sip(`juliet*example.net`, GATEWAY_XMPP_ALIAS), sip(`bob*irc.example`, GATEWAY_IRC_ALIAS), sip(`%23chan*irc.example`, GATEWAY_IRC_ALIAS), sip(`nick*room*conference.example.net`, GATEWAY_XMPP_ALIAS), sip('*', GATEWAY_XMPP_ALIAS)])
        : sip('gateway');
      return { method: 'MESSAGE', uri, body: Buffer.from(toNetwork ? rng.pick(['#join', '#leave', 'hi', '']) : gatewayCommand(rng, index)), contentType: 'text/plain', authenticate: true };
    },
  },
  {
    name: 'options',
    weight: 3,
    build: (rng) => ({ method: 'OPTIONS', uri: rng.pick([`sip:${DOMAIN}`, sip(ANSWERING_USER), sip('nobody')]), body: Buffer.alloc(0), authenticate: rng.chance(0.5) }),
  },
  {
    name: 'other-methods',
    weight: 6,
    build: (rng, index) => ({ method: rng.pick(METHODS), uri: rng.pick([sip(ANSWERING_USER), sip(ROOM), sip('gateway'), `sip:${DOMAIN}`]), body: rng.chance(0.3) ? Buffer.from(`v=0\r\no=- ${index} 1 IN IP4 127.0.0.1\r\n`) : Buffer.alloc(0), contentType: 'application/sdp', authenticate: rng.chance(0.5) }),
  },
];
const TOTAL_WEIGHT = TARGETS.reduce((sum, t) => sum + t.weight, 0);

function pickTarget(rng: Rng): Target {
  let n = rng.int(TOTAL_WEIGHT);
  for (const target of TARGETS) {
    if ((n -= target.weight) < 0) return target;
  }
  return TARGETS[0]!;
}

// ---------------------------------------------------------------------------------------------
// Draft editing

const get = (d: Draft, name: string) => d.headers.find(([n]) => n === name)?.[1];
function set(d: Draft, name: string, value: string): void {
  const at = d.headers.findIndex(([n]) => n === name);
  if (at >= 0) d.headers[at] = [name, value];
  else d.headers.push([name, value]);
}
/** Replaces the user part (or host) inside a SIP URI written anywhere in `text`. */
const withUser = (text: string, user: string) => text.replace(/sips?:([^@;>]*@)?/, (m, had?: string) => (had ? `sip:${user}@` : m));
const withHost = (text: string, host: string) => text.replace(/(sips?:(?:[^@;>]*@)?)([^;>?]*)/, `$1${host}`);

/** Where an address lives in a draft: the Request-URI, or a header holding a name-addr. */
type Place = 'uri' | 'from' | 'to' | 'contact';
function places(d: Draft): Place[] {
  return ['uri', 'from', 'to', ...(get(d, 'contact') && get(d, 'contact') !== '*' ? (['contact'] as const) : [])];
}
function edit(d: Draft, place: Place, change: (text: string) => string): void {
  if (place === 'uri') d.uri = change(d.uri);
  else set(d, place, change(get(d, place) ?? ''));
}

type Mutation = (d: Draft, rng: Rng) => string;

const MUTATIONS: Record<string, Mutation> = {
  viaPort: (d, rng) => {
    const port = rng.pick(PORTS);
    d.via.sentBy = port === '' ? '127.0.0.1' : `127.0.0.1:${port}`;
    // Without rport the response goes to the sent-by port: only ever an invalid one or the discard port.
    if (port !== '' && rng.chance(0.5)) d.via.params = d.via.params.filter(([n]) => n !== 'rport');
    return `Via sent-by port ${JSON.stringify(port)}${d.via.params.some(([n]) => n === 'rport') ? '' : ', no rport'}`;
  },
  viaHost: (d, rng) => {
    const host = rng.pick(HOSTS);
    d.via.sentBy = `${host}:9`;
    return `Via sent-by host ${JSON.stringify(host.slice(0, 40))}`;
  },
  viaParams: (d, rng) => {
    const [name, value] = rng.pick<[string, string | null]>([
      ['received', rng.pick(HOSTS)], ['rport', rng.pick(PORTS)], ['maddr', rng.pick(HOSTS)], ['ttl', rng.pick(NUMBERS)], ['branch', rng.pick(['', 'z9hG4bK', big(9000), 'z9hG4bK%00', 'notmagic'])],
      ['transport', 'sctp'], ['rport', null], ['received', null], [rng.pick(INJECTIONS), null],
    ]);
    d.via.params = d.via.params.filter(([n]) => n !== name);
    d.via.params.push([name, value]);
    return `Via ;${name}${value === null ? '' : `=${JSON.stringify(value.slice(0, 40))}`}`;
  },
  viaTransport: (d, rng) => {
    d.via.transport = rng.pick(['SCTP', 'udp', 'XYZ', '', 'TLS-SCTP', 'WSS', big(100)]);
    return `Via transport ${JSON.stringify(d.via.transport.slice(0, 20))}`;
  },
  seventyVias: (d, rng) => {
    const count = rng.pick([70, 70, 150, 199]);
    for (let i = 0; i < count; i++) d.lowerVias.push(`SIP/2.0/UDP 127.0.0.${(i % 250) + 1}:${rng.pick(['9', String(CLOSED_PORT), '0'])};branch=z9hG4bKlow${i}${rng.chance(0.1) ? ';received=127.0.0.1' : ''}`);
    return `${count} Vias`;
  },
  number: (d, rng) => {
    const value = rng.pick(NUMBERS);
    const field = rng.pick(['expires', 'cseq', 'content-length', 'max-forwards', 'min-expires', 'contact;expires', 'contact;q', 'retry-after', 'subscription-state;expires']);
    switch (field) {
      case 'cseq':
        set(d, 'cseq', `${value} ${rng.chance(0.9) ? d.method : rng.pick(METHODS)}`);
        break;
      case 'content-length':
        d.contentLength = value;
        break;
      case 'contact;expires':
      case 'contact;q': {
        const param = field.split(';')[1]!;
        const v = param === 'q' ? rng.pick(Q_VALUES) : value;
        set(d, 'contact', `${get(d, 'contact') && get(d, 'contact') !== '*' ? get(d, 'contact')!.replace(/;(expires|q)=[^;,]*/g, '') : `<sip:${FUZZ_USER}@127.0.0.1:9>`};${param}=${v}`);
        return `Contact ;${param}=${JSON.stringify(v)}`;
      }
      case 'subscription-state;expires':
        set(d, 'subscription-state', `active;expires=${value}`);
        break;
      default:
        set(d, field, value);
    }
    return `${field} ${JSON.stringify(value)}`;
  },
  date: (d, rng) => {
    const date = rng.pick(DATES);
    set(d, 'date', date);
    return `Date ${JSON.stringify(date.slice(0, 40))}`;
  },
  injectUser: (d, rng) => {
    const place = rng.pick(places(d));
    const text = rng.pick(INJECTIONS);
    const where = rng.int(3);
    edit(d, place, (value) => {
      const user = /sips?:([^@;>]*)@/.exec(value)?.[1] ?? 'x';
      return withUser(value, where === 0 ? text : where === 1 ? `${user}${text}` : `${text}${user}`);
    });
    return `${place} user part with ${JSON.stringify(text.slice(0, 30))}`;
  },
  injectDisplayName: (d, rng) => {
    const place = rng.pick(['from', 'to', 'contact'].filter((p) => get(d, p) !== undefined && get(d, p) !== '*'));
    const name = rng.pick(DISPLAY_NAMES);
    edit(d, place as Place, (value) => `${name} ${value.replace(/^[^<]*</, '<').replace(/^(?!<)(sips?:[^;]*)/, '<$1>')}`);
    return `${place} display name ${JSON.stringify(name.slice(0, 30))}`;
  },
  injectParam: (d, rng) => {
    const place = rng.pick(places(d));
    const text = rng.pick(INJECTIONS);
    const name = rng.pick(['tag', 'expires', 'q', 'transport', 'lr', 'x', 'maddr', 'user', 'method', text]);
    if (place === 'uri') d.uri = `${d.uri};${name}=${text}`;
    else edit(d, place, (value) => (name === 'tag' ? value.replace(/;tag=[^;]*/, '') : value) + `;${name}=${text}`);
    return `${place} ;${name.slice(0, 20)}=${JSON.stringify(text.slice(0, 30))}`;
  },
  host: (d, rng) => {
    const place = rng.pick(places(d));
    const host = rng.pick(HOSTS);
    edit(d, place, (value) => withHost(value, host));
    return `${place} host ${JSON.stringify(host.slice(0, 40))}`;
  },
  uriPort: (d, rng) => {
    const place = rng.pick(places(d));
    const port = rng.pick(PORTS);
    edit(d, place, (value) => value.replace(/(sips?:(?:[^@;>]*@)?[^;>:?]*)(?::[^;>?]*)?/, `$1:${port}`));
    return `${place} port ${JSON.stringify(port)}`;
  },
  duplicate: (d, rng) => {
    const name = rng.pick(SINGLE_VALUE);
    const current = name === 'content-length' ? String(d.body.length) : get(d, name);
    const other = rng.pick([current ?? '1', name === 'call-id' ? 'other@fuzz' : name === 'from' || name === 'to' ? `<sip:other@${DOMAIN}>;tag=o` : rng.pick(NUMBERS)]);
    if (name === 'content-length') {
      d.contentLength = current;
      d.headers.push(['content-length', current!], ['content-length', other]);
    } else {
      if (current === undefined) d.headers.push([name, rng.pick(NUMBERS)]);
      d.headers.push([name, other]);
    }
    return `duplicate ${name} (${JSON.stringify(other.slice(0, 30))})`;
  },
  thousandContacts: (d, rng) => {
    const perLine = rng.pick([1, 7, 1000]);
    d.headers = d.headers.filter(([n]) => n !== 'contact');
    const contacts = Array.from({ length: 1000 }, (_, i) => `<sip:c${i}@127.0.0.1:9>;expires=${rng.pick(['60', '0', '3600'])}`);
    for (let i = 0; i < contacts.length; i += perLine) d.headers.push(['contact', contacts.slice(i, i + perLine).join(', ')]);
    return `1000 Contacts, ${perLine} per line`;
  },
  multipart: (d, rng) => {
    const depth = rng.pick([1, 2, 5, 50, 500]);
    const part = nestedMultipart(rng, depth);
    d.body = Buffer.from(part.body);
    set(d, 'content-type', part.contentType);
    return part.name;
  },
  method: (d, rng) => {
    const method = rng.pick(METHODS);
    d.method = method;
    if (rng.chance(0.8)) set(d, 'cseq', `${get(d, 'cseq')?.split(' ')[0] ?? '1'} ${method}`);
    return `method ${JSON.stringify(method.slice(0, 20))}`;
  },
  pidf: (d, rng) => {
    const document = pidfBody(rng, d.uri);
    d.body = Buffer.from(document.text);
    set(d, 'content-type', 'application/pidf+xml');
    if (!get(d, 'event')) set(d, 'event', 'presence');
    return `PIDF body: ${document.name}`;
  },
  contentType: (d, rng) => {
    const type = rng.pick(['', 'text/plain;charset=utf-16', 'text/plain;charset=%00', 'application/pidf+xml', 'message/cpim', '*/*', 'text', '/', big(9000), 'text/plain;charset="unterminated']);
    set(d, 'content-type', type);
    return `Content-Type ${JSON.stringify(type.slice(0, 40))}`;
  },
  remove: (d, rng) => {
    const name = rng.pick(['from', 'to', 'call-id', 'cseq', 'max-forwards', 'contact', 'event', 'content-type', 'via']);
    d.headers = d.headers.filter(([n]) => n !== name);
    return `no ${name}`;
  },
  maxForwardsZero: (d, rng) => {
    set(d, 'max-forwards', rng.pick(['0', '1']));
    if (rng.chance(0.5)) d.headers.push(['route', rng.pick(['<sip:127.0.0.1:9;lr>', `<sip:${DOMAIN};lr>`, '<sip:[::1;lr>', '<sip:unresolvable.invalid;lr>'])]);
    return `Max-Forwards ${get(d, 'max-forwards')}${get(d, 'route') ? ' with a Route' : ''}`;
  },
  body: (d, rng) => {
    const body = rng.pick(['', '\0'.repeat(100), big(60_000), '\r\n\r\n', '\uFFFD\uD800', '#'.repeat(4097)]);
    d.body = Buffer.from(body);
    return `body of ${body.length} characters`;
  },
  credentials: (d, rng) => {
    d.authenticate = true;
    const spoil = rng.pick<[string, (value: string) => string]>([
      ['nc of 2^53', (v) => v.replace(/nc=[0-9a-f]+/, 'nc=20000000000000')],
      ['nc not hex', (v) => v.replace(/nc=[0-9a-f]+/, 'nc=zz')],
      ['wrong response', (v) => v.replace(/response="[0-9a-f]/, 'response="g')],
      ['other user', (v) => v.replace(/username="[^"]*"/, `username="${ANSWERING_USER}"`)],
      ['unknown algorithm', (v) => v.replace(/algorithm=[A-Z0-9-]+/, 'algorithm=SHA-512-256')],
      ['no qop', (v) => v.replace(/, qop=auth/, '')],
      ['uri of another resource', (v) => v.replace(/uri="[^"]*"/, 'uri="sip:elsewhere@localhost"')],
      ['uri that does not parse', (v) => v.replace(/uri="[^"]*"/, 'uri="sip:[::1"')],
      ['nonce of garbage', (v) => v.replace(/nonce="[^"]*"/, `nonce="${rng.pick(['', big(5000), '%00', 'AAAA'])}"`)],
      ['unterminated quote', (v) => v.replace(/"$/, '')],
      ['twice', (v) => `${v}, ${v}`],
      ['realm with CRLF', (v) => v.replace(/realm="[^"]*"/, 'realm="a%0D%0Ab"')],
    ]);
    d.spoilCredentials = spoil[1];
    return `credentials: ${spoil[0]}`;
  },
};
const MUTATION_NAMES = Object.keys(MUTATIONS);

// ---------------------------------------------------------------------------------------------
// Cases

/** Case `index` of run `seed`: a request for one handler, with zero (5 %) to three meanings changed. */
export function semanticCase(seed: number, index: number): SemanticCase {
  const rng = new Rng(inputSeed(seed ^ 0x53454d41, index));
  const target = pickTarget(rng);
  const base = target.build(rng, index);
  const tag = index.toString(36);
  const branch = `z9hG4bKsem${tag}`;
  const from = base.from ?? rng.pick([`<${sip(FUZZ_USER)}>`, `<${sip(FUZZ_USER)}>`, `<${sip(FUZZ_USER)}>`, `<${STRANGER}>`, `<${sip(ANSWERING_USER)}>`]);
  const draft: Draft = {
    method: base.method,
    uri: base.uri,
    via: { params: [['branch', branch], ['rport', null]] },
    lowerVias: [],
    headers: [
      ['max-forwards', '70'],
      ['from', `${from};tag=t${tag}`],
      ['to', base.to ?? `<${base.uri}>`],
      ['call-id', `sem${tag}@fuzz`],
      ['cseq', `${1 + rng.int(1000)} ${base.method}`],
      ...(base.headers ?? []),
      ...(base.body.length > 0 || base.contentType ? ([['content-type', base.contentType ?? 'text/plain']] as Array<[string, string]>) : []),
    ],
    body: base.body,
    authenticate: base.authenticate && from === `<${sip(FUZZ_USER)}>`,
  };
  const c: SemanticCase = { index, target: target.name, mutations: [], rport: true, breaksFraming: false, authenticate: false, draft };
  const count = rng.chance(0.05) ? 0 : rng.chance(0.6) ? 1 : rng.range(2, 3);
  for (let n = 0; n < count; n++) c.mutations.push(MUTATIONS[rng.pick(MUTATION_NAMES)]!(draft, rng));
  const branchParam = draft.via.params.find(([n]) => n === 'branch');
  c.branch = c.mutations.includes('no via') || branchParam?.[1] !== branch ? undefined : branch;
  c.rport = draft.via.params.some(([n, v]) => n === 'rport' && v === null);
  c.breaksFraming = draft.contentLength !== undefined;
  c.authenticate = draft.authenticate;
  return c;
}

/** The bytes of a case as sent over `ctx.transport` from `ctx.sentBy`. */
export function render(c: SemanticCase, ctx: RenderContext): Buffer {
  const d = c.draft;
  const lines = [`${d.method} ${d.uri} SIP/2.0`];
  const removedVia = c.mutations.includes('no via');
  if (!removedVia) {
    const params = d.via.params.map(([n, v]) => (v === null ? `;${n}` : `;${n}=${v}`)).join('');
    lines.push(`Via: SIP/2.0/${d.via.transport ?? ctx.transport} ${d.via.sentBy ?? ctx.sentBy}${params}`);
  }
  for (const via of d.lowerVias) lines.push(`Via: ${via}`);
  for (const [name, value] of d.headers) lines.push(`${headerName(name)}: ${value}`);
  if (d.authenticate) {
    const answer = ctx.credentials?.(d.method, d.uri);
    if (answer !== undefined) lines.push(`${d.method === 'REGISTER' ? 'Authorization' : 'Proxy-Authorization'}: ${d.spoilCredentials ? d.spoilCredentials(answer) : answer}`);
  }
  if (!d.headers.some(([n]) => n === 'content-length')) lines.push(`Content-Length: ${d.contentLength ?? d.body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), d.body]);
}

const headerName = (name: string) => name.replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase()).replace('Call-Id', 'Call-ID').replace('Cseq', 'CSeq').replace('Sip-', 'SIP-');

/** A short printable form of a case for failure messages. */
export function describeCase(c: SemanticCase): string {
  return `#${c.index} ${c.target} ${c.draft.method.slice(0, 20)} ${c.draft.uri.slice(0, 60)} [${c.mutations.join('; ') || 'unchanged'}]`;
}

// Run directly: writes case <index> of run <seed> to standard output, its description to standard error.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [seedText, indexText, transport = 'UDP'] = process.argv.slice(2);
  if (seedText === undefined || indexText === undefined) {
    process.stderr.write('usage: node --import tsx test/robustness/semantic.ts SEED INDEX [UDP|TCP|TLS|WS] > case.bin\n');
    process.exit(2);
  }
  const c = semanticCase(Number(seedText) >>> 0, Number(indexText));
  process.stderr.write(`${describeCase(c)}\n`);
  process.stdout.write(render(c, { transport: transport as Transport, sentBy: '127.0.0.1:9' }));
}
