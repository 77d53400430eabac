import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_URI_LENGTH, UriError, aorOf, domainOfAor, escapeUser, formatUri, parseHostPort, parseTypedAddress, parseUri, sipAddress, sipUriOfAor, splitAor } from '../../src/sip/uri.js';

type Fields = {
  scheme?: string;
  user?: string;
  password?: string;
  host?: string;
  port?: number;
  params?: Record<string, string | null>;
  headers?: Record<string, string>;
  opaque?: string;
};

const VALID: Array<[uri: string, expected: Fields]> = [
  ['sip:alice@atlanta.com', { scheme: 'sip', user: 'alice', host: 'atlanta.com', port: undefined, params: {}, headers: {} }],
  ['SIP:Alice@AtLanta.COM:5060', { scheme: 'sip', user: 'Alice', host: 'atlanta.com', port: 5060 }],
  ['sips:alice:secretword@atlanta.com;transport=tcp', { scheme: 'sips', user: 'alice', password: 'secretword', params: { transport: 'tcp' } }],
  ['sip:+1-212-555-1212:1234@gateway.com;user=phone', { user: '+1-212-555-1212', password: '1234', params: { user: 'phone' } }],
  ['sip:atlanta.com', { user: '', host: 'atlanta.com' }],
  // The user part may hold ';' and '?': the userinfo ends at the last '@' (RFC 4475 §3.1.1.2, §3.1.1.9).
  ['sip:alice;day=tuesday@atlanta.com', { user: 'alice;day=tuesday', host: 'atlanta.com', params: {} }],
  ['sip:who?,/;;*@example.com;lr', { user: 'who?,/;;*', host: 'example.com', params: { lr: null }, headers: {} }],
  // Escapes in the user part are undone once, and only once.
  ['sip:%61lice@atlanta.com', { user: 'alice' }],
  ['sip:I%20have%20spaces@example.net', { user: 'I have spaces' }],
  ['sip:null-%00-null@example.com', { user: 'null-\0-null' }],
  ['sip:sips%3Auser%40example.com@example.net', { user: 'sips:user@example.com', host: 'example.net' }],
  ['sip:caller@host;%6C%72;n%61me=v%61lue%25%34%31', { params: { lr: null, name: 'value%41' } }],
  ['sip:host;LR;Transport=TCP', { params: { lr: null, transport: 'TCP' } }],
  ['sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com', { params: { method: 'REGISTER' }, headers: { to: 'alice@atlanta.com' } }],
  ['sip:alice@atlanta.com?subject=project%20x&priority=urgent', { headers: { subject: 'project x', priority: 'urgent' } }],
  ['sip:user@example.com?Route=%3Csip:sip.example.com%3E', { headers: { Route: '<sip:sip.example.com>' } }],
  // IPv6 references keep their brackets; a port is only a port outside them (RFC 5118 §4.3, §4.4).
  ['sip:[2001:db8::10]:5070', { user: '', host: '[2001:db8::10]', port: 5070 }],
  ['sip:[2001:db8::10:5070]', { host: '[2001:db8::10:5070]', port: undefined }],
  ['sips:user@[2001:DB8::1];maddr=[2001:db8::2]', { host: '[2001:db8::1]', params: { maddr: '[2001:db8::2]' } }],
  ['sip:[::ffff:192.0.2.2]:5060', { host: '[::ffff:192.0.2.2]', port: 5060 }],
  ['tel:+1-201-555-0123', { scheme: 'tel', user: '+1-201-555-0123', host: '', params: {} }],
  ['TEL:7042;phone-context=example.com', { scheme: 'tel', user: '7042', params: { 'phone-context': 'example.com' } }],
  ['tel:*21#', { user: '*21#' }],
  ['mailto:alice@example.com', { scheme: 'mailto', user: '', host: '', opaque: 'alice@example.com' }],
  ['urn:service:sos', { scheme: 'urn', opaque: 'service:sos' }],
];

const INVALID: Array<[uri: string, reason: RegExp]> = [
  ['alice@atlanta.com', /no scheme/],
  ['<sip:user@example.com>', /scheme/],
  ['sip:user@example.com; lr', /illegal character/],
  ['sip:a b@example.com', /illegal character/],
  ['sip:@example.com', /empty user/],
  ['sip:', /bad host/],
  ['sip:us<er@example.com', /illegal character/],
  ['sip:us"er@example.com', /illegal character/],
  ['sip:us[er@example.com', /user part/],
  ['sip:%zz@example.com', /user part/],
  ['sip:%C0@example.com', /bad escape/],
  ['sip:a@-example.com', /bad host/],
  ['sip:a@exa_mple.com', /bad host/],
  // An IPv6 address must be in brackets (RFC 5118 §4.2).
  ['sip:2001:db8::10', /bad host "2001"/],
  // What becomes a destination must be one: no port 0, no name that is no name, no address that is no address.
  ['sip:a@host:0', /bad port "0"/],
  ['sip:a@host:-1', /bad port "-1"/],
  ['sip:a@host:99999', /bad port/],
  ['sip:a@ex..ample.com', /bad host/],
  ['sip:a@example-.com', /bad host/],
  ['sip:a@1.2.3.256', /bad host/],
  ['sip:a@1.2.3', /bad host/],
  ['sip:a@example.123', /bad host/],
  [`sip:a@${'h'.repeat(64)}.example.com`, /bad host/],
  [`sip:a@${'h.'.repeat(127)}com`, /bad host/],
  // RFC 5118 §4.8: ":::" comes from an ABNF bug, and no socket takes it.
  ['sip:[2001:db8:::192.0.2.1]', /bad host/],
  ['sip:[2001:db8::g]', /bad host/],
  ['sip:[]', /bad host/],
  ['sip:a@[2001:db8::1', /unclosed IPv6/],
  ['sip:a@[2001:db8::1]5060', /junk after IPv6/],
  ['sip:a@host:65536', /bad port/],
  ['sip:a@host:', /bad port/],
  ['sip:a@host;', /empty URI parameter/],
  ['sip:a@host;a=b c', /illegal character/],
  ['sip:a@host;a=b{', /bad URI parameter/],
  ['sip:a@host?subject', /bad URI header/],
  ['tel:12_34', /bad telephone number/],
  [`sip:a@${'h'.repeat(MAX_URI_LENGTH)}`, /longer than 8192/],
];

function fields(uri: string): Fields {
  const parsed = parseUri(uri);
  return { ...parsed, params: Object.fromEntries(parsed.params), headers: Object.fromEntries(parsed.headers) };
}

describe('parseUri', () => {
  for (const [uri, expected] of VALID) {
    it(`reads ${uri}`, () => {
      const actual = fields(uri);
      for (const key of Object.keys(expected) as Array<keyof Fields>) assert.deepEqual(actual[key], expected[key], key);
    });
  }

  for (const [uri, reason] of INVALID) {
    it(`refuses ${uri.length > 60 ? `${uri.slice(0, 60)}…` : uri}`, () => {
      assert.throws(() => parseUri(uri), (error: unknown) => error instanceof UriError && reason.test(error.message));
    });
  }

  it('accepts a URI of exactly the maximum length', () => {
    const uri = `sip:${'u'.repeat(MAX_URI_LENGTH - 'sip:@h'.length)}@h`;
    assert.equal(parseUri(uri).user.length, MAX_URI_LENGTH - 'sip:@h'.length);
  });
});

describe('formatUri', () => {
  for (const [uri] of VALID) {
    it(`gives back what parseUri read from ${uri}`, () => {
      assert.deepEqual(parseUri(formatUri(parseUri(uri))), parseUri(uri));
    });
  }

  it('writes the canonical form', () => {
    assert.equal(formatUri(parseUri('SIP:Alice@AtLanta.COM:5060;Transport=tcp')), 'sip:Alice@atlanta.com:5060;transport=tcp');
    assert.equal(formatUri(parseUri('sip:I%20have%20spaces@example.net')), 'sip:I%20have%20spaces@example.net');
    assert.equal(formatUri(parseUri('sip:c@h;n%61me=v%61lue%25%34%31')), 'sip:c@h;name=value%2541');
  });
});

describe('URI helpers', () => {
  it('parseTypedAddress reads a typed URI, user@domain, or a bare user of the default domain', () => {
    const read = (text: string, domain?: string) => {
      const uri = parseTypedAddress(text, domain);
      return [uri.scheme, uri.user, uri.host];
    };
    assert.deepEqual(read('sips:Dora%40home@Example.com'), ['sip', 'Dora@home', 'example.com']);
    assert.deepEqual(read('bob@example.com', 'localhost'), ['sip', 'bob', 'example.com']);
    assert.deepEqual(read('bob', 'localhost'), ['sip', 'bob', 'localhost']);
    assert.deepEqual(read('bob'), ['sip', '', 'bob'], 'no default domain: a bare word is a host');
    assert.throws(() => parseTypedAddress('bad<user', 'localhost'), UriError);
  });

  it('escapes what a user part may not hold literally', () => {
    assert.equal(escapeUser('I have spaces'), 'I%20have%20spaces');
    assert.equal(escapeUser('null-\0-null'), 'null-%00-null');
    assert.equal(escapeUser('100%@x'), '100%25%40x');
    assert.equal(escapeUser("+1;isub=2?&=$,/!~*'()"), "+1;isub=2?&=$,/!~*'()");
  });

  it('takes the address of record from user and lower-cased host', () => {
    assert.equal(aorOf(parseUri('sip:Alice@AtLanta.com:5070;transport=tcp')), 'Alice@atlanta.com');
    assert.equal(aorOf(parseUri('sip:atlanta.com')), 'atlanta.com');
  });

  it('cuts an address of record at its last "@", and writes it back as the SIP URI it was read from', () => {
    // A user part may hold an escaped "@": aorOf unescapes it, so the domain starts after the last one.
    const aor = aorOf(parseUri('sip:bob%40home@Example.com'));
    assert.equal(aor, 'bob@home@example.com');
    assert.deepEqual(splitAor(aor), { user: 'bob@home', domain: 'example.com' });
    assert.equal(domainOfAor(aor), 'example.com');
    assert.equal(sipUriOfAor(aor), 'sip:bob%40home@example.com');
    assert.equal(aorOf(parseUri(sipUriOfAor(aor))), aor);
    // A URI without a user has its host as its address of record.
    assert.deepEqual(splitAor('atlanta.com'), { user: '', domain: 'atlanta.com' });
    assert.equal(domainOfAor('atlanta.com'), 'atlanta.com');
    assert.equal(sipUriOfAor('atlanta.com'), 'sip:atlanta.com');
    assert.equal(sipUriOfAor('a b@example.com'), 'sip:a%20b@example.com');
    assert.equal(sipUriOfAor("+1;isub=2?&=$,/!~*'()@example.com"), "sip:+1;isub=2?&=$,/!~*'()@example.com");
    assert.equal(sipUriOfAor('alice@example.com'), 'sip:alice@example.com');
    assert.equal(sipAddress('bob@home', 'example.com'), 'sip:bob%40home@example.com');
    assert.equal(sipAddress('', 'example.com'), 'sip:example.com');
  });

  const HOSTPORTS: Array<[text: string, host: string, port?: number]> = [
    ['example.com', 'example.com'],
    ['Example.COM:5061', 'example.com', 5061],
    ['192.0.2.1:65535', '192.0.2.1', 65535],
    ['host.example.:1', 'host.example.', 1],
    ['[2001:db8::9:1]', '[2001:db8::9:1]'],
    ['[2001:DB8::9:1]:5070', '[2001:db8::9:1]', 5070],
  ];
  for (const [text, host, port] of HOSTPORTS) {
    it(`splits host and port in ${text}`, () => assert.deepEqual(parseHostPort(text), { host, port }));
  }
});
