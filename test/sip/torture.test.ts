// RFC 4475 torture messages: every fixture either parses to the right values or is refused with the
// status the RFC asks for. The .dat files are the RFC's octets, written by fixtures/rfc4475/generate.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type NameAddr, parseNameAddr } from '../../src/sip/headers.js';
import type { SipMessage } from '../../src/sip/message.js';
import { canAnswer, parseMessage } from '../../src/sip/parser.js';
import { type SipUri, parseUri } from '../../src/sip/uri.js';
import { parseError } from './expect-refusal.js';

function fixture(name: string): Buffer {
  return readFileSync(new URL(`fixtures/rfc4475/${name}.dat`, import.meta.url));
}

type Outcome = 'parses' | { status: number; answerable: boolean };
const parses = 'parses';
/** Refused; `answerable` says whether a response can still be built from what was read. */
const refused = (status: number, answerable = true): Outcome => ({ status, answerable });

/** One row per fixture: what the parser must do with it, and the RFC's words for why. */
const CASES: Array<{ file: string; section: string; outcome: Outcome; why: string }> = [
  { file: 'wsinv', section: '3.1.1.1', outcome: parses, why: 'All elements should treat this as a well-formed request.' },
  { file: 'intmeth', section: '3.1.1.2', outcome: parses, why: 'If this unusual URI has been defined at a proxy, the proxy will forward this request normally.' },
  { file: 'esc01', section: '3.1.1.3', outcome: parses, why: 'A parser must accept this as a well-formed message.' },
  { file: 'escnull', section: '3.1.1.4', outcome: parses, why: 'The message is well formed - parsers must accept this message.' },
  { file: 'esc02', section: '3.1.1.5', outcome: parses, why: 'A parser should accept this message as well formed.' },
  { file: 'lwsdisp', section: '3.1.1.6', outcome: parses, why: 'Elements should accept this request as well formed.' },
  { file: 'longreq', section: '3.1.1.7', outcome: parses, why: 'This well-formed request contains header fields with many values and values that are very long.' },
  { file: 'dblreq', section: '3.1.1.8', outcome: parses, why: 'would handle the REGISTER request normally and ignore the extra bits that look like an INVITE request.' },
  { file: 'semiuri', section: '3.1.1.9', outcome: parses, why: 'Receiving elements will accept this as a well-formed message.' },
  { file: 'transports', section: '3.1.1.10', outcome: parses, why: 'Parsers must accept this message as well formed.' },
  { file: 'mpart01', section: '3.1.1.11', outcome: parses, why: 'Parsers must accept this message as well formed, even if the application above the parser does not support multipart/signed.' },
  { file: 'unreason', section: '3.1.1.12', outcome: parses, why: 'This response is well formed.  A parser must accept this message.' },
  { file: 'noreason', section: '3.1.1.13', outcome: parses, why: 'This well-formed response contains no reason phrase.  A parser must accept this message.' },
  // The RFC asks for a 400, but what is malformed is the top Via itself, so there is nowhere safe to send it.
  { file: 'badinv01', section: '3.1.2.1', outcome: refused(400, false), why: 'An element receiving this request should respond with a 400 Bad Request error.' },
  { file: 'clerr', section: '3.1.2.2', outcome: refused(400), why: 'When sent over UDP (as this message ostensibly was), the receiving element should respond with a 400 Bad Request error.' },
  { file: 'ncl', section: '3.1.2.3', outcome: refused(400), why: 'An element receiving this message should respond with an error.' },
  { file: 'scalar02', section: '3.1.2.4', outcome: refused(400), why: 'An element receiving this request should respond with a 400 Bad Request due to the CSeq error.' },
  { file: 'scalarlg', section: '3.1.2.5', outcome: refused(400, false), why: 'An element receiving this response will simply discard it.' },
  { file: 'quotbal', section: '3.1.2.6', outcome: refused(400), why: 'An element receiving this request should return a 400 Bad Request error.' },
  { file: 'ltgtruri', section: '3.1.2.7', outcome: refused(400), why: 'It is reasonable always to reject a request with this error with a 400 Bad Request.' },
  { file: 'lwsruri', section: '3.1.2.8', outcome: refused(400), why: 'An element receiving this request should respond with a 400 Bad Request.' },
  { file: 'lwsstart', section: '3.1.2.9', outcome: refused(400), why: 'It is acceptable to reject this request as malformed.' },
  { file: 'trws', section: '3.1.2.10', outcome: refused(400), why: 'It is acceptable to reject this request as malformed.' },
  { file: 'escruri', section: '3.1.2.11', outcome: refused(400), why: 'It is acceptable for an element to reject this request with a 400 Bad Request.' },
  { file: 'baddate', section: '3.1.2.12', outcome: parses, why: "an element shouldn't do that unless the contents of the Date header field were actually important to its processing." },
  { file: 'regbadct', section: '3.1.2.13', outcome: refused(400), why: 'It is reasonable for an element receiving this request to respond with a 400 Bad Request.' },
  { file: 'badaspec', section: '3.1.2.14', outcome: refused(400), why: 'It is reasonable to reject this request with a 400 Bad Request response.' },
  { file: 'baddn', section: '3.1.2.15', outcome: refused(400), why: 'It is reasonable always to reject this kind of error with a 400 Bad Request response.' },
  { file: 'badvers', section: '3.1.2.16', outcome: refused(505), why: 'The element should respond to the request with a 505 Version Not Supported error.' },
  { file: 'mismatch01', section: '3.1.2.17', outcome: refused(400), why: 'Any element receiving this request will respond with a 400 Bad Request.' },
  { file: 'mismatch02', section: '3.1.2.18', outcome: refused(400), why: 'A 400 Bad Request is also acceptable, but choosing a 501 (particularly at proxies) has better future-proof characteristics.' },
  { file: 'bigcode', section: '3.1.2.19', outcome: refused(400, false), why: 'An element receiving this response should simply drop it.' },
  { file: 'badbranch', section: '3.2.1', outcome: parses, why: 'A parser must not break when receiving this message.' },
  { file: 'insuf', section: '3.3.1', outcome: refused(400), why: 'Ideally, it will respond with a 400 Bad Request error.' },
  { file: 'unkscm', section: '3.3.2', outcome: parses, why: 'A parser must accept this as a well-formed SIP request.' },
  { file: 'novelsc', section: '3.3.3', outcome: parses, why: 'A parser must accept this as a well-formed SIP request.' },
  { file: 'unksm2', section: '3.3.4', outcome: parses, why: 'The message is syntactically valid.  Parsers must not fail when receiving this message.' },
  { file: 'bext01', section: '3.3.5', outcome: parses, why: 'Any element receiving this request will respond with a 420 Bad Extension response' },
  { file: 'invut', section: '3.3.6', outcome: parses, why: 'It is syntactically valid.  A parser must not fail when receiving it.' },
  { file: 'regaut01', section: '3.3.7', outcome: parses, why: 'The request is well formed.  A parser must not fail when receiving it.' },
  { file: 'multi01', section: '3.3.8', outcome: refused(400), why: 'An element receiving this request would respond with a 400 Bad Request error.' },
  { file: 'mcl01', section: '3.3.9', outcome: refused(400), why: 'An element receiving this message should respond with an error.' },
  { file: 'bcast', section: '3.3.10', outcome: parses, why: 'The message is well formed; parsers must not fail when receiving it.' },
  { file: 'zeromf', section: '3.3.11', outcome: parses, why: 'A proxy should not forward the request and should respond 483 (Too Many Hops).' },
  { file: 'cparam01', section: '3.3.12', outcome: parses, why: 'This REGISTER should succeed.' },
  { file: 'cparam02', section: '3.3.13', outcome: parses, why: 'The register should succeed' },
  { file: 'regescrt', section: '3.3.14', outcome: parses, why: 'The register should succeed' },
  { file: 'sdp01', section: '3.3.15', outcome: parses, why: 'The recipient of this request could respond with a 406 Not Acceptable' },
  { file: 'inv2543', section: '3.4.1', outcome: parses, why: 'should be accepted by RFC 3261 elements that want to maintain backwards compatibility.' },
];

/** Fields of a From, To or Contact value; only the fields given are compared. */
interface Address {
  displayName?: string;
  scheme?: string;
  user?: string;
  password?: string;
  host?: string;
  port?: number;
  opaque?: string;
  uriParams?: Record<string, string | null>;
  uriHeaders?: Record<string, string>;
  /** Header parameters, tag included. */
  params?: Record<string, string | null>;
}

interface Expected {
  start: { method: string; uri: string } | { status: number; reason: string };
  requestUri?: Address;
  to: Address;
  from: Address;
  callId: string;
  cseq: { seq: number; method: string };
  vias: Array<{ transport: string; host: string; port?: number; branch?: string }>;
  contacts?: Address[];
  bodyLength: number;
  /** Every value of these headers, by long lower-case name, list headers split at their commas. */
  headers?: Record<string, string[]>;
  /** Anything else the fixture exists to check. */
  also?: (message: SipMessage) => void;
}

const SDP_LENGTH = 150;
const longUser = 'amazinglylongcallername'.repeat(5);
const intmethUser = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*";
const intmethMethod = "!interesting-Method0123456789_*+`.%indeed'~";

const EXPECTED: Record<string, Expected> = {
  wsinv: {
    start: { method: 'INVITE', uri: 'sip:vivekg@chair-dnrc.example.com;unknownparam' },
    requestUri: { user: 'vivekg', host: 'chair-dnrc.example.com', uriParams: { unknownparam: null } },
    to: { displayName: undefined, user: 'vivekg', host: 'chair-dnrc.example.com', params: { tag: '1918181833n' } },
    from: { displayName: 'J Rosenberg \\"', user: 'jdrosen', host: 'example.com', params: { tag: '98asjd8' } },
    callId: 'wsinv.ndaksdj@192.0.2.1',
    cseq: { seq: 9, method: 'INVITE' },
    vias: [
      { transport: 'UDP', host: '192.0.2.2', branch: '390skdjuw' },
      { transport: 'TCP', host: 'spindle.example.com', branch: 'z9hG4bK9ikj8' },
      { transport: 'UDP', host: '192.168.255.111', branch: 'z9hG4bK30239' },
    ],
    contacts: [{ displayName: 'Quoted string ""', user: 'jdrosen', params: { newparam: 'newvalue', secondparam: null, q: '0.33' } }],
    bodyLength: SDP_LENGTH,
    headers: {
      'max-forwards': ['0068'],
      subject: [''],
      newfangledheader: ['newfangled value continued newfangled value'],
      unknownheaderwithunusualvalue: [';;,,;;,;'],
      route: ['<sip:services.example.com;lr;unknownwith=value;unknown-no-value>'],
      'content-length': ['150'],
    },
  },
  intmeth: {
    start: { method: intmethMethod, uri: `sip:${intmethUser}:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com` },
    requestUri: { user: intmethUser, password: "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)", host: 'example.com' },
    to: { displayName: 'BEL:\x07 NUL:\x00 DEL:\x7f', user: intmethUser, host: 'example.com' },
    from: {
      displayName: "token1~` token2'+_ token3*%!.-",
      user: 'mundane',
      params: { "fromparam''~+*_!.-%": '"работающий"', tag: "_token~1'+`*%!-." },
    },
    callId: `intmeth.word%ZK-!.*_+'@word\`~)(><:\\/"][?}{`,
    cseq: { seq: 139122385, method: intmethMethod },
    vias: [{ transport: 'TCP', host: 'host1.example.com', branch: "z9hG4bK-.!%66*_+`'~" }],
    bodyLength: 0,
    headers: { 'max-forwards': ['255'], "extensionheader-!.%*+_`'~": ['\ufeff大停電'] },
  },
  esc01: {
    start: { method: 'INVITE', uri: 'sip:sips%3Auser%40example.com@example.net' },
    requestUri: { user: 'sips:user@example.com', host: 'example.net' },
    to: { user: 'user', host: 'example.com', params: {} },
    from: { user: 'I have spaces', host: 'example.net', params: { tag: '938' } },
    callId: 'esc01.239409asdfakjkn23onasd0-3234',
    cseq: { seq: 234234, method: 'INVITE' },
    vias: [{ transport: 'UDP', host: 'host5.example.net', branch: 'z9hG4bKkdjuw' }],
    // "value%41" is not "valueA": unescaping is never recursive.
    contacts: [{ user: 'caller', host: 'host5.example.net', uriParams: { lr: null, name: 'value%41' } }],
    bodyLength: SDP_LENGTH,
    headers: { 'content-type': ['application/sdp'] },
  },
  escnull: {
    start: { method: 'REGISTER', uri: 'sip:example.com' },
    to: { user: 'null-\0-null', host: 'example.com' },
    from: { user: 'null-\0-null', params: { tag: '839923423' } },
    callId: 'escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd',
    cseq: { seq: 14398234, method: 'REGISTER' },
    vias: [{ transport: 'UDP', host: 'host5.example.com', branch: 'z9hG4bKkdjuw' }],
    contacts: [{ user: '\0', host: 'host5.example.com' }, { user: '\0\0', host: 'host5.example.com' }],
    bodyLength: 0,
    headers: { 'content-length': ['0'] },
  },
  esc02: {
    start: { method: 'RE%47IST%45R', uri: 'sip:registrar.example.com' },
    to: { displayName: '%Z%45', user: 'resource' },
    from: { displayName: '%Z%45', user: 'resource', params: { tag: 'f232jadfj23' } },
    callId: 'esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf',
    cseq: { seq: 29344, method: 'RE%47IST%45R' },
    vias: [{ transport: 'TCP', host: 'host.example.com', branch: 'z9hG4bK209%fzsnel234' }],
    contacts: [{ user: 'alias1' }, { user: 'alias3' }],
    bodyLength: 0,
    headers: { 'c%6fntact': ['<sip:alias2@host2.example.com>'] },
  },
  lwsdisp: {
    start: { method: 'OPTIONS', uri: 'sip:user@example.com' },
    to: { user: 'user', host: 'example.com' },
    from: { displayName: 'caller', user: 'caller', params: { tag: '323' } },
    callId: 'lwsdisp.1234abcd@funky.example.com',
    cseq: { seq: 60, method: 'OPTIONS' },
    vias: [{ transport: 'UDP', host: 'funky.example.com', branch: 'z9hG4bKkdjuw' }],
    bodyLength: 0,
  },
  longreq: {
    start: { method: 'INVITE', uri: 'sip:user@example.com' },
    to: {
      displayName: `I have a user name of ${'extreme'.repeat(10)} proportion`,
      user: 'user',
      port: 6000,
      uriParams: {
        unknownparam1: `very${'long'.repeat(20)}value`,
        [`longparam${'name'.repeat(25)}`]: 'shortvalue',
        [`very${'long'.repeat(25)}parameternamewithnovalue`]: null,
      },
    },
    from: {
      user: longUser,
      host: 'example.net',
      params: {
        tag: `12${'982'.repeat(50)}424`,
        [`unknownheaderparam${'name'.repeat(20)}`]: `unknowheaderparam${'value'.repeat(15)}`,
        [`unknownvalueless${'paramname'.repeat(10)}`]: null,
      },
    },
    callId: `longreq.one${'really'.repeat(20)}longcallid`,
    cseq: { seq: 3882340, method: 'INVITE' },
    vias: [
      ...Array.from({ length: 33 }, (_, i) => ({ transport: 'TCP', host: `sip${33 - i}.example.com`, branch: undefined })),
      { transport: 'TCP', host: 'host.example.com', branch: `very${'long'.repeat(50)}branchvalue` },
    ],
    contacts: [{ user: longUser, host: 'host5.example.net' }],
    bodyLength: SDP_LENGTH,
    headers: {
      [`unknown-${'long'.repeat(20)}-name`]: [
        `unknown-${'long'.repeat(20)}-value; unknown-${'long'.repeat(20)}-parameter-name = unknown-${'long'.repeat(20)}-parameter-value`,
      ],
    },
  },
  dblreq: {
    start: { method: 'REGISTER', uri: 'sip:example.com' },
    to: { user: 'j.user' },
    from: { user: 'j.user', params: { tag: '43251j3j324' } },
    callId: 'dblreq.0ha0isndaksdj99sdfafnl3lk233412',
    cseq: { seq: 8, method: 'REGISTER' },
    vias: [{ transport: 'UDP', host: '192.0.2.125', branch: 'z9hG4bKkdjuw23492' }],
    contacts: [{ user: 'j.user', host: 'host.example.com' }],
    bodyLength: 0,
  },
  semiuri: {
    start: { method: 'OPTIONS', uri: 'sip:user;par=u%40example.net@example.com' },
    requestUri: { user: 'user;par=u@example.net', host: 'example.com', uriParams: {} },
    to: { user: 'j_user' },
    from: { user: 'caller', host: 'example.org', params: { tag: '33242' } },
    callId: 'semiuri.0ha0isndaksdj',
    cseq: { seq: 8, method: 'OPTIONS' },
    vias: [{ transport: 'UDP', host: '192.0.2.1', branch: 'z9hG4bKkdjuw' }],
    bodyLength: 0,
    headers: {
      accept: ['application/sdp', 'application/pkcs7-mime', 'multipart/mixed', 'multipart/signed', 'message/sip', 'message/sipfrag'],
    },
  },
  transports: {
    start: { method: 'OPTIONS', uri: 'sip:user@example.com' },
    to: { user: 'user' },
    from: { user: 'caller', params: { tag: '323' } },
    callId: 'transports.kijh4akdnaqjkwendsasfdj',
    cseq: { seq: 60, method: 'OPTIONS' },
    vias: [
      { transport: 'UDP', host: 't1.example.com', branch: 'z9hG4bKkdjuw' },
      { transport: 'SCTP', host: 't2.example.com', branch: 'z9hG4bKklasjdhf' },
      { transport: 'TLS', host: 't3.example.com', branch: 'z9hG4bK2980unddj' },
      { transport: 'UNKNOWN', host: 't4.example.com', branch: 'z9hG4bKasd0f3en' },
      { transport: 'TCP', host: 't5.example.com', branch: 'z9hG4bK0a9idfnee' },
    ],
    bodyLength: 0,
  },
  mpart01: {
    start: { method: 'MESSAGE', uri: 'sip:kumiko@example.org' },
    to: { user: 'kumiko', host: 'example.org' },
    from: { user: 'fluffy', params: { tag: '2fb0dcc9' } },
    callId: '3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..',
    cseq: { seq: 1, method: 'MESSAGE' },
    vias: [{ transport: 'UDP', host: '127.0.0.1', port: 5070, branch: 'z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-' }],
    contacts: [{ user: 'fluffy', host: '127.0.0.1', port: 5070 }],
    bodyLength: 553,
    headers: { 'content-type': ['multipart/mixed;boundary=7a9cbec02ceef655'], route: ['<sip:127.0.0.1:5080>'] },
    also: (message) => {
      assert.ok(message.body.includes(0), 'the binary part keeps its NUL octets');
      assert.ok(message.body.toString('latin1').endsWith('\r\n--7a9cbec02ceef655--\r\n'));
      assert.ok(message.vias[0]!.params.has('rport'));
    },
  },
  unreason: {
    start: { status: 200, reason: '= 2**3 * 5**2 но сто девяносто девять - простое' },
    to: { host: 'example.edu', params: { tag: '2229' } },
    from: { host: 'example.com', params: { tag: '11141343' } },
    callId: 'unreason.1234ksdfak3j2erwedfsASdf',
    cseq: { seq: 35, method: 'INVITE' },
    vias: [{ transport: 'UDP', host: '192.0.2.198', branch: 'z9hG4bK1324923' }],
    bodyLength: 154,
  },
  noreason: {
    start: { status: 100, reason: '' },
    to: { host: 'example.edu', params: { tag: '902jndnke3' } },
    from: { host: 'example.com', params: { tag: '39ansfi3' } },
    callId: 'noreason.asndj203insdf99223ndf',
    cseq: { seq: 35, method: 'INVITE' },
    vias: [{ transport: 'UDP', host: '192.0.2.105', branch: 'z9hG4bK2398ndaoe' }],
    bodyLength: 0,
  },
  baddate: {
    start: { method: 'INVITE', uri: 'sip:user@example.com' },
    to: { user: 'user' },
    from: { user: 'caller', params: { tag: '2234923' } },
    callId: 'baddate.239423mnsadf3j23lj42--sedfnm234',
    cseq: { seq: 1392934, method: 'INVITE' },
    vias: [{ transport: 'UDP', host: 'host.example.com', branch: 'z9hG4bKkdjuw' }],
    bodyLength: SDP_LENGTH,
    headers: { date: ['Fri, 01 Jan 2010 16:00:00 EST'] },
  },
  badbranch: {
    start: { method: 'OPTIONS', uri: 'sip:user@example.com' },
    to: { user: 'user' },
    from: { user: 'caller', params: { tag: '33242' } },
    callId: 'badbranch.sadonfo23i420jv0as0derf3j3n',
    cseq: { seq: 8, method: 'OPTIONS' },
    vias: [{ transport: 'UDP', host: '192.0.2.1', branch: 'z9hG4bK' }],
    bodyLength: 0,
  },
  unkscm: {
    start: { method: 'OPTIONS', uri: 'nobodyKnowsThisScheme:totallyopaquecontent' },
    requestUri: { scheme: 'nobodyknowsthisscheme', opaque: 'totallyopaquecontent' },
    to: { user: 'user' },
    from: { user: 'caller', params: { tag: '384' } },
    callId: 'unkscm.nasdfasser0q239nwsdfasdkl34',
    cseq: { seq: 3923423, method: 'OPTIONS' },
    vias: [{ transport: 'TCP', host: 'host9.example.com', branch: 'z9hG4bKkdjuw39234' }],
    bodyLength: 0,
  },
  novelsc: {
    start: { method: 'OPTIONS', uri: 'soap.beep://192.0.2.103:3002' },
    requestUri: { scheme: 'soap.beep', opaque: '//192.0.2.103:3002' },
    to: { user: 'user' },
    from: { user: 'caller', params: { tag: '384' } },
    callId: 'novelsc.asdfasser0q239nwsdfasdkl34',
    cseq: { seq: 3923423, method: 'OPTIONS' },
    vias: [{ transport: 'TCP', host: 'host9.example.com', branch: 'z9hG4bKkdjuw39234' }],
    bodyLength: 0,
  },
  unksm2: {
    start: { method: 'REGISTER', uri: 'sip:example.com' },
    to: { scheme: 'isbn', opaque: '2983792873' },
    from: { scheme: 'http', opaque: '//www.example.com', params: { tag: '3234233' } },
    callId: 'unksm2.daksdj@hyphenated-host.example.com',
    cseq: { seq: 234902, method: 'REGISTER' },
    vias: [{ transport: 'UDP', host: '192.0.2.21', port: 5060, branch: 'z9hG4bKkdjuw' }],
    contacts: [{ scheme: 'name', opaque: 'John_Smith' }],
    bodyLength: 0,
  },
  bext01: {
    start: { method: 'OPTIONS', uri: 'sip:user@example.com' },
    to: { user: 'j_user' },
    from: { user: 'caller', params: { tag: '242etr' } },
    callId: 'bext01.0ha0isndaksdj',
    cseq: { seq: 8, method: 'OPTIONS' },
    vias: [{ transport: 'TLS', host: 'fold-and-staple.example.com', branch: 'z9hG4bKkdjuw' }],
    bodyLength: 0,
    headers: {
      require: ['nothingSupportsThis', 'nothingSupportsThisEither'],
      'proxy-require': ['noProxiesSupportThis', 'norDoAnyProxiesSupportThis'],
    },
  },
  invut: {
    start: { method: 'INVITE', uri: 'sip:user@example.com' },
    to: { user: 'j.user' },
    from: { user: 'caller', params: { tag: '8392034' } },
    callId: 'invut.0ha0isndaksdjadsfij34n23d',
    cseq: { seq: 235448, method: 'INVITE' },
    vias: [{ transport: 'UDP', host: 'somehost.example.com', branch: 'z9hG4bKkdjuw' }],
    bodyLength: 40,
    headers: { 'content-type': ['application/unknownformat'] },
  },
  regaut01: {
    start: { method: 'REGISTER', uri: 'sip:example.com' },
    to: { user: 'j.user' },
    from: { user: 'j.user', params: { tag: '87321hj23128' } },
    callId: 'regaut01.0ha0isndaksdj',
    cseq: { seq: 9338, method: 'REGISTER' },
    vias: [{ transport: 'TCP', host: '192.0.2.253', branch: 'z9hG4bKkdjuw' }],
    bodyLength: 0,
    headers: { authorization: ['NoOneKnowsThisScheme opaque-data=here'] },
  },
  bcast: {
    start: { status: 200, reason: 'OK' },
    to: { host: 'example.edu', params: { tag: '2229' } },
    from: { host: 'example.com', params: { tag: '11141343' } },
    callId: 'bcast.0384840201234ksdfak3j2erwedfsASdf',
    cseq: { seq: 35, method: 'INVITE' },
    vias: [
      { transport: 'UDP', host: '192.0.2.198', branch: 'z9hG4bK1324923' },
      { transport: 'UDP', host: '255.255.255.255', branch: 'z9hG4bK1saber23' },
    ],
    bodyLength: 154,
  },
  zeromf: {
    start: { method: 'OPTIONS', uri: 'sip:user@example.com' },
    to: { user: 'user' },
    from: { user: 'caller', params: { tag: '3ghsd41' } },
    callId: 'zeromf.jfasdlfnm2o2l43r5u0asdfas',
    cseq: { seq: 39234321, method: 'OPTIONS' },
    vias: [{ transport: 'UDP', host: 'host1.example.com', branch: 'z9hG4bKkdjuw2349i' }],
    bodyLength: 0,
    headers: { 'max-forwards': ['0'] },
  },
  // Outside <> the parameter belongs to the Contact header field, not to its URI (RFC 3261 §20.10).
  cparam01: {
    start: { method: 'REGISTER', uri: 'sip:example.com' },
    to: { user: 'watson' },
    from: { user: 'watson', params: { tag: 'DkfVgjkrtMwaerKKpe' } },
    callId: 'cparam01.70710@saturn.example.com',
    cseq: { seq: 2, method: 'REGISTER' },
    vias: [{ transport: 'UDP', host: 'saturn.example.com', port: 5060, branch: 'z9hG4bKkdjuw' }],
    contacts: [{ user: '+19725552222', host: 'gw1.example.net', uriParams: {}, params: { unknownparam: null } }],
    bodyLength: 0,
  },
  cparam02: {
    start: { method: 'REGISTER', uri: 'sip:example.com' },
    to: { user: 'watson' },
    from: { user: 'watson', params: { tag: '838293' } },
    callId: 'cparam02.70710@saturn.example.com',
    cseq: { seq: 3, method: 'REGISTER' },
    vias: [{ transport: 'UDP', host: 'saturn.example.com', port: 5060, branch: 'z9hG4bKkdjuw' }],
    contacts: [{ user: '+19725552222', host: 'gw1.example.net', uriParams: { unknownparam: null }, params: {} }],
    bodyLength: 0,
  },
  regescrt: {
    start: { method: 'REGISTER', uri: 'sip:example.com' },
    to: { user: 'user' },
    from: { user: 'user', params: { tag: '8' } },
    callId: 'regescrt.k345asrl3fdbv@192.0.2.1',
    cseq: { seq: 14398234, method: 'REGISTER' },
    vias: [{ transport: 'UDP', host: 'host5.example.com', branch: 'z9hG4bKkdjuw' }],
    contacts: [{ user: 'user', host: 'example.com', uriHeaders: { Route: '<sip:sip.example.com>' } }],
    bodyLength: 0,
  },
  sdp01: {
    start: { method: 'INVITE', uri: 'sip:user@example.com' },
    to: { user: 'j_user' },
    from: { user: 'caller', params: { tag: '234' } },
    callId: 'sdp01.ndaksdj9342dasdd',
    cseq: { seq: 8, method: 'INVITE' },
    vias: [{ transport: 'UDP', host: '192.0.2.15', branch: 'z9hG4bKkdjuw' }],
    bodyLength: SDP_LENGTH,
    headers: { accept: ['text/nobodyKnowsThis'] },
  },
  inv2543: {
    start: { method: 'INVITE', uri: 'sip:UserB@example.com' },
    // An addr-spec's ";user=phone" is a header parameter; inside <> it is a URI parameter (RFC 3261 §20.10).
    to: { user: '+16505552222', host: 'ss1.example.net', uriParams: {}, params: { user: 'phone' } },
    from: { user: '+13035551111', uriParams: { user: 'phone' }, params: {} },
    callId: 'inv2543.1717@ift.client.example.com',
    cseq: { seq: 56, method: 'INVITE' },
    vias: [{ transport: 'UDP', host: 'iftgw.example.com', branch: undefined }],
    bodyLength: 105,
    headers: { 'record-route': ['<sip:UserB@example.com;maddr=ss1.example.com>'], 'content-length': [] },
  },
};

function describeAddress(nameAddr: NameAddr): Address {
  return { displayName: nameAddr.displayName, ...describeUri(parseUri(nameAddr.uri)), params: Object.fromEntries(nameAddr.params) };
}

function describeUri(uri: SipUri): Address {
  return {
    scheme: uri.scheme,
    user: uri.user,
    password: uri.password,
    host: uri.host,
    port: uri.port,
    opaque: uri.opaque,
    uriParams: Object.fromEntries(uri.params),
    uriHeaders: Object.fromEntries(uri.headers),
  };
}

function assertFields(actual: Address, expected: Address, what: string): void {
  for (const key of Object.keys(expected) as Array<keyof Address>) {
    assert.deepEqual(actual[key], expected[key], `${what} ${key}`);
  }
}

function assertValues(message: SipMessage, expected: Expected): void {
  if ('method' in expected.start) {
    assert.equal(message.method, expected.start.method);
    assert.equal(message.uri, expected.start.uri);
  } else {
    assert.equal(message.status, expected.start.status);
    assert.equal(message.reason, expected.start.reason);
  }
  if (expected.requestUri) assertFields(describeUri(message.requestUri), expected.requestUri, 'Request-URI');
  assertFields(describeAddress(message.to), expected.to, 'To');
  assertFields(describeAddress(message.from), expected.from, 'From');
  assert.equal(message.callId, expected.callId);
  assert.deepEqual(message.cseq, expected.cseq);
  assert.deepEqual(
    message.vias.map(({ transport, host, port, branch }) => ({ transport, host, port, branch })),
    expected.vias.map((via) => ({ port: undefined, branch: undefined, ...via })),
  );
  if (expected.contacts) {
    const contacts = message.getAll('contact').map(parseNameAddr);
    assert.equal(contacts.length, expected.contacts.length, 'Contact count');
    expected.contacts.forEach((contact, i) => assertFields(describeAddress(contacts[i]!), contact, `Contact ${i}`));
  }
  assert.equal(message.body.length, expected.bodyLength);
  for (const [name, values] of Object.entries(expected.headers ?? {})) assert.deepEqual(message.getAll(name), values, name);
  expected.also?.(message);
}


describe('RFC 4475 torture messages', () => {
  it('has one row per fixture and expected values for every message that parses', () => {
    assert.equal(CASES.length, 49);
    assert.deepEqual(
      Object.keys(EXPECTED).sort(),
      CASES.filter((c) => c.outcome === parses).map((c) => c.file).sort(),
    );
  });

  for (const { file, section, outcome, why } of CASES) {
    if (outcome === parses) {
      it(`§${section} ${file} parses: "${why}"`, () => {
        assertValues(parseMessage(fixture(file)), EXPECTED[file]!);
      });
      it(`§${section} ${file} survives toBuffer and a second parse`, () => {
        const message = parseMessage(fixture(file));
        const again = parseMessage(message.toBuffer());
        assertValues(again, { ...EXPECTED[file]!, headers: {} });
        const withoutLength = (m: SipMessage) => m.headers.filter((h) => h.name !== 'content-length');
        assert.deepEqual(withoutLength(again), withoutLength(message));
        assert.deepEqual(again.getAll('content-length'), [String(message.body.length)]);
        assert.deepEqual(again.body, message.body);
      });
    } else {
      it(`§${section} ${file} is refused with ${outcome.status}: "${why}"`, () => {
        const error = parseError(fixture(file));
        assert.equal(error.status, outcome.status, error.reason);
        assert.equal(canAnswer(error.partial), outcome.answerable, `canAnswer after "${error.reason}"`);
      });
    }
  }
});
