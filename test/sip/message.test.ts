import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SipMessage, createResponse, fnv1a, randomToken, responseHead, withHeadersOf, wireForm } from '../../src/sip/message.js';
import { type SipParseError, parseMessage } from '../../src/sip/parser.js';

const REQUEST = [
  'MESSAGE sip:bob@example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKtop;rport, SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKbelow',
  'Max-Forwards: 70',
  'From: "Alice" <sip:alice@example.com>;tag=1928301774',
  'To: <sip:bob@example.com>',
  'Call-ID: a84b4c76e66710@pc33.example.com',
  'CSeq: 314159 MESSAGE',
  'Contact: <sip:alice@192.0.2.4>',
  '',
  '',
].join('\r\n');

const names = (message: SipMessage) => message.headers.map((h) => `${h.name}: ${h.value}`);

describe('parsed header values', () => {
  it('an edit of one header is read anew from it, while the others keep what was parsed', () => {
    const message = parseMessage(Buffer.from(REQUEST));
    const { from, via, cseq, contacts } = message;
    message.set('to', '<sip:carol@example.com>').add('subject', 'hi').remove('max-forwards');
    assert.equal(message.to.uri, 'sip:carol@example.com');
    assert.equal(message.toUri.user, 'carol');
    assert.equal(message.from, from);
    assert.equal(message.via, via);
    assert.equal(message.cseq, cseq);
    assert.equal(message.contacts, contacts);
    message.set('contact', '<sip:alice@192.0.2.5>');
    assert.deepEqual(message.contacts.map((c) => c.uri), ['sip:alice@192.0.2.5']);
  });

  it('set() puts the one value where the first was and drops the others', () => {
    const message = new SipMessage({ headers: [{ name: 'a', value: '1' }, { name: 'x', value: 'old' }, { name: 'b', value: '2' }, { name: 'x', value: 'older' }] });
    message.set('x', 'new');
    assert.deepEqual(names(message), ['a: 1', 'x: new', 'b: 2']);
  });

  it('a rewritten top Via goes where the old one was, and the Vias are not parsed again', () => {
    const message = parseMessage(Buffer.from(REQUEST));
    const [top, below] = message.vias;
    top!.params.set('received', '198.51.100.7');
    message.replaceTopVia(top!);
    assert.deepEqual(names(message).slice(0, 2), [
      'via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKtop;rport;received=198.51.100.7',
      'via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKbelow',
    ]);
    assert.equal(message.vias[0], top);
    assert.equal(message.vias[1], below);
    assert.match(message.toString(), /^Via: SIP\/2\.0\/UDP 192\.0\.2\.4:5060;branch=z9hG4bKtop;rport;received=198\.51\.100\.7\r\nVia: SIP\/2\.0\/UDP 192\.0\.2\.9;branch=z9hG4bKbelow\r\n/m);
  });

  it('a rewritten top Via of a request holding a control character has it replaced, as every value it sends', () => {
    const message = parseMessage(Buffer.from(REQUEST.replace('branch=z9hG4bKtop', 'branch=z9hG4bKtop;note="a\x01b"')));
    const top = message.via;
    top.params.set('received', '198.51.100.7');
    message.replaceTopVia(top);
    assert.equal(names(message)[0], 'via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKtop;note="a b";rport;received=198.51.100.7');
  });

  it('a response is answered on its Via and CSeq: a Contact URI of it that no socket could take is not read', () => {
    const response = parseMessage(
      Buffer.from(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1', 'From: <sip:a@example.com>;tag=1', 'To: <sip:b@example.com>;tag=2', 'Call-ID: c', 'CSeq: 1 MESSAGE', 'Contact: <sip:b@192.0.2.5:0>', '', ''].join('\r\n')),
    );
    assert.equal(response.status, 200);
    assert.equal(response.cseq.method, 'MESSAGE');
  });
});

describe('copies of a parsed message', () => {
  const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/;
  const lines = (message: SipMessage) => message.toString().split('\r\n');

  it('a response to a request read with control characters in its values carries none of them', () => {
    const request = parseMessage(Buffer.from(REQUEST.replace('"Alice"', '"Al\x07ice\x7f"').replace('To: <sip:bob@example.com>', 'To: "B\u0085ob" <sip:bob@example.com>')));
    assert.equal(request.from.displayName, 'Al\x07ice\x7f', 'the layers above still read the value as it came');
    const response = createResponse(request, 200, 'OK');
    assert.deepEqual(lines(response).filter((line) => UNSAFE.test(line)), []);
    assert.match(response.get('from')!, /^"Al ice " <sip:alice@example.com>/);
  });

  it('a request that fails further down is answered without the control characters read before', () => {
    const wire = REQUEST.replace('"Alice"', '"Al\x07ice"').replace('Contact: <sip:alice@192.0.2.4>', 'X-Broken: a\rb');
    const error = (() => {
      try {
        parseMessage(Buffer.from(wire));
      } catch (caught) {
        return caught as SipParseError;
      }
      assert.fail('a bare CR was accepted');
    })();
    const response = createResponse(error.partial!, 400, error.reason);
    assert.deepEqual(lines(response).filter((line) => UNSAFE.test(line)), []);
  });

  it('a copy of a clean request shares its header objects; one of an unclean request gets safe copies', () => {
    const clean = parseMessage(Buffer.from(REQUEST));
    const copy = withHeadersOf(clean, [...clean.headers], { method: clean.method, uri: clean.uri });
    assert.ok(copy.headers.every((header, i) => header === clean.headers[i]));
    const unclean = parseMessage(Buffer.from(REQUEST.replace('"Alice"', '"Al\x00ice"')));
    const safe = withHeadersOf(unclean, [...unclean.headers], { method: unclean.method, uri: unclean.uri });
    assert.equal(safe.get('from'), '"Al ice" <sip:alice@example.com>;tag=1928301774');
    assert.equal(unclean.get('from'), '"Al\x00ice" <sip:alice@example.com>;tag=1928301774', 'the original is left as it was read');
  });
});

describe('wire form', () => {
  it('writes UTF-8 values, a body and a Content-Length of its own', () => {
    const message = new SipMessage({ method: 'MESSAGE', uri: 'sip:bob@example.com', body: Buffer.from('héllo', 'utf8') });
    message.add('via', 'SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKw').add('subject', 'Grüße ✓').add('content-length', '999');
    assert.equal(
      message.toBuffer().toString('utf8'),
      'MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKw\r\nSubject: Grüße ✓\r\nContent-Length: 6\r\n\r\nhéllo',
    );
    const response = createResponse(parseMessage(Buffer.from(REQUEST)), 486, 'Busy Hère', 'x');
    assert.match(response.toString(), /^SIP\/2\.0 486 Busy Hère\r\nVia: .*\r\nCall-ID: a84b4c76e66710@pc33.example.com\r\n.*Content-Length: 0\r\n\r\n$/s);
  });
});

describe('a response written straight from the request', () => {
  /** The message as the parser leaves it, or as far as it was read when it failed. */
  const read = (wire: string) => {
    try {
      return parseMessage(Buffer.from(wire, 'utf8'));
    } catch (error) {
      return (error as SipParseError).partial!;
    }
  };
  const CASES: Record<string, string> = {
    'the usual request': REQUEST,
    'compact and mixed-case names': REQUEST.replace('Via:', 'v:').replace('From:', 'f :').replace('To:', 'TO:').replace('Call-ID:', 'i:').replace('CSeq:', 'cseq:'),
    'folded values': REQUEST.replace('To: <sip:bob@example.com>', 'To:\r\n <sip:bob@example.com>\r\n\t;x=1').replace('CSeq: 314159 MESSAGE', 'CSeq: 314159\r\n MESSAGE'),
    'Vias on several lines, one of them a list, among other headers': REQUEST.replace('Max-Forwards: 70', 'Max-Forwards: 70\r\nVIA: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKthird , SIP/2.0/UDP h.example.com;branch=z9hG4bK4'),
    'a To that has its tag': REQUEST.replace('To: <sip:bob@example.com>', 'To: <sip:bob@example.com>;tag=abc'),
    'a tag inside the To URI only': REQUEST.replace('To: <sip:bob@example.com>', 'To: <sip:bob@example.com;tag=inuri>'),
    'UTF-8 and control characters in values': REQUEST.replace('"Alice"', '"Älice\x07\u2028"').replace('To: <sip:bob@example.com>', 'To: "B\u0085öb" <sip:bob@example.com>'),
    'two To headers, read from a request refused for them': REQUEST.replace('To: <sip:bob@example.com>', 'To: <sip:bob@example.com>\r\nTo: <sip:carol@example.com>'),
    'no To, read from a request refused for it': REQUEST.replace('To: <sip:bob@example.com>\r\n', ''),
    'a To that is no name-addr': REQUEST.replace('To: <sip:bob@example.com>', 'To: <sip:bob@example.com'),
  };
  for (const [name, wire] of Object.entries(CASES)) {
    it(`is byte for byte what createResponse writes: ${name}`, () => {
      const request = read(wire);
      for (const [status, reason] of [[200, 'OK'], [100, 'Trying'], [400, 'Bad\rRequest'], [486, 'Busy Hère']] as const) {
        const expected = createResponse(request, status, reason, 'tag1').toBuffer();
        assert.equal(wireForm(responseHead(request, status, reason, 'tag1'), Buffer.alloc(0)).toString('utf8'), expected.toString('utf8'));
      }
      const withBody = createResponse(request, 200, undefined, 'tag2');
      withBody.add('content-type', 'text/plain');
      withBody.body = Buffer.from('réponse');
      assert.deepEqual(wireForm(responseHead(request, 200, undefined, 'tag2') + 'Content-Type: text/plain\r\n', Buffer.from('réponse')), withBody.toBuffer());
    });
  }

  it('tags the To afresh when the request had no tag, as createResponse does', () => {
    const head = responseHead(parseMessage(Buffer.from(REQUEST)), 200);
    assert.match(head, /^SIP\/2\.0 200 OK\r\nVia: SIP\/2\.0\/UDP 192\.0\.2\.4:5060;branch=z9hG4bKtop;rport, SIP\/2\.0\/UDP 192\.0\.2\.9;branch=z9hG4bKbelow\r\nFrom: "Alice" <sip:alice@example\.com>;tag=1928301774\r\nTo: <sip:bob@example\.com>;tag=[0-9a-f]{10}\r\nCall-ID: a84b4c76e66710@pc33\.example\.com\r\nCSeq: 314159 MESSAGE\r\n$/);
  });
});

describe('randomToken', () => {
  it('gives lower-case hex of the length asked, different each time, across refills of its random block', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const token = randomToken(i % 2 === 0 ? 16 : 7);
      assert.match(token, i % 2 === 0 ? /^[0-9a-f]{16}$/ : /^[0-9a-f]{7}$/);
      seen.add(token);
    }
    assert.equal(seen.size, 1000);
    assert.match(randomToken(), /^[0-9a-f]{10}$/);
  });
});

describe('fnv1a', () => {
  it('gives the tokens it always gave, so that the Call-IDs of resent copies and stateless To tags stay the same across versions', () => {
    assert.equal(fnv1a('alice@example.com'), '158r9l21sgr2aa');
    assert.equal(fnv1a('a84b4c76e66710@pc33.atlanta.com', '<sip:alice@atlanta.com>;tag=1928301774', '314159 MESSAGE', 'z9hG4bK776asdhds'), '1rnldzg1clsatq');
    // Its first half lies past 2^30, where the digits are written in two steps; its second below.
    assert.equal(fnv1a(''), 'ztntfp9zloz');
  });
});
