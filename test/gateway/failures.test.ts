// A session that cannot connect tells its SIP user why, once, in words naming the cause (refused,
// not TLS, no TLS offered, DNS, unreachable); #status shows it; only a refused password gets the
// advice to link the account again with the right password. IRC accounts show the TLS they use.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type Server, type Socket, createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connectionFailure } from '../../src/gateway/failures.js';
import { eventually } from '../support/eventually.js';
import { bodyOf, command, fromGateway, notices, registeredSipUser, startGatewayServer } from '../support/gateway.js';
import { freeTcpPort } from '../support/process.js';
import type { TestServer } from '../support/server.js';
import type { TestUA } from '../support/ua.js';

/** A TCP server on loopback doing `onConnection` with each connection, counting them. */
async function tcpServer(onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.on('error', () => {});
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0, connections: () => count };
}

/** An XMPP server that offers SASL but no STARTTLS: its stream header once the client's came, then its features; it closes the stream when the client does. */
const withoutStarttls = (socket: Socket) => {
  let received = '';
  socket.on('data', (data: Buffer) => {
    const opened = /<stream:stream[^>]*>/.test(received);
    received += data.toString('utf8');
    if (!opened && /<stream:stream[^>]*>/.test(received)) {
      socket.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.net' version='1.0'>");
      socket.write("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>");
    }
    if (received.includes('</stream:stream>')) socket.end('</stream:stream>');
  });
};

describe('failed connections of linked accounts', () => {
  let parley: TestServer;
  let alice: TestUA;
  const servers: Server[] = [];

  before(async () => {
    parley = await startGatewayServer();
    alice = await registeredSipUser(parley, 'alice', 'alice-sip');
  });
  after(async () => {
    alice?.close();
    await parley?.stop();
    for (const server of servers) server.close();
  });

  const told = (account: string) => alice.received.filter(fromGateway).map(bodyOf).filter((text) => text.includes(` ${account} `));

  test('a server refusing the connection is told once with the cause, and #status shows it', async () => {
    const port = await freeTcpPort();
    assert.match(await command(alice, `#link xmpp a@example.net pw 127.0.0.1:${port} tls=none`), /^Linked xmpp account a@example\.net/);
    const [notice] = await notices(alice, 1, (text) => text.includes('a@example.net cannot connect'));
    assert.equal(notice, `Your xmpp account a@example.net cannot connect: 127.0.0.1:${port} refused the connection (no server listens there). Parley keeps trying; #status shows how it goes.`);
    assert.match(await command(alice, '#status'), new RegExp(`\\. xmpp a@example\\.net: connecting \\(last attempt: 127\\.0\\.0\\.1:${port} refused the connection`));
  });

  test('a server that keeps closing the connection is told once, however often the session retries', async () => {
    const closing = await tcpServer((socket) => socket.destroy());
    servers.push(closing.server);
    assert.match(await command(alice, `#link irc bob@127.0.0.1 pw 127.0.0.1:${closing.port} tls=none`), /^Linked irc account bob@127\.0\.0\.1/);
    await notices(alice, 1, (text) => text.includes('bob@127.0.0.1 cannot connect'));
    await eventually(() => closing.connections() >= 4 || undefined, 'four attempts to connect');
    // Notices reach the user in order: one a later attempt caused comes before this reply.
    await command(alice, '#status');
    assert.deepEqual(told('bob@127.0.0.1').filter((text) => text.includes('cannot connect')), [
      `Your irc account bob@127.0.0.1 cannot connect: 127.0.0.1:${closing.port} closed the connection. Parley keeps trying; #status shows how it goes.`,
    ]);
  });

  test('an XMPP server offering no STARTTLS refuses the account without the wrong-password advice', async () => {
    const plain = await tcpServer(withoutStarttls);
    servers.push(plain.server);
    await command(alice, `#link xmpp c@example.net pw 127.0.0.1:${plain.port}`);
    const [refused] = await notices(alice, 1, (text) => text.includes('c@example.net was refused'));
    assert.equal(
      refused,
      `Your xmpp account c@example.net was refused: 127.0.0.1:${plain.port} offers no TLS (STARTTLS), and the account requires it. ` +
        'It stays offline and will not be retried; #online tries again once the server offers TLS.',
    );
    assert.match(await command(alice, '#status'), /\. xmpp c@example\.net: disabled \(127\.0\.0\.1:\d+ offers no TLS/);
  });

  test('an IRC account shows the TLS it uses (direct for starttls), and a plain-text server is told as not speaking TLS', async () => {
    const plain = await tcpServer((socket) => socket.write(':irc.example NOTICE * :*** Looking up your hostname\r\n'));
    servers.push(plain.server);
    const reply = await command(alice, `#link irc dave@127.0.0.1 pw 127.0.0.1:${plain.port} tls=starttls`);
    assert.match(reply, new RegExp(`^Linked irc account dave@127\\.0\\.0\\.1 as number \\d+ through 127\\.0\\.0\\.1:${plain.port} \\(TLS: direct\\)`));
    const [notice] = await notices(alice, 1, (text) => text.includes('dave@127.0.0.1 cannot connect'));
    assert.equal(notice, `Your irc account dave@127.0.0.1 cannot connect: 127.0.0.1:${plain.port} does not speak TLS (is it a plain-text port?). Parley keeps trying; #status shows how it goes.`);
    assert.match(await command(alice, '#accounts'), new RegExp(`\\. irc dave@127\\.0\\.0\\.1 via 127\\.0\\.0\\.1:${plain.port} \\(TLS direct\\): connecting`));
    assert.equal((await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost')).find((a) => a.extUser === 'dave@127.0.0.1')?.tls, 'direct');
  });

  test('no notice but the refused password speaks of the password', () => {
    for (const text of alice.received.filter(fromGateway).map(bodyOf).filter((body) => /cannot connect|was refused/.test(body))) {
      assert.doesNotMatch(text, /password/, text);
    }
  });
});

describe('the words for a failed connection', () => {
  const failure = (code: string, message = code) => Object.assign(new Error(message), { code });

  test('name the cause: DNS, network unreachable, refused (also inside an AggregateError), no answer, untrusted certificate', () => {
    assert.equal(connectionFailure(failure('ENOTFOUND'), 'xmpp.example.net', 5222), 'the name xmpp.example.net is not found in DNS');
    assert.equal(connectionFailure(failure('EAI_AGAIN'), 'xmpp.example.net', 5222), 'the name xmpp.example.net could not be looked up (DNS failure)');
    assert.equal(connectionFailure(failure('ENETUNREACH'), '10.1.2.3', 6697), '10.1.2.3:6697 is unreachable from here (no network route)');
    assert.equal(connectionFailure(failure('EHOSTUNREACH'), '10.1.2.3', 6697), '10.1.2.3:6697 is unreachable from here (no network route)');
    const refused = new AggregateError([failure('ECONNREFUSED'), failure('ECONNREFUSED')], '');
    assert.equal(connectionFailure(refused, 'localhost', 5222), 'localhost:5222 refused the connection (no server listens there)');
    assert.equal(connectionFailure(failure('ETIMEDOUT'), 'h', 1), 'h:1 did not answer');
    assert.equal(connectionFailure(failure('DEPTH_ZERO_SELF_SIGNED_CERT'), 'h', 1), 'the TLS certificate of h:1 is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)');
    assert.equal(connectionFailure(new Error('connection timed out'), 'h', 1), undefined);
  });
});
