// Per-source limits on an explicit clock, and what the stream framer keeps of a hostile stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressRanges, SourceRateLimiter, parseCidr } from '../../src/sip/transport/limits.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';

test('CIDR ranges: IPv4, IPv6, a bare address; anything else is refused', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.deepEqual(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/8', 'localhost', '10.0.0.0/x', '']) assert.equal(parseCidr(bad), undefined, bad);
});

test('address ranges match IPv4-mapped IPv6 addresses as their IPv4 address', () => {
  const ranges = new AddressRanges(['127.0.0.0/8', '2001:db8::/32']);
  for (const inside of ['127.0.0.1', '127.9.9.9', '::ffff:127.0.0.1', '2001:db8::5']) assert.ok(ranges.has(inside), inside);
  for (const outside of ['128.0.0.1', '::1', '2001:db9::1', 'not-an-ip']) assert.ok(!ranges.has(outside), outside);
});

test('a source gets `limit` at once, then one more per window/limit; exempt sources are not counted', () => {
  const limiter = new SourceRateLimiter(4, 1000, new AddressRanges(['10.0.0.0/8']));
  const admitted = (host: string, now: number, times: number) => Array.from({ length: times }, () => limiter.admit(host, now)).filter(Boolean).length;
  assert.equal(admitted('192.0.2.1', 0, 10), 4);
  assert.equal(limiter.retryAfter('192.0.2.1', 0), 1);
  assert.equal(admitted('192.0.2.1', 250, 10), 1, 'a quarter window gives back one');
  assert.equal(admitted('192.0.2.2', 250, 10), 4, 'sources are counted apart');
  assert.equal(admitted('10.1.2.3', 250, 1000), 1000);
});

test('sources whose allowance is whole again are forgotten; the table never grows past its cap', () => {
  const limiter = new SourceRateLimiter(10, 1000, new AddressRanges([]));
  limiter.admit('192.0.2.1', 0);
  limiter.admit('192.0.2.2', 900);
  limiter.forgetIdle(1000);
  assert.equal(limiter.tracked, 1);
  for (let i = 0; i < 120_000; i++) limiter.admit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1000);
  assert.equal(limiter.tracked, 100_000);
});

test('a head arriving a byte at a time is framed, whichever separator ends it', () => {
  for (const separator of ['\r\n\r\n', '\n\n']) {
    const framer = new StreamFramer(65535);
    const text = `OPTIONS sip:localhost SIP/2.0${separator.slice(0, separator.length / 2)}Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@localhost>;tag=1\r\nTo: <sip:localhost>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70${separator}`;
    const results = [...Buffer.from(text)].flatMap((byte) => framer.push(Buffer.from([byte])));
    assert.equal(results.length, 1, JSON.stringify(separator));
    assert.ok('message' in results[0]!);
    assert.equal(framer.buffered, 0);
  }
});

test('after a fatal framing error the framer keeps nothing of what follows', () => {
  const framer = new StreamFramer(1024);
  const [result] = framer.push(Buffer.from('OPTIONS sip:localhost SIP/2.0\r\nContent-Length: many\r\n\r\n'));
  assert.ok(result && 'error' in result && result.fatal);
  for (let i = 0; i < 100; i++) assert.deepEqual(framer.push(Buffer.alloc(64 * 1024, 'x')), []);
  assert.equal(framer.buffered, 0);
});
