// Server mode when a remote domain's XMPP server cannot be reached: its messages wait up to
// delay_time while Parley dials again with backoff, and arrive once the server listens; when it
// never does, they fail back to their SIP sender. Names resolve through the test DNS server to
// loopback ports where nothing listens at first.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DnsServer } from '../support/dns-server.js';
import { eventually } from '../support/eventually.js';
import { freeTcpPort } from '../support/process.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA, registeredTcpUser } from '../support/ua.js';
import { type ScriptedConnection, ScriptedXmppServer } from '../support/xmpp-peer.js';

const PARLEY_DOMAIN = 'parley.test';

/**
 * The loopback address of the servers that never listen: no other test listens on it, so a port
 * found free there stays refused, where one of 127.0.0.1 may be taken meanwhile by another test's
 * server (the kernel hands out ports released as ephemeral ones again).
 */
const NOBODY_HOST = '127.0.0.201';

const header = (domain: string) => `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${domain}' to='${PARLEY_DOMAIN}' id='remote-1' version='1.0'>`;

/** What a remote XMPP server of `domain` that takes Parley's dialback key without checking it answers. */
function acceptDialback({ socket }: ScriptedConnection, chunk: string, domain: string): void {
  if (chunk.includes('<stream:stream')) socket.write(`${header(domain)}<stream:features/>`);
  if (chunk.includes('<db:result')) socket.write(`<db:result from='${domain}' to='${PARLEY_DOMAIN}' type='valid'/>`);
}

/** Parley in server mode resolving through `dns`, with alice registered. */
async function serverMode(dns: DnsServer, more: Record<string, unknown>): Promise<{ parley: TestServer; alice: TestUA }> {
  const parley = await startServer({
    xmpp: {
      enabled: true,
      backend: 'server',
      xmpp_domain: PARLEY_DOMAIN,
      s2s_listen: '127.0.0.1',
      s2s_port: 0,
      s2s_require_tls: false,
      resolver: dns.address,
      dialback_secret: 'a dialback secret for the tests',
      reconnect_min: 0.05,
      reconnect_max: 0.2,
      ...more,
    },
  });
  await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 's2s listener online');
  const alice = await registeredTcpUser(parley.tcp, 'alice');
  return { parley, alice };
}

const srvQueries = (dns: DnsServer, domain: string) => dns.queries.filter((query) => query === `SRV _xmpp-server._tcp.${domain}`).length;
const noticesFrom = (alice: TestUA, address: string) => alice.received.filter((request) => request.method === 'MESSAGE' && request.from.uri === address);

describe('a remote XMPP server unreachable at first', () => {
  let dns: DnsServer;
  let parley: TestServer;
  let alice: TestUA;
  let latePort: number;
  // The first connection offers STARTTLS and drops the TLS handshake; later ones go without TLS.
  const tlsFailingOnce: ScriptedXmppServer = new ScriptedXmppServer((connection, chunk) => {
    if (tlsFailingOnce.connections.indexOf(connection) > 0) return acceptDialback(connection, chunk, 'tls.test');
    const { socket } = connection;
    if (chunk.includes('<stream:stream')) socket.write(`${header('tls.test')}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>`);
    else if (chunk.includes('<starttls')) socket.write(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
    else socket.destroy();
  });
  const servers = [tlsFailingOnce];

  before(async () => {
    latePort = await freeTcpPort();
    dns = await DnsServer.start({
      '_xmpp-server._tcp.late.test': [{ type: 'SRV', priority: 0, weight: 0, port: latePort, target: 'late.loopback.test' }],
      '_xmpp-server._tcp.tls.test': [{ type: 'SRV', priority: 0, weight: 0, port: await tlsFailingOnce.listen(), target: 'late.loopback.test' }],
      '_xmpp-server._tcp.never.test': [{ type: 'SRV', priority: 0, weight: 0, port: await freeTcpPort(NOBODY_HOST), target: 'nobody.loopback.test' }],
      'late.loopback.test': [{ type: 'A', address: '127.0.0.1' }],
      'nobody.loopback.test': [{ type: 'A', address: NOBODY_HOST }],
    });
    ({ parley, alice } = await serverMode(dns, { s2s_dials_per_minute: 1000, delay_time: 3 }));
  });

  after(async () => {
    alice?.close();
    await parley?.stop();
    dns?.close();
    for (const server of servers) server.close();
  });

  test('messages wait while Parley dials again, and arrive once the server listens', async () => {
    const romeo = `sip:romeo*late.test@${PARLEY_DOMAIN}`;
    assert.equal((await alice.message(romeo, 'sent while late.test was down')).status, 202);
    await eventually(() => srvQueries(dns, 'late.test') >= 2 || undefined, 'a second connection attempt');
    assert.equal((await alice.message(romeo, 'sent while late.test was still down')).status, 202);

    const late = new ScriptedXmppServer((connection, chunk) => acceptDialback(connection, chunk, 'late.test'));
    servers.push(late);
    await late.listen(latePort);
    const input = await eventually(() => {
      const text = late.connections.map((connection) => connection.input).join('');
      return text.includes('still down') ? text : undefined;
    }, 'both messages at late.test');
    const first = input.indexOf('sent while late.test was down');
    assert.ok(first >= 0 && first < input.indexOf('sent while late.test was still down'), 'both, in order');
    assert.deepEqual(noticesFrom(alice, romeo), [], 'no error notification');
  });

  test('a failed TLS handshake is a server not reached: the message waits for the next connection', async () => {
    const romeo = `sip:romeo*tls.test@${PARLEY_DOMAIN}`;
    assert.equal((await alice.message(romeo, 'after a failed handshake')).status, 202);
    await eventually(() => tlsFailingOnce.connections[1]?.input.includes('after a failed handshake') || undefined, 'the message on the second connection');
    assert.match(tlsFailingOnce.connections[0]!.input, /<starttls xmlns=["']urn:ietf:params:xml:ns:xmpp-tls["']\/>/);
    assert.doesNotMatch(tlsFailingOnce.connections[0]!.input, /after a failed handshake/);
    assert.deepEqual(noticesFrom(alice, romeo), [], 'no error notification');
  });

  test('messages for a server that never listens fail back to their sender after delay_time', async () => {
    const romeo = `sip:romeo*never.test@${PARLEY_DOMAIN}`;
    assert.equal((await alice.message(romeo, 'into the void')).status, 202);
    await eventually(() => srvQueries(dns, 'never.test') >= 2 || undefined, 'a second connection attempt');
    assert.deepEqual(noticesFrom(alice, romeo), [], 'no error notification before delay_time');
    const [notice] = await eventually(() => (noticesFrom(alice, romeo).length > 0 ? noticesFrom(alice, romeo) : undefined), 'an error notification');
    assert.match(notice!.body.toString(), /^Your message to romeo@never\.test was not delivered: XMPP error remote-server-timeout \(no XMPP server of never\.test could be reached within 3 s \(connect ECONNREFUSED 127\.0\.0\.201:\d+\)\) \(408\)\.\n> into the void$/);
  });
});

describe('retries of an unreachable domain', () => {
  let dns: DnsServer;
  let parley: TestServer;
  let alice: TestUA;

  before(async () => {
    dns = await DnsServer.start({
      '_xmpp-server._tcp.bounded.test': [{ type: 'SRV', priority: 0, weight: 0, port: await freeTcpPort(NOBODY_HOST), target: 'bounded.loopback.test' }],
      'bounded.loopback.test': [{ type: 'A', address: NOBODY_HOST }],
      '_xmpp-server._tcp.noservice.test': [{ type: 'SRV', priority: 0, weight: 0, port: 0, target: '.' }],
    });
    ({ parley, alice } = await serverMode(dns, { s2s_dials_per_minute: 2, delay_time: 1 }));
  });

  after(async () => {
    alice?.close();
    await parley?.stop();
    dns?.close();
  });

  test('stay within s2s_dials_per_minute: the message waits delay_time without a third dial', async () => {
    const romeo = `sip:romeo*bounded.test@${PARLEY_DOMAIN}`;
    assert.equal((await alice.message(romeo, 'dialled twice at most')).status, 202);
    const [notice] = await eventually(() => (noticesFrom(alice, romeo).length > 0 ? noticesFrom(alice, romeo) : undefined), 'an error notification');
    assert.match(notice!.body.toString(), /could be reached within 1 s \(connect ECONNREFUSED/);
    assert.equal(srvQueries(dns, 'bounded.test'), 2);
  });

  test('a domain whose SRV record says it has no XMPP service is not retried: the message fails back at once', async () => {
    const romeo = `sip:romeo*noservice.test@${PARLEY_DOMAIN}`;
    assert.equal((await alice.message(romeo, 'nobody serves this')).status, 202);
    const [notice] = await eventually(() => (noticesFrom(alice, romeo).length > 0 ? noticesFrom(alice, romeo) : undefined), 'an error notification');
    assert.match(notice!.body.toString(), /XMPP error remote-server-not-found \(noservice\.test offers no XMPP service\)/);
    assert.equal(srvQueries(dns, 'noservice.test'), 1);
  });
});
