// XML fuzzing of every XMPP stream Parley reads from a peer that may be hostile:
//   (a) incoming s2s streams: a rogue server connects to Parley's s2s port (Parley receives);
//   (b) the XEP-0114 component link: Parley connects to a rogue XMPP server on loopback;
//   (c) a per-user gateway session: the account's server (jaddress/jport) is a rogue XMPP server.
// Each case of xml-cases.ts (and, on s2s, the stream-level ones below plus seeded mutations; the
// seed is in the test name, PARLEY_FUZZ_SEED=<n> replays another) must end the stream with the
// stream error RFC 6120 §4.9 names, cut a 10 MB text node at xmpp.max_stanza_size instead of
// buffering it, and change nothing else: Parley keeps running within bounded memory, a SIP MESSAGE
// still relays, and the link or session that met a rogue server reconnects.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rpc } from '../admin/client.js';
import { eventually } from '../support/eventually.js';
import { gatewayConfig, sipUser } from '../support/gateway.js';
import { freeTcpPort } from '../support/process.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { RawXmppPeer, type ScriptedConnection, ScriptedXmppServer, s2sHeader, streamErrorIn, writeAll } from '../support/xmpp-peer.js';
import { fuzzSeed } from './mutate.js';
import { type XmlCase, mutatedCase, streamCases } from './xml-cases.js';

const SEED = fuzzSeed();
const MUTATIONS = 300;
const PARLEY_DOMAIN = 'parley.test';
const ROGUE_DOMAIN = 'rogue.test';
const RSS_GROWTH_LIMIT = 256 * 1024 * 1024;

/** Checks a case's outcome: the stream error it deserves (any, for a mutation), and a 10 MB input cut short. */
function checkOutcome(c: XmlCase, condition: string | undefined, written: number, allowed: readonly string[]): void {
  if (c.expect.length > 0) assert.ok(condition !== undefined && c.expect.includes(condition), `${c.name}: expected <${c.expect.join('/> or <')}/>, got ${condition ? `<${condition}/>` : 'no stream error'}`);
  else if (condition !== undefined) assert.ok(allowed.includes(condition), `${c.name}: unexpected <${condition}/>`);
  // Parley stops reading at xmpp.max_stanza_size; what the kernel's socket buffers took on loopback comes on top.
  assert.ok(written < 10 * 1024 * 1024, `${c.name}: all ${written} characters were written before Parley ended the stream`);
}

/** A SIP MESSAGE from one registered user to another still relays. */
async function sipStillRelays(from: TestUA, to: TestUA, text: string): Promise<void> {
  const response = await from.message(to.aor, text);
  assert.equal(response.status, 200, `${response.status} ${response.reason}`);
  await eventually(() => to.received.some((request) => request.method === 'MESSAGE' && request.body.toString() === text) || undefined, `${text} relayed`);
}

describe(`incoming s2s streams (seed 0x${SEED.toString(16)})`, { timeout: 60_000 }, () => {
  let parley: TestServer;
  let port: number;
  let alice: TestUA;
  let bob: TestUA;
  let rssBefore: number;

  const header = (attrs?: string) => s2sHeader(ROGUE_DOMAIN, PARLEY_DOMAIN, attrs);
  const addressing = { from: `mallory@${ROGUE_DOMAIN}`, to: `alice*localhost@${PARLEY_DOMAIN}` };
  const chunksOf = (...chunks: string[]) => () => chunks;

  /** Sends a case on a new connection to Parley's s2s port; resolves with the stream error Parley ended it with. */
  async function exchange(c: XmlCase, preamble = header()): Promise<{ condition: string | undefined; written: number }> {
    const peer = await RawXmppPeer.connect(port);
    const written = await peer.write(preamble, c.chunks());
    await peer.finished().catch((error: Error) => assert.fail(`${c.name}: ${error.message}`));
    return { condition: peer.streamError, written };
  }

  before(async () => {
    port = await freeTcpPort();
    parley = await startServer({
      xmpp: { enabled: true, backend: 'server', xmpp_domain: PARLEY_DOMAIN, s2s_listen: '127.0.0.1', s2s_port: port, s2s_require_tls: false, dialback_secret: 'a dialback secret for the fuzzer', s2s_auth_timeout: 1 },
    });
    alice = await TestUA.create({ proto: 'tcp', user: 'alice', server: parley.tcp });
    bob = await TestUA.create({ proto: 'udp', user: 'bob', server: parley.udp });
    assert.equal((await alice.register()).status, 200);
    assert.equal((await bob.register()).status, 200);
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 's2s listener online');
    rssBefore = process.memoryUsage().rss;
  });

  after(async () => {
    alice?.close();
    bob?.close();
    await parley?.stop();
  });

  const headerCases: Array<[XmlCase, string]> = [
    [{ name: 'a DTD (an entity bomb) before the stream header', chunks: chunksOf(), expect: ['restricted-xml'] }, `<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;">]>${header()}`],
    [{ name: 'a stream header of an unknown namespace', chunks: chunksOf(), expect: ['invalid-namespace'] }, header(`xmlns='urn:example:unknown' from='${ROGUE_DOMAIN}' to='${PARLEY_DOMAIN}' version='1.0'`)],
    [{ name: 'a stream header of version 2.0', chunks: chunksOf(), expect: ['unsupported-version'] }, header(`xmlns='jabber:server' from='${ROGUE_DOMAIN}' to='${PARLEY_DOMAIN}' version='2.0'`)],
    [
      { name: 'a stream header with 100,000 attributes', chunks: () => Array.from({ length: 100 }, (_, block) => Array.from({ length: 1000 }, (_, i) => ` x${block * 1000 + i}='v'`).join('')), expect: ['policy-violation'] },
      `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'`,
    ],
  ];
  for (const [c, preamble] of headerCases) {
    test(c.name, async () => {
      const { condition, written } = await exchange(c, preamble);
      checkOutcome(c, condition, written, []);
    });
  }

  const stanzaCases: XmlCase[] = [
    ...streamCases(addressing),
    { name: 'a stanza before its domain is authenticated', chunks: chunksOf(`<message from='${addressing.from}' to='${addressing.to}'><body>spoofed</body></message>`), expect: ['not-authorized'] },
    { name: 'an invalid JID in from', chunks: chunksOf(`<message from='@@${ROGUE_DOMAIN}' to='${addressing.to}'><body>x</body></message>`), expect: ['improper-addressing'] },
    { name: 'an invalid JID in to', chunks: chunksOf(`<message from='${addressing.from}' to='a@b@c/'><body>x</body></message>`), expect: ['improper-addressing'] },
    { name: 'a stanza of the client namespace', chunks: chunksOf(`<message xmlns='jabber:client' from='${addressing.from}' to='${addressing.to}'><body>x</body></message>`), expect: ['invalid-namespace'] },
    { name: 'an element of an unknown namespace', chunks: chunksOf(`<thing xmlns='urn:example:unknown'/>`), expect: ['unsupported-stanza-type'] },
    { name: 'a dialback result Parley never asked for', chunks: chunksOf(`<db:result from='${ROGUE_DOMAIN}' to='${PARLEY_DOMAIN}' type='valid'/>`), expect: ['not-authorized'] },
    { name: 'a dialback verification answer on a stream that asked nothing', chunks: chunksOf(`<db:verify from='${ROGUE_DOMAIN}' to='${PARLEY_DOMAIN}' id='x' type='valid'/>`), expect: ['not-authorized'] },
  ];
  for (const c of stanzaCases) {
    test(c.name, async () => {
      const { condition, written } = await exchange(c);
      checkOutcome(c, condition, written, []);
    });
  }

  test(`${MUTATIONS} mutated stanzas end their streams with a stream error, or are taken`, async () => {
    // A mutant cut inside a CDATA section swallows the closing tag: the authentication deadline ends that stream.
    const allowed = ['not-well-formed', 'restricted-xml', 'policy-violation', 'invalid-namespace', 'improper-addressing', 'not-authorized', 'unsupported-stanza-type', 'host-unknown', 'connection-timeout'];
    for (let i = 0; i < MUTATIONS; i++) {
      const c = mutatedCase(SEED, i, addressing);
      const { condition, written } = await exchange(c);
      checkOutcome(c, condition, written, allowed);
    }
  });

  test('afterwards Parley serves on: no spoofed message arrived, the listener is up, memory is bounded, SIP relays', async () => {
    assert.equal(parley.server.xmpp!.stats.state, 'online');
    assert.ok(!alice.received.some((request) => request.method === 'MESSAGE'), 'nothing from the rogue server reached alice');
    await sipStillRelays(bob, alice, 'after the s2s fuzzing');
    const growth = process.memoryUsage().rss - rssBefore;
    assert.ok(growth < RSS_GROWTH_LIMIT, `RSS grew by ${Math.round(growth / 1024 / 1024)} MiB`);
  });
});

/** One connection to the rogue server: whether Parley authenticated on it (handshake or bind), and how far it got. */
interface RogueConnection extends ScriptedConnection {
  authenticated: boolean;
  headers: number;
  saslDone: boolean;
}

/**
 * A rogue XMPP server on loopback: a component server (XEP-0114, any handshake accepted) or a
 * client server (SASL ANONYMOUS, resource binding). It plays along until the test makes it write
 * something hostile, or (preAuth) writes that right after its first stream header.
 */
class RogueServer extends ScriptedXmppServer<RogueConnection> {
  /** Written on the next connection after the first stream header, instead of authenticating. */
  preAuth: XmlCase | undefined;

  constructor(
    private readonly kind: 'component' | 'client',
    private readonly domain: string,
  ) {
    super();
  }

  /** Writes a case on the latest connection; resolves with the stream error Parley ended it with and what was written. */
  async attack(c: XmlCase): Promise<{ condition: string | undefined; written: number }> {
    const connection = this.latest!;
    const written = await writeAll(connection.socket, c.chunks(), () => connection.input.includes('</stream:stream>'));
    const condition = await eventually(() => streamErrorIn(connection.input), `${c.name}: a stream error from Parley`);
    return { condition, written };
  }

  protected override accepted(connection: ScriptedConnection): RogueConnection {
    return { ...connection, authenticated: false, headers: 0, saslDone: false };
  }

  protected override answer(connection: RogueConnection, chunk: string): void {
    const { socket } = connection;
    if (connection.input.split('<stream:stream').length - 1 > connection.headers) {
      connection.headers++;
      const ns = this.kind === 'component' ? 'jabber:component:accept' : 'jabber:client';
      socket.write(`<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='${ns}' from='${this.domain}' id='s${this.connections.length}-${connection.headers}' version='1.0'>`);
      if (this.kind === 'client') {
        socket.write(connection.saslDone
          ? `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`
          : `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>ANONYMOUS</mechanism></mechanisms></stream:features>`);
      }
      const preAuth = this.preAuth;
      if (preAuth && connection.headers === 1) {
        this.preAuth = undefined;
        return void writeAll(socket, preAuth.chunks(), () => false);
      }
    }
    if (this.kind === 'component' && chunk.includes('<handshake>') && !connection.authenticated) {
      connection.authenticated = true;
      socket.write('<handshake/>');
    }
    if (this.kind === 'client' && chunk.includes('<auth') && !connection.saslDone) {
      connection.saslDone = true;
      socket.write(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`);
    }
    const bind = /<iq[^>]*\sid=["']([^"']+)["'][^>]*><bind/.exec(chunk);
    if (this.kind === 'client' && bind && !connection.authenticated) {
      connection.authenticated = true;
      socket.write(`<iq type='result' id='${bind[1]}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@${this.domain}/parley</jid></bind></iq>`);
    }
    if (chunk.includes('</stream:stream>')) socket.end('</stream:stream>');
  }
}

/** The cases against a rogue server Parley connects to: each ends the stream, then Parley comes back. */
function rogueServerSuite(kind: 'component' | 'client'): void {
  const component = kind === 'component';
  const ROGUE = component ? 'sip.rogue.test' : 'rogue.test';
  let rogue: RogueServer;
  let parley: TestServer;
  let alice: TestUA;
  let bob: TestUA;
  let accountId = 0;
  let rssBefore: number;

  const online = () => (component ? parley.server.xmpp!.stats.state === 'online' : parley.server.gateway!.sessionState(accountId) === 'online');
  /** Parley is connected and authenticated on the rogue server's latest connection. */
  const ready = () => eventually(() => (online() && rogue.latest?.authenticated && !rogue.latest.socket.destroyed) || undefined, `${kind} online`, 15_000);
  const spoofed = component
    ? { from: `mallory@evil.test`, to: `alice*localhost@${ROGUE}` }
    : { from: `mallory@${ROGUE}`, to: `alice@${ROGUE}/parley` };

  before(async () => {
    rogue = new RogueServer(kind, ROGUE);
    const port = await rogue.listen();
    parley = await startServer({
      auth: { policy: 'required' },
      xmpp: component ? { enabled: true, xmpp_domain: ROGUE, xmpp_password: 'rogue-secret', xmpp_port: port, reconnect_min: 0.05, reconnect_max: 0.2 } : { enabled: false },
      gateway: component ? { enabled: false } : { ...gatewayConfig, reconnect_min: 0.05, reconnect_max: 0.2, jaddress: '127.0.0.1', jport: port },
    });
    alice = await sipUser(parley, 'alice', 'alice-sip-secret');
    bob = await sipUser(parley, 'bob', 'bob-sip-secret');
    assert.equal((await alice.register()).status, 200);
    assert.equal((await bob.register()).status, 200);
    if (!component) {
      const { result, error } = await rpc(parley, 'gateway.accounts.add', ['sip:alice@localhost', 'xmpp', `alice@${ROGUE}`, 'any password', null, null, 'none']);
      assert.ok(result, JSON.stringify(error));
      accountId = result.id;
    }
    await ready();
    rssBefore = process.memoryUsage().rss;
  });

  after(async () => {
    alice?.close();
    bob?.close();
    await parley?.stop();
    rogue?.close();
  });

  for (const c of streamCases(spoofed)) {
    test(c.name, async () => {
      await ready();
      const before = rogue.connections.length;
      const { condition, written } = await rogue.attack(c);
      checkOutcome(c, condition, written, []);
      await eventually(() => rogue.connections.length > before || undefined, 'a new connection');
      await ready();
    });
  }

  test('a stanza with invalid JIDs is not delivered, and the stream carries on', async () => {
    await ready();
    const connection = rogue.latest!;
    const valid = component ? { from: 'romeo@xmpp.example/r', to: spoofed.to } : { from: `juliet@${ROGUE}/r`, to: spoofed.to };
    connection.socket.write(`<message from='@@${ROGUE}' to='${spoofed.to}' type='chat'><body>from nobody</body></message>`);
    connection.socket.write(`<message from='${valid.from}' to='${valid.to}' type='chat'><body>from someone</body></message>`);
    await alice.waitForRequest((request) => request.method === 'MESSAGE' && request.body.toString() === 'from someone');
    assert.ok(!alice.received.some((request) => request.method === 'MESSAGE' && request.body.toString() === 'from nobody'));
    assert.equal(streamErrorIn(connection.input), undefined);
    // The component answers for what it was sent (RFC 6120 §8.3.3.8); a client session just drops it.
    if (component) await eventually(() => connection.input.includes('jid-malformed') || undefined, 'a jid-malformed stanza error');
  });

  test('a stanza before authentication ends the stream with <not-authorized/> and is not delivered', async () => {
    await ready();
    const before = rogue.connections.length;
    rogue.preAuth = { name: 'before authentication', chunks: () => [`<message from='${spoofed.from}' to='${spoofed.to}' type='chat'><body>before authentication</body></message>`], expect: ['not-authorized'] };
    rogue.latest!.socket.destroy();
    const attacked = await eventually(() => rogue.connections[before], 'a new connection');
    await eventually(() => streamErrorIn(attacked.input) === 'not-authorized' || undefined, `<not-authorized/> (got ${attacked.input.slice(-300)})`);
    await ready();
    assert.ok(!alice.received.some((request) => request.method === 'MESSAGE' && request.body.toString().includes('before authentication')));
  });

  test('afterwards Parley serves on: memory is bounded, SIP relays, and messages go through the reconnected stream', async () => {
    await sipStillRelays(bob, alice, `after the ${kind} fuzzing`);
    await ready();
    const target = component ? `sip:romeo*xmpp.example@${ROGUE}` : `sip:romeo*${ROGUE}@xmpp.localhost`;
    const response = await alice.message(target, `to romeo after the ${kind} fuzzing`);
    assert.equal(response.status, 202, `${response.status} ${response.reason}`);
    await eventually(() => rogue.latest!.input.includes(`to romeo after the ${kind} fuzzing`) || undefined, 'the message on the new stream');
    assert.ok(parley.logs.some((line) => line.includes('bad XML from the XMPP server')));
    const growth = process.memoryUsage().rss - rssBefore;
    assert.ok(growth < RSS_GROWTH_LIMIT, `RSS grew by ${Math.round(growth / 1024 / 1024)} MiB`);
  });
}

describe('the XEP-0114 component link to a rogue XMPP server', { timeout: 60_000 }, () => rogueServerSuite('component'));
describe('a per-user gateway session with a rogue XMPP server', { timeout: 60_000 }, () => rogueServerSuite('client'));
