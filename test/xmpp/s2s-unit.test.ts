// Server mode building blocks: dialback keys (XEP-0185), SRV ordering, and SRV-then-A resolution
// (RFC 6120 §3.2) against a tiny DNS server on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dialbackKey, verifyDialbackKey } from '../../src/xmpp/s2s/dialback.js';
import { ServerResolver, orderSrv } from '../../src/xmpp/s2s/resolve.js';
import { DnsServer } from '../support/dns-server.js';

describe('dialback keys', () => {
  test('match the published XEP-0185 test vectors', () => {
    assert.equal(dialbackKey('s3cr3tf0rd14lb4ck', 'xmpp.example.com', 'example.org', 'D60000229F'), '37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643');
    assert.equal(dialbackKey('s3cr3tf0rd14lb4ck', 'example.net', 'example.com', 'D60000229F'), '008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc');
  });

  test('verify only the key of that secret, those domains and that stream', () => {
    const key = dialbackKey('secret-one', 'b.test', 'a.test', 'stream-1');
    assert.ok(verifyDialbackKey('secret-one', 'b.test', 'a.test', 'stream-1', key));
    assert.ok(verifyDialbackKey('secret-one', 'b.test', 'a.test', 'stream-1', ` ${key}\n`));
    assert.ok(!verifyDialbackKey('secret-two', 'b.test', 'a.test', 'stream-1', key));
    assert.ok(!verifyDialbackKey('secret-one', 'a.test', 'b.test', 'stream-1', key));
    assert.ok(!verifyDialbackKey('secret-one', 'b.test', 'a.test', 'stream-2', key));
    assert.ok(!verifyDialbackKey('secret-one', 'b.test', 'a.test', 'stream-1', 'short'));
  });
});

describe('SRV order (RFC 2782)', () => {
  const record = (name: string, priority: number, weight: number) => ({ name, priority, weight, port: 5269 });

  test('lower priority first; weight 0 records still come', () => {
    const ordered = orderSrv([record('c', 20, 0), record('a', 10, 5), record('b', 10, 0)], () => 0);
    assert.deepEqual(ordered.map((r) => r.name), ['a', 'b', 'c']);
  });

  test('within a priority, the weight decides the odds', () => {
    const first = (random: number) => orderSrv([record('light', 1, 1), record('heavy', 1, 9)], () => random)[0]!.name;
    assert.equal(first(0.05), 'light');
    assert.equal(first(0.5), 'heavy');
  });
});

describe('resolution through a DNS server', () => {
  let dns: DnsServer;
  let resolver: ServerResolver;

  before(async () => {
    dns = await DnsServer.start({
      '_xmpp-server._tcp.srv.test': [
        { type: 'SRV', priority: 20, weight: 0, port: 5299, target: 'backup.srv.test' },
        { type: 'SRV', priority: 10, weight: 0, port: 5270, target: 'xmpp.srv.test' },
      ],
      'xmpp.srv.test': [{ type: 'A', address: '127.0.0.7' }],
      'backup.srv.test': [{ type: 'A', address: '127.0.0.8' }],
      'plain.test': [{ type: 'A', address: '127.0.0.9' }],
      '_xmpp-server._tcp.none.test': [{ type: 'SRV', priority: 0, weight: 0, port: 0, target: '.' }],
    });
    resolver = new ServerResolver(dns.address);
  });

  after(() => dns?.close());

  test('SRV records come first, in priority order, and their targets resolve to addresses', async () => {
    assert.deepEqual(await resolver.targets('srv.test'), [
      { host: 'xmpp.srv.test', port: 5270 },
      { host: 'backup.srv.test', port: 5299 },
    ]);
    assert.deepEqual(await resolver.addresses('xmpp.srv.test'), ['127.0.0.7']);
    assert.ok(dns.queries.includes('SRV _xmpp-server._tcp.srv.test'));
  });

  test('without SRV records, the domain itself at port 5269, resolved through its A record', async () => {
    assert.deepEqual(await resolver.targets('plain.test'), [{ host: 'plain.test', port: 5269 }]);
    assert.deepEqual(await resolver.addresses('plain.test'), ['127.0.0.9']);
    assert.ok(dns.queries.includes('SRV _xmpp-server._tcp.plain.test'));
    assert.ok(dns.queries.includes('A plain.test'));
  });

  test('a "." target means no XMPP service', async () => {
    assert.deepEqual(await resolver.targets('none.test'), []);
  });

  test('a name the server does not know falls back to the system lookup (localhost)', async () => {
    assert.deepEqual(await resolver.addresses('localhost').then((list) => list.includes('127.0.0.1') || list.includes('::1')), true);
    assert.deepEqual(await resolver.addresses('127.0.0.5'), ['127.0.0.5']);
  });
});
