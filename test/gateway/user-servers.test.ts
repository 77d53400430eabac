// The per-user gateway connects only where the operator allows: the XMPP servers and IRC networks
// configured (xmpp_servers, irc_networks), or every XMPP domain through jaddress/jport. A server
// named in #link, or an account on a server not configured, needs gateway.allow_user_servers, so
// #link cannot make Parley probe hosts of its network.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { configSchema } from '../../src/config/index.js';
import type { TestServer } from '../support/server.js';
import type { TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { bodyOf, command, gatewayConfig, registeredSipUser, startGatewayServer } from '../support/gateway.js';
import { IrcUser } from '../support/irc-user.js';
import { Ngircd } from '../support/ngircd.js';

/** A TCP listener on loopback that counts the connections it gets (and closes them). */
async function listener(): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0, connections: () => count };
}

describe('servers of linked accounts (gateway.allow_user_servers false)', () => {
  let parley: TestServer;
  let alice: TestUA;
  let operators: Awaited<ReturnType<typeof listener>>;
  let chosen: Awaited<ReturnType<typeof listener>>;

  before(async () => {
    [operators, chosen] = await Promise.all([listener(), listener()]);
    parley = await startGatewayServer({ gateway: { ...gatewayConfig, allow_user_servers: false, jaddress: '127.0.0.1', jport: operators.port } });
    alice = await registeredSipUser(parley, 'alice', 'alice-sip');
  });
  after(async () => {
    alice?.close();
    await parley?.stop();
    operators?.server.close();
    chosen?.server.close();
  });

  test('#link naming a server is refused with the reason, nothing is stored and nothing connects there', async () => {
    const reply = await command(alice, `#link xmpp a@example.net pw 127.0.0.1:${chosen.port}`);
    assert.match(reply, new RegExp(`^Refused: this gateway does not connect to servers users choose \\(127\\.0\\.0\\.1:${chosen.port}\\); .*127\\.0\\.0\\.1:${operators.port}, the server the operator set\\. Nothing was changed\\.$`));
    assert.deepEqual(await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost'), []);
    assert.match(await command(alice, '#accounts'), /^No linked accounts/);
    assert.equal(chosen.connections(), 0);
  });

  test('#link without a server is linked, and its session connects to jaddress:jport', async () => {
    const reply = await command(alice, '#link xmpp a@example.net pw tls=none');
    assert.match(reply, /^Linked xmpp account a@example\.net/);
    await eventually(() => operators.connections() > 0, 'a connection to the operator\'s server');
    assert.equal(chosen.connections(), 0);
  });
});

describe('configured servers (gateway.xmpp_servers, gateway.irc_networks)', () => {
  const IRC_PASSWORD = 'Irc-Server-Pass-4711';
  let parley: TestServer;
  let alice: TestUA;
  let xmppServer: Awaited<ReturnType<typeof listener>>;
  let ngircd: Ngircd;
  let bob: IrcUser;

  before(async () => {
    [xmppServer, ngircd] = await Promise.all([listener(), Ngircd.start({ password: IRC_PASSWORD })]);
    bob = await IrcUser.connect(ngircd, 'bob', IRC_PASSWORD);
    parley = await startGatewayServer({
      gateway: {
        ...gatewayConfig,
        allow_user_servers: false,
        xmpp_servers: { 'example.net': { host: '127.0.0.1', port: xmppServer.port, tls: 'none' } },
        irc_networks: { testnet: { host: '127.0.0.1', port: ngircd.port, tls: 'none' } },
      },
    });
    alice = await registeredSipUser(parley, 'alice', 'alice-sip');
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await parley?.stop();
    xmppServer?.server.close();
    await ngircd?.stop();
  });

  test('#link on an XMPP domain or IRC network not configured is refused with the configured ones; nothing is stored', async () => {
    assert.equal(
      await command(alice, '#link xmpp a@other.org pw'),
      'Refused: this gateway connects xmpp accounts only to the servers the operator configured, and other.org is not one (configured: example.net). Nothing was changed.',
    );
    assert.equal(
      await command(alice, `#link irc alice@irc.libera.chat ${IRC_PASSWORD}`),
      'Refused: this gateway connects irc accounts only to the servers the operator configured, and irc.libera.chat is not one (configured: testnet). Nothing was changed.',
    );
    assert.deepEqual(await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost'), []);
  });

  test('#link asking another TLS mode than the configured one is refused', async () => {
    assert.equal(
      await command(alice, '#link xmpp a@example.net pw tls=starttls'),
      'Refused: example.net is reached with tls=none, as the operator configured it; send the #link again without tls=. Nothing was changed.',
    );
  });

  test('#link xmpp on a configured domain needs nothing else: the session connects where and how it is configured', async () => {
    const reply = await command(alice, '#link xmpp a@example.net pw');
    assert.match(reply, new RegExp(`^Linked xmpp account a@example\\.net as number \\d+ through 127\\.0\\.0\\.1:${xmppServer.port} \\(TLS: none\\)\\. `));
    await eventually(() => xmppServer.connections() > 0, 'a connection to the configured XMPP server');
  });

  test('#link irc nick@network needs nothing else: the nick comes onto the network, and its contacts are nick*network', async () => {
    const reply = await command(alice, `#link irc alice@testnet ${IRC_PASSWORD}`);
    assert.match(reply, new RegExp(`^Linked irc account alice@testnet as number \\d+ through 127\\.0\\.0\\.1:${ngircd.port} \\(TLS: none\\)\\. `));
    await eventually(async () => {
      bob.raw('ISON alice');
      return bob.lines.find((m) => m.command === '303' && /\balice\b/.test(m.params.at(-1)!));
    }, 'alice on the IRC network', 15_000);
    assert.equal((await alice.message('sip:bob*testnet@irc.localhost', 'hello from SIP')).status, 202);
    await eventually(() => bob.privmsgs('alice').includes('hello from SIP') || undefined, 'bob gets it');
    bob.say('alice', 'hello from IRC');
    const answer = await eventually(() => alice.received.find((m) => m.method === 'MESSAGE' && bodyOf(m) === 'hello from IRC'), 'the answer in SIP');
    assert.equal(answer.from.uri, 'sip:bob*testnet@irc.localhost');
  });
});

describe('nothing configured (the default)', () => {
  let parley: TestServer;
  let alice: TestUA;

  before(async () => {
    parley = await startGatewayServer({ gateway: { ...gatewayConfig, allow_user_servers: false } });
    alice = await registeredSipUser(parley, 'alice', 'alice-sip');
  });
  after(async () => {
    alice?.close();
    await parley?.stop();
  });

  test('#link is refused on every server: Parley connects nowhere the operator did not name', async () => {
    assert.equal(
      await command(alice, '#link xmpp a@example.net pw'),
      'Refused: this gateway connects xmpp accounts only to the servers the operator configured, and example.net is not one (none is configured). Nothing was changed.',
    );
    assert.equal(
      await command(alice, '#link irc a@irc.libera.chat pw'),
      'Refused: this gateway connects irc accounts only to the servers the operator configured, and irc.libera.chat is not one (none is configured). Nothing was changed.',
    );
    assert.deepEqual(await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost'), []);
  });

  test('the configuration checks names, hosts and TLS modes of configured servers', () => {
    const gateway = { enabled: true, secret_key: 'a-test-key-of-some-length' };
    const issues = (patch: object) => configSchema.safeParse({ gateway: { ...gateway, ...patch } }).error?.issues.map((i) => i.path.join('.'));
    assert.equal(issues({ xmpp_servers: { 'example.net': {} }, irc_networks: { libera: { host: 'irc.libera.chat' } } }), undefined);
    assert.deepEqual(issues({ irc_networks: { libera: { port: 6697 } } }), ['gateway.irc_networks.libera.host']);
    assert.deepEqual(issues({ irc_networks: { libera: { host: 'irc.libera.chat', tls: 'starttls' } } }), ['gateway.irc_networks.libera.tls']);
    assert.deepEqual(issues({ xmpp_servers: { 'Example.NET': { tls: 'none' } } }), ['gateway.xmpp_servers.Example.NET']);
  });
});
