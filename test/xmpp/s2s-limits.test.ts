// Server mode against rogue servers: the bounds on incoming streams that have not authenticated
// (in total, per IP address, and in time), the bound on outgoing connections per domain and
// minute, and Server Dialback (XEP-0220) taken only in the state and on the stream it belongs to,
// with TLS first when xmpp.s2s_require_tls says so (XEP-0178's order).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DnsServer } from '../support/dns-server.js';
import { eventually } from '../support/eventually.js';
import { freeTcpPort } from '../support/process.js';
import { type ConfigPatch, type TestServer, startServer } from '../support/server.js';
import { TestUA, registeredTcpUser } from '../support/ua.js';
import { RawXmppPeer, ScriptedXmppServer, s2sHeader } from '../support/xmpp-peer.js';

const PARLEY_DOMAIN = 'parley.test';
const ROGUE_DOMAIN = 'rogue.test';

async function serverMode(port: number, more: Record<string, unknown> = {}, patch: ConfigPatch = {}): Promise<TestServer> {
  const parley = await startServer({
    ...patch,
    xmpp: { enabled: true, backend: 'server', xmpp_domain: PARLEY_DOMAIN, s2s_listen: '127.0.0.1', s2s_port: port, s2s_require_tls: false, dialback_secret: 'a dialback secret for the tests', ...more },
  });
  try {
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 's2s listener online');
  } catch (error) {
    // Not left running: it would keep the test process alive after the failure.
    await parley.stop();
    throw error;
  }
  return parley;
}

/** A new stream from `localAddress` with its header sent and Parley's features received. */
async function openStream(port: number, localAddress = '127.0.0.1'): Promise<RawXmppPeer> {
  const peer = await RawXmppPeer.connect(port, '127.0.0.1', localAddress);
  await peer.write(s2sHeader(ROGUE_DOMAIN, PARLEY_DOMAIN));
  await peer.waitFor('</stream:features>');
  return peer;
}

describe('incoming streams that have not authenticated', () => {
  let port: number;
  let parley: TestServer;
  const peers: RawXmppPeer[] = [];

  before(async () => {
    port = await freeTcpPort();
    parley = await serverMode(port, { s2s_max_unauthenticated: 3, s2s_max_unauthenticated_per_ip: 2 });
  });

  after(async () => {
    for (const peer of peers) peer.socket.destroy();
    await parley.stop();
  });

  test('are limited per IP address and in total: one over the limit gets <policy-violation/> and is closed', async () => {
    peers.push(await openStream(port), await openStream(port));
    const third = await RawXmppPeer.connect(port);
    await third.finished();
    assert.equal(third.streamError, 'policy-violation');
    assert.match(third.reply, /at most 2 from one address/);

    peers.push(await openStream(port, '127.0.0.2'));
    const fromElsewhere = await RawXmppPeer.connect(port, '127.0.0.1', '127.0.0.3');
    await fromElsewhere.finished();
    assert.equal(fromElsewhere.streamError, 'policy-violation');
    assert.match(fromElsewhere.reply, /too many streams not authenticated yet \(at most 3\)/);
  });

  test('a place is free again once a stream closes', async () => {
    peers.shift()!.socket.end('</stream:stream>');
    await eventually(async () => {
      const peer = await RawXmppPeer.connect(port);
      await peer.write(s2sHeader(ROGUE_DOMAIN, PARLEY_DOMAIN));
      await eventually(() => peer.reply.includes('</stream:features>') || peer.streamError, 'features or an error');
      if (peer.streamError) return void peer.socket.destroy();
      peers.push(peer);
      return true;
    }, 'a stream accepted again');
  });
});

test('an incoming stream that does not authenticate in time is closed with <connection-timeout/>', async () => {
  const port = await freeTcpPort();
  const parley = await serverMode(port, { s2s_auth_timeout: 0.3 });
  try {
    const peer = await openStream(port);
    await peer.finished();
    assert.equal(peer.streamError, 'connection-timeout');
    assert.match(peer.reply, /no domain authenticated within 0.3 s/);
  } finally {
    await parley.stop();
  }
});

describe('outgoing streams', () => {
  let dns: DnsServer;
  let parley: TestServer;
  let alice: TestUA;
  let refusing: ScriptedXmppServer;
  let early: ScriptedXmppServer;
  let wrongPair: ScriptedXmppServer;

  /** Resolves with the text of alice's next notice about an undelivered message to `domain`. */
  async function failureNotice(domain: string, before: number): Promise<string> {
    const notices = await eventually(() => {
      const found = alice.received.filter((request) => request.method === 'MESSAGE' && request.body.toString().includes(`@${domain} was not delivered`));
      return found.length > before ? found : undefined;
    }, `a failure notice for ${domain}`);
    return notices[before]!.body.toString();
  }

  const noticesFor = (domain: string) => alice.received.filter((request) => request.method === 'MESSAGE' && request.body.toString().includes(`@${domain} was not delivered`)).length;

  before(async () => {
    const header = (from: string) => `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${from}' to='${PARLEY_DOMAIN}' id='remote-1' version='1.0'>`;
    // Takes the connection and drops it at once: the domain keeps failing.
    refusing = new ScriptedXmppServer(({ socket }) => socket.destroy());
    // Says Parley is accepted before Parley has sent its dialback key.
    early = new ScriptedXmppServer(({ socket }, chunk) => {
      if (chunk.includes('<stream:stream')) socket.write(`${header('early.test')}<db:result from='early.test' to='${PARLEY_DOMAIN}' type='valid'/>`);
    });
    // Answers Parley's dialback request for another domain pair than the one asked.
    wrongPair = new ScriptedXmppServer(({ socket }, chunk) => {
      if (chunk.includes('<stream:stream')) socket.write(`${header('pair.test')}<stream:features/>`);
      if (chunk.includes('<db:result')) socket.write(`<db:result from='other.test' to='${PARLEY_DOMAIN}' type='valid'/>`);
    });
    const srv = (port: number) => [{ type: 'SRV' as const, priority: 0, weight: 0, port, target: 'remote.loopback.test' }];
    dns = await DnsServer.start({
      '_xmpp-server._tcp.dead.test': srv(await refusing.listen()),
      '_xmpp-server._tcp.early.test': srv(await early.listen()),
      '_xmpp-server._tcp.pair.test': srv(await wrongPair.listen()),
      'remote.loopback.test': [{ type: 'A', address: '127.0.0.1' }],
    });
    parley = await serverMode(await freeTcpPort(), { resolver: dns.address, s2s_dials_per_minute: 2 });
    alice = await registeredTcpUser(parley.tcp, 'alice');
  });

  after(async () => {
    alice?.close();
    await parley?.stop();
    dns?.close();
    for (const server of [refusing, early, wrongPair]) server?.close();
  });

  test('a domain that keeps failing is dialled at most s2s_dials_per_minute times a minute; further messages fail back at once', async () => {
    for (const [index, text] of ['one', 'two', 'three'].entries()) {
      const response = await alice.message(`sip:romeo*dead.test@${PARLEY_DOMAIN}`, `attempt ${text}`);
      assert.equal(response.status, 202);
      const notice = await failureNotice('dead.test', index);
      if (index < 2) assert.doesNotMatch(notice, /last minute/);
      else assert.match(notice, /Parley connected to dead\.test 2 times in the last minute; try again later/);
    }
    assert.equal(refusing.connections.length, 2);
    assert.ok(parley.logs.some((line) => line.includes('too many s2s connections to this domain in the last minute')));
  });

  test('a dialback result that comes before Parley asked for one gets <not-authorized/>; nothing is sent on that stream', async () => {
    const before = noticesFor('early.test');
    assert.equal((await alice.message(`sip:romeo*early.test@${PARLEY_DOMAIN}`, 'must not reach early.test')).status, 202);
    await failureNotice('early.test', before);
    const input = early.connections[0]!.input;
    assert.match(input, /<stream:error><not-authorized xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/);
    assert.doesNotMatch(input, /must not reach/);
  });

  test('a dialback result for another domain pair gets <not-authorized/>; nothing is sent on that stream', async () => {
    const before = noticesFor('pair.test');
    assert.equal((await alice.message(`sip:romeo*pair.test@${PARLEY_DOMAIN}`, 'must not reach pair.test')).status, 202);
    await failureNotice('pair.test', before);
    const input = wrongPair.connections[0]!.input;
    assert.match(input, /<db:result from=["']parley\.test["'] to=["']pair\.test["']>[0-9a-f]{64}<\/db:result>/);
    assert.match(input, /<stream:error><not-authorized xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/);
    assert.doesNotMatch(input, /must not reach/);
  });
});

describe('incoming dialback', () => {
  let dns: DnsServer;
  let port: number;
  let parley: TestServer;

  before(async () => {
    dns = await DnsServer.start({ 'sentinel.test': [{ type: 'A', address: '127.0.0.1' }] });
    port = await freeTcpPort();
    parley = await serverMode(port, { resolver: dns.address });
  });

  after(async () => {
    await parley?.stop();
    dns?.close();
  });

  /** Sends a dialback request for `domain` on a new stream, which makes Parley look for that domain's server. */
  async function askAbout(domain: string, before = ''): Promise<RawXmppPeer> {
    const peer = await RawXmppPeer.connect(port);
    await peer.write(s2sHeader(ROGUE_DOMAIN, PARLEY_DOMAIN) + before + `<db:result from='${domain}' to='${PARLEY_DOMAIN}'>0123456789abcdef</db:result>`);
    return peer;
  }

  test('what comes after a stream error in the same packet is not read: a dialback request there is not acted on', async () => {
    const peer = await askAbout('after-error.test', `<db:verify from='${ROGUE_DOMAIN}' to='${PARLEY_DOMAIN}' id='x' type='valid'/>`);
    await peer.finished();
    assert.equal(peer.streamError, 'not-authorized');
    // A request on another stream goes through the same lookup: once it is seen, the first would have been.
    const sentinel = await askAbout('sentinel.test');
    await eventually(() => dns.queries.some((query) => query.includes('sentinel.test')) || undefined, 'the sentinel lookup');
    sentinel.socket.destroy();
    assert.ok(!dns.queries.some((query) => query.includes('after-error.test')), dns.queries.join(', '));
  });
});

describe('with s2s_require_tls', () => {
  let port: number;
  let parley: TestServer;

  before(async () => {
    port = await freeTcpPort();
    parley = await serverMode(port, { s2s_require_tls: true });
  });

  after(() => parley.stop());

  test('a stream without version 1.0 (which cannot negotiate STARTTLS) gets <unsupported-version/>', async () => {
    const peer = await RawXmppPeer.connect(port);
    await peer.write(s2sHeader(ROGUE_DOMAIN, PARLEY_DOMAIN, `xmlns='jabber:server' from='${ROGUE_DOMAIN}' to='${PARLEY_DOMAIN}'`));
    await peer.finished();
    assert.equal(peer.streamError, 'unsupported-version');
  });

  test('without a certificate no stream can be encrypted: dialback is refused, and the start log says why', async () => {
    const peer = await RawXmppPeer.connect(port);
    await peer.write(s2sHeader(ROGUE_DOMAIN, PARLEY_DOMAIN), `<db:result from='${ROGUE_DOMAIN}' to='${PARLEY_DOMAIN}'>0123456789abcdef</db:result>`);
    await peer.finished();
    assert.equal(peer.streamError, 'policy-violation');
    assert.doesNotMatch(peer.reply, /<db:result/);
    assert.ok(parley.logs.some((line) => line.includes('incoming server-to-server streams cannot be encrypted and are refused')));
  });
});
