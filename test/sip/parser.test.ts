import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeaderError, formatNameAddr, paramOf, parseNameAddr, parseVia, quote, splitList, topViaBranch, unquote } from '../../src/sip/headers.js';
import { SipMessage, createResponse } from '../../src/sip/message.js';
import { canAnswer, findHeadEnd, parseMessage } from '../../src/sip/parser.js';
import { parseError } from './expect-refusal.js';

const START = 'MESSAGE sip:bob@example.com SIP/2.0';
const CORE = [
  'Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds8',
  'Max-Forwards: 70',
  'From: "Alice" <sip:alice@example.com>;tag=1928301774',
  'To: <sip:bob@example.com>',
  'Call-ID: a84b4c76e66710@pc33.example.com',
  'CSeq: 314159 MESSAGE',
];

/** A datagram: start line, header lines, the empty line, then the body as given. */
function wire(headers: string[], body = '', start = START): Buffer {
  return Buffer.from(`${start}\r\n${headers.join('\r\n')}\r\n\r\n${body}`);
}

/** CORE with the lines starting with `name:` replaced by `lines`. */
function replacing(name: string, ...lines: string[]): string[] {
  const prefix = `${name.toLowerCase()}:`;
  return [...CORE.filter((line) => !line.toLowerCase().startsWith(prefix)), ...lines];
}


describe('header lines', () => {
  const FOLDED: Array<[what: string, lines: string[], value: string]> = [
    ['a continuation starting with SP', ['Subject: first', ' second'], 'first second'],
    ['a continuation starting with HTAB', ['Subject: first', '\tsecond'], 'first second'],
    ['several continuations with runs of whitespace', ['Subject:   first  ', '    second', ' \t third  '], 'first   second third'],
    ['a value that starts on the next line', ['Subject:', '  only'], 'only'],
    ['an empty value', ['Subject:'], ''],
    ['whitespace before the colon', ['Subject  \t: spaced'], 'spaced'],
  ];
  for (const [what, lines, value] of FOLDED) {
    it(`unfolds ${what}`, () => {
      assert.deepEqual(parseMessage(wire([...CORE, ...lines])).getAll('subject'), [value]);
    });
  }

  it('keeps a byte-order mark and other non-blank characters at the ends of a value', () => {
    assert.equal(parseMessage(wire([...CORE, 'X-Mark: \ufeffvalue\u00a0 '])).get('x-mark'), '\ufeffvalue\u00a0');
  });

  it('stores every name lower-cased, with compact forms turned into their long names', () => {
    const message = parseMessage(
      wire([
        'v: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1',
        'F: <sip:alice@example.com>;tag=1',
        't: <sip:bob@example.com>',
        'I: compact@example.com',
        'CSEQ: 1 MESSAGE',
        'm: <sip:alice@192.0.2.4>',
        'c: text/plain',
        'L: 2',
      ], 'hi'),
    );
    assert.deepEqual(
      message.headers.map((h) => h.name),
      ['via', 'from', 'to', 'call-id', 'cseq', 'contact', 'content-type', 'content-length'],
    );
    assert.equal(message.callId, 'compact@example.com');
    assert.equal(message.body.toString(), 'hi');
  });

  const COMPACT: Array<[letter: string, name: string]> = [
    ['a', 'accept-contact'], ['b', 'referred-by'], ['d', 'request-disposition'], ['e', 'content-encoding'],
    ['j', 'reject-contact'], ['k', 'supported'], ['n', 'identity-info'], ['o', 'event'], ['r', 'refer-to'],
    ['s', 'subject'], ['u', 'allow-events'], ['x', 'session-expires'], ['y', 'identity'],
  ];
  for (const [letter, name] of COMPACT) {
    it(`reads "${letter}" as ${name}`, () => {
      const message = parseMessage(wire([...CORE, `${letter.toUpperCase()}: some-value`]));
      assert.equal(message.get(name), 'some-value');
    });
  }

  it('keeps unknown headers, in order, with their values untouched', () => {
    const message = parseMessage(wire([...CORE, 'X-First: ;;,,;;,;', 'P-Second: "a, b" <c>', 'X-First: again']));
    assert.deepEqual(message.getAll('x-first'), [';;,,;;,;', 'again']);
    assert.deepEqual(message.getAll('p-second'), ['"a, b" <c>']);
  });

  const BAD_LINES: Array<[what: string, line: string, reason: RegExp]> = [
    ['a line without a colon', 'Subject hi', /Malformed header line/],
    ['a name that is not a token', 'Sub ject: hi', /Bad header name/],
    // A lone CR would end the line for some receivers once the value is passed on: header injection.
    ['a bare CR in a value', 'Subject: hi\rX-Injected: yes', /Bare CR/],
    ['a bare CR in a continuation line', 'Subject: hi\r\n  there\rX-Injected: yes', /Bare CR/],
  ];
  for (const [what, line, reason] of BAD_LINES) {
    it(`refuses ${what}, answerably when the Via came first`, () => {
      const error = parseError(wire([...CORE, line]));
      assert.match(error.reason, reason);
      assert.ok(canAnswer(error.partial));
      assert.equal(error.partial?.method, 'MESSAGE');
    });
  }

  it('refuses a bare CR at the end of a head that an LF LF ends, and one at the end of a datagram without a blank line', () => {
    const headOf = (text: string) => Buffer.from(`${START}\r\n${CORE.join('\r\n')}\r\n${text}`);
    assert.match(parseError(headOf('Subject: hi\r\n\nbody')).reason, /Bare CR/);
    assert.match(parseError(headOf('Subject: hi\r')).reason, /Bare CR/);
    assert.equal(parseMessage(headOf('Subject: hi\n\nbody')).get('subject'), 'hi');
  });

  it('keeps control characters and line separators of the input out of the reason phrase', () => {
    const error = parseError(wire([...CORE, 'Bad\u2028Name\x00\x7f: x']));
    assert.equal(error.reason, 'Bad header name "Bad Name  "');
    assert.equal(error.message, error.reason);
  });

  it('ignores CRLFs before the start line (RFC 3261 §7.5)', () => {
    assert.equal(parseMessage(Buffer.concat([Buffer.from('\r\n\r\n'), wire(CORE)])).method, 'MESSAGE');
  });

  it('finds the end of a head terminated by bare LFs', () => {
    const message = parseMessage(Buffer.from(`${START}\n${CORE.join('\n')}\nContent-Length: 2\n\nhi`));
    assert.equal(message.callId, 'a84b4c76e66710@pc33.example.com');
    assert.equal(message.body.toString(), 'hi');
    assert.deepEqual(findHeadEnd(Buffer.from('A\r\n\r\nB\n\n')), { at: 1, length: 4 });
    assert.deepEqual(findHeadEnd(Buffer.from('A\n\nB\r\n\r\n')), { at: 1, length: 2 });
    assert.equal(findHeadEnd(Buffer.from('A\r\nB\r\n')), undefined);
  });
});

describe('list headers', () => {
  it('splits Via values at commas, across and within lines', () => {
    const message = parseMessage(
      wire(
        replacing(
          'via',
          'Via: SIP/2.0/UDP first.example.com;branch=z9hG4bK1 , SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK2',
          'v: SIP/2.0/TLS third.example.com;branch=z9hG4bK3',
        ),
      ),
    );
    assert.deepEqual(
      message.vias.map((via) => [via.transport, via.host, via.port, via.branch]),
      [
        ['UDP', 'first.example.com', undefined, 'z9hG4bK1'],
        ['TCP', '[2001:db8::1]', 5061, 'z9hG4bK2'],
        ['TLS', 'third.example.com', undefined, 'z9hG4bK3'],
      ],
    );
  });

  it('does not split Contact at commas inside quoted display names or angle brackets', () => {
    const message = parseMessage(
      wire([...CORE, 'Contact: "Watson, Thomas" <sip:t.watson@example.org>;q=0.5, "say \\"a, b\\"" <sip:b@example.com>', 'Contact: <sip:c@example.com>']),
    );
    const contacts = message.getAll('contact').map(parseNameAddr);
    assert.deepEqual(
      contacts.map((c) => [c.displayName, c.uri, Object.fromEntries(c.params)]),
      [
        ['Watson, Thomas', 'sip:t.watson@example.org', { q: '0.5' }],
        ['say "a, b"', 'sip:b@example.com', {}],
        [undefined, 'sip:c@example.com', {}],
      ],
    );
  });

  it('refuses an unbalanced list', () => {
    assert.throws(() => splitList('"open, <sip:a@b>'), /unbalanced/);
    assert.throws(() => splitList('<sip:a@b, <sip:c@d>'), /unbalanced/);
  });

  it('removes the first value of a multi-value Via line, then the line itself', () => {
    const message = parseMessage(
      wire(replacing('via', 'Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2', 'Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3')),
    );
    assert.equal(message.via.host, 'a.example.com');
    message.removeFirstValue('via');
    assert.deepEqual(message.vias.map((via) => via.host), ['b.example.com', 'c.example.com']);
    assert.equal(message.headers.filter((h) => h.name === 'via').length, 2);
    message.removeFirstValue('via');
    assert.deepEqual(message.vias.map((via) => via.host), ['c.example.com']);
    assert.equal(message.headers.filter((h) => h.name === 'via').length, 1);
    message.removeFirstValue('route');
    assert.equal(message.via.branch, 'z9hG4bK3');
  });
});

describe('name-addr and addr-spec', () => {
  const NAME_ADDRS: Array<[value: string, displayName: string | undefined, uri: string, params: Record<string, string | null>]> = [
    ['"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>;tag=98asjd8', 'J Rosenberg \\"', 'sip:jdrosen@example.com', { tag: '98asjd8' }],
    ['"" <sip:a@b>', '', 'sip:a@b', {}],
    ['Bob  Smith <sip:bob@example.com>', 'Bob Smith', 'sip:bob@example.com', {}],
    ['caller<sip:caller@example.com>;tag=323', 'caller', 'sip:caller@example.com', { tag: '323' }],
    // RFC 3261 §20.10: inside <> a parameter belongs to the URI, after it or without <> to the header.
    ['<sip:a@example.com;transport=tcp>;tag=1;expires=60', undefined, 'sip:a@example.com;transport=tcp', { tag: '1', expires: '60' }],
    ['sip:a@example.com;transport=tcp;tag=1', undefined, 'sip:a@example.com', { transport: 'tcp', tag: '1' }],
    ['sip:a@example.com ;  tag  =  x ; lr', undefined, 'sip:a@example.com', { tag: 'x', lr: null }],
    ['<sip:a@example.com?Route=%3Csip:b@example.com%3E>', undefined, 'sip:a@example.com?Route=%3Csip:b@example.com%3E', {}],
    ['<sip:a@example.com>;p="quoted; value"', undefined, 'sip:a@example.com', { p: '"quoted; value"' }],
    ['<tel:+1-201-555-0123>', undefined, 'tel:+1-201-555-0123', {}],
    ['*', undefined, '*', {}],
  ];
  for (const [value, displayName, uri, params] of NAME_ADDRS) {
    it(`reads ${value}`, () => {
      const addr = parseNameAddr(value);
      assert.deepEqual([addr.displayName, addr.uri, Object.fromEntries(addr.params)], [displayName, uri, params]);
    });
  }

  const BAD_NAME_ADDRS: Array<[value: string, reason: RegExp]> = [
    ['"Mr. J. User <sip:j.user@example.com>', /unterminated/],
    ['Bell, Alexander <sip:a.g.bell@example.com>', /display name/],
    ['"Watson, Thomas" < sip:t.watson@example.org >', /whitespace/],
    ['<sip:a@example.com', /missing ">"/],
    ['sip:user@example.com?Route=%3Csip:sip.example.com%3E', /enclosed/],
    ['sip:a@example.com;;', /parameter name/],
    ['<sip:a@example.com>;tag=', /bad value/],
    ['"name" sip:a@example.com', /expected "<"/],
  ];
  for (const [value, reason] of BAD_NAME_ADDRS) {
    it(`refuses ${value}`, () => assert.throws(() => parseNameAddr(value), reason));
  }

  it('quotes and unquotes display names with escapes', () => {
    for (const name of ['plain', 'with "quotes"', 'back\\slash', '']) assert.equal(unquote(quote(name)), name);
    assert.equal(quote('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(formatNameAddr(parseNameAddr('"a \\"b\\"" <sip:x@y>;tag=1')), '"a \\"b\\"" <sip:x@y>;tag=1');
  });
});

describe('Via', () => {
  it('reads a Via of the usual form as the same Via spelled with blanks and lower case', () => {
    const read = (value: string) => {
      const { transport, host, port, branch, params } = parseVia(value);
      return { transport, host, port, branch, params: [...params] };
    };
    const usual = read('SIP/2.0/UDP host.example:5060;branch=z9hG4bKx;rport');
    assert.deepEqual(usual, { transport: 'UDP', host: 'host.example', port: 5060, branch: 'z9hG4bKx', params: [['branch', 'z9hG4bKx'], ['rport', null]] });
    assert.deepEqual(read('sip / 2.0 / udp  HOST.example : 5060 ;branch=z9hG4bKx;rport'), usual);
    assert.deepEqual(read('SIP/2.0/UDP host.example'), { transport: 'UDP', host: 'host.example', port: undefined, branch: undefined, params: [] });
    assert.throws(() => parseVia('SIP/2.0/UDP host.example:123456;branch=z9hG4bKx'), /expected ";"/);
    assert.throws(() => parseVia('SIP/2.0/UDP host.example;x="a\u2028b"'), /bad Via/);
  });

  it('gives each parameter of a Via and a name-addr as the Map of them does, before that Map is made and after', () => {
    const names = ['branch', 'rport', 'x', 'received', 'tag', 'bran'];
    const vias = ['SIP/2.0/UDP h.example;branch=z9hG4bK1;rport;x=1;x=2', 'SIP/2.0/UDP h.example ; branch = z9hG4bK1 ; RPORT', 'SIP/2.0/UDP h.example'];
    const addrs = ['<sip:a@h.example>;tag=1;x;x=2', '<sip:a@h.example;tag=inside>', 'sip:a@h.example ; TAG = 3'];
    for (const [read, values] of [[parseVia, vias], [parseNameAddr, addrs]] as const) {
      for (const value of values) {
        const expected = read(value).params;
        const parsed = read(value);
        for (const name of names) assert.equal(paramOf(parsed, name), expected.get(name), `${name} of ${value}`);
        void parsed.params;
        for (const name of names) assert.equal(paramOf(parsed, name), expected.get(name), `${name} of ${value}, its Map made`);
      }
    }
  });

  it('reads the parameters of each Via whose sent-by it read before, and refuses one of them as it would the first', () => {
    const first = parseVia('SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1;rport');
    const second = parseVia('SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK2;received=192.0.2.8');
    assert.deepEqual([second.transport, second.host, second.port, second.branch, [...second.params]], ['UDP', '192.0.2.7', 5062, 'z9hG4bK2', [['branch', 'z9hG4bK2'], ['received', '192.0.2.8']]]);
    assert.deepEqual([...first.params], [['branch', 'z9hG4bK1'], ['rport', null]]);
    assert.deepEqual(parseVia('SIP/2.0/UDP 192.0.2.7:5062').params.size, 0);
    assert.throws(() => parseVia('SIP/2.0/UDP 192.0.2.7:5062;x="a\u2028b"'), /bad Via/);
    assert.throws(() => parseVia('SIP/2.0/UDP 192.0.2.7:5062;received=evil.example.com'), /bad Via received/);
  });

  const VIAS: Array<[value: string, transport: string, host: string, port: number | undefined, params: Record<string, string | null>]> = [
    ['SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds', 'UDP', 'pc33.example.com', undefined, { branch: 'z9hG4bK776asdhds' }],
    ['sip/2.0/tcp PC33.Example.COM:5061', 'TCP', 'pc33.example.com', 5061, {}],
    ['SIP  /   2.0 /UDP 192.0.2.2 ; branch = 390skdjuw ; rport', 'UDP', '192.0.2.2', undefined, { branch: '390skdjuw', rport: null }],
    ['SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3', 'UDP', '[2001:db8::9:1]', 5070, { received: '[2001:db8::9:255]', branch: 'z9hG4bKas3' }],
    ['SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255', 'UDP', '[2001:db8::9:1]', undefined, { received: '2001:db8::9:255' }],
    ['SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKasudf;rport=5060', 'WSS', 'df7jal23ls0d.invalid', undefined, { branch: 'z9hG4bKasudf', rport: '5060' }],
    ['SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw', 'UDP', 'c.example.com', undefined, { branch: 'z9hG4bKkdjuw' }],
  ];
  for (const [value, transport, host, port, params] of VIAS) {
    it(`reads ${value}`, () => {
      const via = parseVia(value);
      assert.deepEqual([via.transport, via.host, via.port, Object.fromEntries(via.params)], [transport, host, port, params]);
    });
  }

  for (const value of [
    'SIP/2.0 host', 'SIP/2.0/UDP', 'SIP/2.0/UDP host:123456', 'SIP/2.0/UDP host;;', 'SIP/2.0/UDP host junk',
    // Where responses would go: a port, host, received or rport no socket can take.
    'SIP/2.0/UDP 1.2.3.4:0;branch=z9hG4bK1', 'SIP/2.0/UDP 1.2.3.4:65536', 'SIP/2.0/UDP 1.2.3.4:00000', 'SIP/2.0/UDP ho_st',
    'SIP/2.0/UDP [2001:db8:::1]', 'SIP/2.0/UDP [zz::1]:5060', 'SIP/2.0/UDP 1.2.3.4.5', 'SIP/2.0/UDP -host',
    'SIP/2.0/UDP host;received=', 'SIP/2.0/UDP host;received=evil.example.com', 'SIP/2.0/UDP host;received=1.2.3.999',
    'SIP/2.0/UDP host;rport=0', 'SIP/2.0/UDP host;rport=65536', 'SIP/2.0/UDP host;rport=x',
  ]) {
    it(`refuses ${value}`, () => assert.throws(() => parseVia(value)));
  }
});

describe('IPv6 (RFC 5118)', () => {
  it('reads IPv6 references in the Request-URI, Via and Contact (§4.1)', () => {
    const message = parseMessage(
      wire(
        [
          'To: sip:user@example.com',
          'From: sip:user@example.com;tag=81x2',
          'Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111',
          'Call-ID: SSG9559905523997077@hlau_4100',
          'Max-Forwards: 70',
          'Contact: "Caller" <sip:caller@[2001:db8::1]>',
          'CSeq: 98176 REGISTER',
          'Content-Length: 0',
        ],
        '',
        'REGISTER sip:[2001:db8::10] SIP/2.0',
      ),
    );
    assert.equal(message.requestUri.host, '[2001:db8::10]');
    assert.equal(message.via.host, '[2001:db8::9:1]');
    assert.equal(parseNameAddr(message.get('contact')!).uri, 'sip:caller@[2001:db8::1]');
  });

  it('refuses an IPv6 Request-URI without brackets (§4.2)', () => {
    const error = parseError(wire(replacing('cseq', 'CSeq: 1 REGISTER'), '', 'REGISTER sip:2001:db8::10 SIP/2.0'));
    assert.equal(error.status, 400);
    assert.ok(canAnswer(error.partial));
  });
});

describe('start line', () => {
  const STATUS_LINES: Array<[line: string, status: number, reason: string]> = [
    ['SIP/2.0 200 OK', 200, 'OK'],
    ['SIP/2.0 100 ', 100, ''],
    ['SIP/2.0 180', 180, ''],
    ['SIP/2.0 699 Whatever it is', 699, 'Whatever it is'],
    ['SIP/2.0 200  OK ', 200, ' OK '],
    // Reason-Phrase allows UTF8-NONASCII (RFC 3261 §25.1), line separators included.
    ['SIP/2.0 400 Bad \u2028 thing\u2029', 400, 'Bad \u2028 thing\u2029'],
  ];
  for (const [line, status, reason] of STATUS_LINES) {
    it(`reads the status line "${line}"`, () => {
      const message = parseMessage(wire(CORE, '', line));
      assert.deepEqual([message.status, message.reason, message.isRequest], [status, reason, false]);
    });
  }

  const BAD_START_LINES: Array<[line: string, status: number, answerable: boolean]> = [
    ['SIP/2.0 4294967301 better not break the receiver', 400, false],
    ['SIP/2.0 099 Too low', 400, false],
    ['SIP/2.0 700 Too high', 400, false],
    ['SIP/2.0 20 OK', 400, false],
    ['SIP/2.0 2x0 OK', 400, false],
    ['SIP/2.0 200OK', 400, false],
    ['SIP/2.0 -20 OK', 400, false],
    ['SIP/3.0 200 OK', 505, false],
    ['SIP/2.0 200 O\rK', 400, false],
    ['MESSAGE sip:bob@example.com SIP/3.0', 505, true],
    ['MESSAGE sip:bob@example.com HTTP/1.1', 400, true],
    ['MESSAGE  sip:bob@example.com SIP/2.0', 400, true],
    ['MESSAGE sip:bob@example.com', 400, true],
    ['MESS<AGE sip:bob@example.com SIP/2.0', 400, false],
    ['MESSAGE <sip:bob@example.com> SIP/2.0', 400, true],
    ['MESSAGE sip:bob@example.com?Subject=hi SIP/2.0', 400, true],
    [`MESSAGE sip:${'b'.repeat(8192)}@example.com SIP/2.0`, 414, true],
  ];
  for (const [line, status, answerable] of BAD_START_LINES) {
    it(`refuses "${line.length > 60 ? `${line.slice(0, 60)}…` : line}" with ${status}`, () => {
      const error = parseError(wire(CORE, '', line));
      assert.equal(error.status, status);
      assert.equal(canAnswer(error.partial), answerable);
    });
  }

  it('accepts any scheme in the Request-URI: refusing one is a routing decision (416), not a parse error', () => {
    for (const uri of ['tel:+1-201-555-0123', 'im:bob@example.com', 'nobodyKnowsThisScheme:opaque']) {
      assert.equal(parseMessage(wire(CORE, '', `MESSAGE ${uri} SIP/2.0`)).uri, uri);
    }
  });
});

describe('checks on the headers every transaction needs', () => {
  const BAD: Array<[what: string, headers: string[], reason: RegExp]> = [
    ['a missing Call-ID', replacing('call-id'), /Missing Call-ID/],
    ['a CSeq method that is not the request method', replacing('cseq', 'CSeq: 1 INVITE'), /CSeq method/],
    ['a CSeq number above 2**32-1', replacing('cseq', 'CSeq: 4294967296 MESSAGE'), /CSeq/],
    ['two To headers', [...CORE, 'To: <sip:carol@example.com>'], /More than one To/],
    ['two CSeq headers', [...CORE, 'CSeq: 2 MESSAGE'], /More than one CSeq/],
    ['two Max-Forwards headers', [...CORE, 'Max-Forwards: 5'], /More than one Max-Forwards/],
    ['Max-Forwards above 255', replacing('max-forwards', 'Max-Forwards: 256'), /Max-Forwards/],
    ['Max-Forwards that is not a number', replacing('max-forwards', 'Max-Forwards: -1'), /Max-Forwards/],
    ['a malformed Contact', [...CORE, 'Contact: <sip:a@example.com>, "unterminated <sip:b@example.com>'], /Unbalanced/],
    ['a Contact URI with headers outside <>', [...CORE, 'Contact: sip:a@example.com?Route=%3Csip:b%3E'], /enclosed/],
    ['a malformed From', replacing('from', 'From: Bell, Alexander <sip:a@example.com>;tag=1'), /display name/],
    ['a To whose URI is malformed', replacing('to', 'To: <sip:carol@]>'), /Bad To URI: bad host/],
    ['a From whose URI is malformed', replacing('from', 'From: <sip:a@example.com:http>;tag=1'), /Bad From URI: bad port/],
    ['a second Via with port 0', [...CORE, 'Via: SIP/2.0/UDP 192.0.2.7:0;branch=z9hG4bK2'], /Bad Via port 0/],
    ['a second Via with port 65536', [...CORE, 'Via: SIP/2.0/UDP 192.0.2.7:65536;branch=z9hG4bK2'], /Bad Via port 65536/],
    ['a second Via whose host is no host', [...CORE, 'Via: SIP/2.0/UDP exa_mple.com;branch=z9hG4bK2'], /Bad Via host/],
    ['a second Via whose received is no address', [...CORE, 'Via: SIP/2.0/UDP b.example.com;received=b.example.com'], /Bad Via received/],
    ['a second Via whose rport is 0', [...CORE, 'Via: SIP/2.0/UDP b.example.com;rport=0'], /Bad Via rport 0/],
    ['a Contact with port 0', [...CORE, 'Contact: <sip:a@192.0.2.7:0>'], /Bad Contact URI: bad port "0"/],
    ['a Contact whose host is no host', [...CORE, 'Contact: <sip:a@192.0.2.777>'], /Bad Contact URI: bad host/],
    ['a Contact with an IPv6 address that is none', [...CORE, 'Contact: <sip:a@[2001:db8:::1]:5060>'], /Bad Contact URI: bad host/],
    ['a Route with port 65536', [...CORE, 'Route: <sip:proxy.example.com:65536;lr>'], /Bad Route URI: bad port/],
    ['a Record-Route with port 0', [...CORE, 'Record-Route: <sip:proxy.example.com:0;lr>'], /Bad Record-Route URI: bad port/],
    ['a Path whose host is no host', [...CORE, 'Path: <sip:-edge.example.com;lr>'], /Bad Path URI: bad host/],
  ];
  for (const [what, headers, reason] of BAD) {
    it(`refuses ${what} with a 400 that can be answered`, () => {
      const error = parseError(wire(headers));
      assert.equal(error.status, 400);
      assert.match(error.reason, reason);
      assert.ok(canAnswer(error.partial));
    });
  }

  it('refuses a Request-URI naming port 0 with a 400 that says so', () => {
    const error = parseError(wire(CORE, '', 'MESSAGE sip:bob@example.com:0 SIP/2.0'));
    assert.deepEqual([error.status, error.reason, canAnswer(error.partial)], [400, 'Bad Request-URI: bad port "0"', true]);
  });

  it('accepts Max-Forwards with leading zeros, a Contact of "*", and several Contact lines', () => {
    const message = parseMessage(wire([...replacing('max-forwards', 'Max-Forwards: 0068'), 'Contact: *']));
    assert.equal(message.get('max-forwards'), '0068');
    assert.doesNotThrow(() => parseMessage(wire([...CORE, 'Contact: <sip:a@example.com>', 'Contact: <sip:b@example.com>;expires=0'])));
  });

  it('cannot answer an ACK, a response, or a request without a readable top Via', () => {
    const ack = parseError(wire(replacing('cseq', 'CSeq: 1 ACK', 'Max-Forwards: 5'), '', 'ACK sip:bob@example.com SIP/2.0'));
    assert.equal(canAnswer(ack.partial), false);
    const response = parseError(wire(replacing('cseq', 'CSeq: x'), '', 'SIP/2.0 200 OK'));
    assert.equal(canAnswer(response.partial), false);
    for (const via of [[], ['Via: SIP/2.0/UDP'], ['Via: SIP/2.0/UDP a.example.com;;, SIP/2.0/UDP b.example.com'], ['Via: SIP/2.0/UDP 1.2.3.4:0;branch=z9hG4bK1']]) {
      assert.equal(canAnswer(parseError(wire(replacing('via', ...via))).partial), false, via.join());
    }
    assert.equal(canAnswer(undefined), false);
  });

  it('can answer a request that has a Via and a CSeq but not From, To or Call-ID (RFC 4475 §3.3.1)', () => {
    const error = parseError(wire(['Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf', 'CSeq: 193942 MESSAGE']));
    assert.ok(canAnswer(error.partial));
    const response = createResponse(error.partial!, 400, error.reason);
    assert.deepEqual(response.headers.map((h) => h.name), ['via', 'cseq']);
  });
});

describe('Content-Length on a datagram (RFC 3261 §18.3)', () => {
  const BODIES: Array<[what: string, lengthLine: string | undefined, sent: string, body: string]> = [
    ['missing: the rest of the datagram is the body', undefined, 'hello', 'hello'],
    ['equal to what arrived', 'Content-Length: 5', 'hello', 'hello'],
    ['smaller: the body is cut to it', 'Content-Length: 3', 'hello', 'hel'],
    ['zero: what follows is ignored', 'l: 0', 'INVITE sip:x SIP/2.0\r\n', ''],
    ['with leading zeros and blanks', 'Content-Length:   005 ', 'hello', 'hello'],
  ];
  for (const [what, lengthLine, sent, body] of BODIES) {
    it(`takes the body when Content-Length is ${what}`, () => {
      const message = parseMessage(wire(lengthLine ? [...CORE, lengthLine] : CORE, sent));
      assert.equal(message.body.toString(), body);
    });
  }

  it('takes binary bodies octet for octet', () => {
    const body = Buffer.from([0, 13, 10, 13, 10, 255, 254, 0]);
    const message = parseMessage(Buffer.concat([wire([...CORE, `Content-Length: ${body.length}`]), body]));
    assert.deepEqual(message.body, body);
  });

  const BAD_LENGTHS: Array<[what: string, lines: string[]]> = [
    ['larger than what arrived', ['Content-Length: 6']],
    ['negative', ['Content-Length: -1']],
    ['not a number', ['Content-Length: five']],
    ['given twice', ['Content-Length: 5', 'Content-Length: 3']],
  ];
  for (const [what, lines] of BAD_LENGTHS) {
    it(`refuses a Content-Length ${what}`, () => {
      const error = parseError(wire([...CORE, ...lines], 'hello'));
      assert.equal(error.status, 400);
      assert.ok(canAnswer(error.partial));
    });
  }
});

describe('limits', () => {
  it('refuses a header value longer than 8 KiB, and takes one of exactly 8 KiB', () => {
    const error = parseError(wire([...CORE, `Subject: ${'x'.repeat(8193)}`]));
    assert.match(error.reason, /Subject header longer than 8192 characters/);
    assert.equal(parseMessage(wire([...CORE, `Subject: ${'x'.repeat(8192)}`])).get('subject')!.length, 8192);
  });

  it('refuses a URI longer than 8 KiB in a header, folded or not', () => {
    const error = parseError(wire([...replacing('to'), 'To:', ` <sip:${'b'.repeat(8192)}@example.com>`]));
    assert.match(error.reason, /To header longer than 8192/);
  });

  it('refuses more than 200 header fields, and takes 200', () => {
    const filler = (count: number) => Array.from({ length: count }, (_, i) => `X-Filler-${i}: ${i}`);
    assert.equal(parseMessage(wire([...CORE, ...filler(200 - CORE.length)])).headers.length, 200);
    assert.match(parseError(wire([...CORE, ...filler(201 - CORE.length)])).reason, /More than 200 header fields/);
  });
});

describe('serialization', () => {
  const FOLDED_AND_COMPACT = [
    'v: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1, SIP/2.0/TCP proxy.example.com;branch=z9hG4bK0',
    'f: "Alice \\"A\\"" <sip:alice@example.com>',
    '  ;tag=1',
    't: sip:bob@example.com',
    'i: round-trip@example.com',
    'CSeq: 7 MESSAGE',
    'Max-Forwards: 70',
    'c: text/plain;charset=utf-8',
    'X-Unknown: ;;,,',
    'l: 5',
  ];

  it('writes no control character but HTAB into a header line, however the value got into the message', () => {
    const injected = 'x\r\nX-Injected: yes\u0000\u0085\u2028\tend';
    const message = new SipMessage({ method: 'MESSAGE', uri: 'sip:bob@example.com', headers: [...parseMessage(wire(CORE)).headers, { name: 'subject', value: injected }] });
    message.add('x-added', injected).set('x-set', injected).prepend('x-prepended', injected);
    const response = new SipMessage({ status: 400, reason: `Bad\r\nX-Reason: 1`, headers: [{ name: 'x-built', value: injected }] });
    const badUri = new SipMessage({ method: 'MESSAGE', uri: `sip:bob@example.com\r\nX-Uri: 1` });
    for (const sent of [message, response, badUri]) {
      const lines = sent.toString().split('\r\n');
      assert.deepEqual(lines.filter((line) => /^X-(Injected|Uri|Reason):/i.test(line) || /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/.test(line)), [], sent.toString());
    }
    assert.equal(message.get('x-added'), 'x  X-Injected: yes   \tend');
    assert.equal(parseMessage(message.toBuffer()).get('subject'), 'x  X-Injected: yes   \tend');
  });

  it('quotes any text as a display name that reads back: quotes and backslashes escaped, line breaks made spaces', () => {
    const value = formatNameAddr({ displayName: 'Mallory "M" \\o/\r\nX-Injected: yes', uri: 'sip:m@example.com', params: new Map() });
    assert.equal(value, '"Mallory \\"M\\" \\\\o/  X-Injected: yes" <sip:m@example.com>');
    assert.equal(parseNameAddr(value).displayName, 'Mallory "M" \\o/  X-Injected: yes');
    assert.equal(quote('a\u0000b'), '"a b"');
  });

  it('gives back equal values when its output is parsed again', () => {
    const message = parseMessage(wire(FOLDED_AND_COMPACT, 'hello'));
    const again = parseMessage(message.toBuffer());
    assert.deepEqual(
      [again.method, again.uri, again.headers, again.body],
      [message.method, message.uri, message.headers, message.body],
    );
    assert.equal(again.from.displayName, 'Alice "A"');
    assert.equal(again.vias.length, 2);
  });

  it('writes Content-Length from the body, whatever the message said', () => {
    const message = parseMessage(wire(replacing('cseq', 'CSeq: 1 MESSAGE', 'Content-Length: 3'), 'hello'));
    assert.match(message.toString(), /\r\nContent-Length: 3\r\n\r\nhel$/);
    message.body = Buffer.from('a longer body');
    const again = parseMessage(message.toBuffer());
    assert.deepEqual([again.getAll('content-length'), again.body.toString()], [['13'], 'a longer body']);
  });

  it('writes a response with an empty reason phrase that parses back', () => {
    const response = new SipMessage({ status: 100, reason: '', headers: parseMessage(wire(CORE)).headers });
    const again = parseMessage(response.toBuffer());
    assert.deepEqual([again.status, again.reason], [100, '']);
  });
});

describe('createResponse', () => {
  const request = () =>
    parseMessage(
      wire(
        [
          'Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK2, SIP/2.0/TCP proxy.example.com;branch=z9hG4bK1',
          'Via: SIP/2.0/TLS edge.example.com;branch=z9hG4bK0',
          'Max-Forwards: 70',
          'From: "Alice" <sip:alice@example.com>;tag=1928301774',
          'To: <sip:bob@example.com>',
          'Call-ID: a84b4c76e66710@pc33.example.com',
          'CSeq: 314159 MESSAGE',
          'Contact: <sip:alice@192.0.2.4>',
          'Content-Type: text/plain',
        ],
        'hello',
      ),
    );

  it('copies Via, From, To, Call-ID and CSeq in order and nothing else', () => {
    const original = request();
    const response = createResponse(original, 200);
    assert.deepEqual([response.status, response.reason, response.body.length], [200, 'OK', 0]);
    assert.deepEqual(response.headers.map((h) => h.name), ['via', 'via', 'from', 'to', 'call-id', 'cseq']);
    assert.deepEqual(response.getAll('via'), original.getAll('via'));
    for (const name of ['from', 'call-id', 'cseq']) assert.equal(response.get(name), original.get(name));
  });

  it('adds a To tag to a final response, the one given or a fresh one', () => {
    assert.equal(createResponse(request(), 202, 'Accepted', 'given').to.params.get('tag'), 'given');
    const tag = createResponse(request(), 404).to.params.get('tag');
    assert.match(tag ?? '', /^[a-z0-9]{10}$/);
    assert.equal(createResponse(request(), 404).to.uri, 'sip:bob@example.com');
  });

  it('adds no To tag to a 100 Trying, nor a second one when the request has one', () => {
    assert.equal(createResponse(request(), 100).get('to'), '<sip:bob@example.com>');
    const tagged = request().set('to', '<sip:bob@example.com>;tag=abc');
    assert.equal(createResponse(tagged, 200).get('to'), '<sip:bob@example.com>;tag=abc');
  });

  it('does not take a "tag" URI parameter for a To tag', () => {
    const uriTag = request().set('to', '<sip:bob@example.com;tag=inside>');
    assert.equal(createResponse(uriTag, 200, 'OK', 'outside').to.params.get('tag'), 'outside');
  });

  it('builds a response that parses', () => {
    const response = parseMessage(createResponse(request(), 486).toBuffer());
    assert.deepEqual([response.status, response.reason, response.cseq.method], [486, 'Busy Here', 'MESSAGE']);
  });
});

describe('topViaBranch', () => {
  const CASES: Array<[string, string | undefined]> = [
    ['SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc.123;rport=5070;received=127.0.0.2', 'z9hG4bKabc.123'],
    ['SIP/2.0/UDP 127.0.0.1:5060 ;rport ; BRANCH = z9hG4bKabc\t;received=127.0.0.2', 'z9hG4bKabc'],
    ['SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKtop, SIP/2.0/UDP h.example.com;branch=z9hG4bKbelow', 'z9hG4bKtop'],
    ['SIP/2.0/UDP h.example.com;branch=z9hG4bKone,SIP/2.0/UDP g.example.com;branch=z9hG4bKtwo', 'z9hG4bKone'],
    ['SIP/2.0/UDP h.example.com;rport, SIP/2.0/UDP g.example.com;branch=z9hG4bKbelow', undefined],
    ['SIP/2.0/UDP h.example.com;branchx=z9hG4bKnot;branch=z9hG4bKyes', 'z9hG4bKyes'],
    ['SIP/2.0/UDP h.example.com;x="a;branch=z9hG4bKquoted";branch=z9hG4bKreal', 'z9hG4bKreal'],
    ['SIP/2.0/UDP h.example.com', undefined],
  ];
  for (const [via, branch] of CASES) {
    it(`reads ${branch ?? 'no branch'} from ${via}`, () => {
      assert.equal(topViaBranch(via), branch);
      // What parseVia reads of the first Via, where it reads one.
      if (branch !== undefined) assert.equal(parseVia(splitList(via)[0]!).branch, branch);
    });
  }
  for (const via of [
    'SIP/2.0/UDP h.example.com;branch=',
    'SIP/2.0/UDP h.example.com;branch= ;rport',
    'SIP/2.0/UDP h.example.com;branch=z9hG4bK<abc>',
    'SIP/2.0/UDP h.example.com;branch=z9hG4bK\u00e9t\u00e9;rport',
    'SIP/2.0/UDP h.example.com;branch=z9hG4bK"x";rport',
    'SIP/2.0/UDP h.example.com;x="q";branch=z9hG4bK{}',
  ]) {
    it(`refuses the malformed branch of ${via}, as parseVia does`, () => {
      assert.throws(() => topViaBranch(via), HeaderError);
      assert.throws(() => parseVia(splitList(via)[0]!), HeaderError);
    });
  }
});
