// The per-user gateway connects only where the operator allows (jaddress/jport, or the server of
// the account's domain): a server named in #link needs gateway.allow_user_servers, so #link
// cannot make Parley probe hosts of its network.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import type { TestServer } from '../support/server.js';
import type { TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { command, gatewayConfig, sipUser, startGatewayServer } from '../support/gateway.js';

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
    alice = await sipUser(parley, 'alice', 'alice-sip');
    assert.equal((await alice.register()).status, 200);
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
