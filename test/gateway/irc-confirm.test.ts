// A message from SIP to IRC is done only once the IRC server confirmed it (a PONG to the PING sent
// after it): one written as the server goes away, before the session noticed, is sent again once
// the server is back. The session reaches a real ngIRCd through a relay that can hold what the
// session writes (as a server that stopped reading) and refuse new connections. A message still
// unconfirmed when the user takes the session offline is told undelivered, as those waiting are.
import assert from 'node:assert/strict';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { eventually } from '../support/eventually.js';
import { GATEWAY, type IrcGateway, ircLinkCommand, notices, sessionOnline, startIrcGateway } from '../support/gateway.js';
import { IrcUser } from '../support/irc-user.js';
import type { TestServer } from '../support/server.js';
import type { TestUA } from '../support/ua.js';

const SIP_PASSWORD = 'alice-sip-secret';
const IRC_PASSWORD = 'Irc-Server-Pass-4711';
const SERVER = '127.0.0.1';
const BOB = `sip:bob*${SERVER}@irc.localhost`;

let irc: IrcGateway;
let relay: HoldingRelay;
let parley: TestServer;
let alice: TestUA;

before(async () => {
  irc = await startIrcGateway(IRC_PASSWORD, SIP_PASSWORD);
  ({ parley, alice } = irc);
  relay = await HoldingRelay.start(irc.ngircd.port);
});

after(async () => {
  relay?.close();
  await irc?.stop();
});

test('a message written as the IRC server goes away is delivered once it is back', async () => {
  assert.equal((await alice.message(GATEWAY, ircLinkCommand('alice', IRC_PASSWORD, relay.port))).status, 200);
  assert.equal((await alice.register()).status, 200);
  await notices(alice, 1, (text) => text.startsWith('Linked'));
  const [account] = await parley.server.store.gatewayAccounts.listFor('sip:alice@localhost');
  await sessionOnline(parley, account!.id);
  assert.equal((await alice.message(BOB, 'before the restart')).status, 202);
  await eventually(() => irc.bob.privmsgs('alice').includes('before the restart') || undefined, 'bob gets the first message');
  await eventually(() => parley.server.gateway!.pendingMessages === 0 || undefined, 'the server confirmed the first message');

  // The server stops reading: what the session writes now never reaches it.
  relay.hold();
  assert.equal((await alice.message(BOB, 'as the server goes away')).status, 202);
  await eventually(() => relay.held().includes('PRIVMSG bob :as the server goes away') || undefined, 'the message written to the server');
  irc.bob.close();
  await irc.ngircd.stop();
  await irc.ngircd.start();
  irc.bob = await IrcUser.connect(irc.ngircd, 'bob', IRC_PASSWORD);
  relay.open();

  await eventually(() => irc.bob.privmsgs('alice').includes('as the server goes away') || undefined, 'bob gets the message after the restart', 20_000);
  assert.deepEqual(irc.bob.privmsgs('alice'), ['as the server goes away'], 'sent again once, and the confirmed one not again');
  await eventually(() => parley.server.gateway!.pendingMessages === 0 || undefined, 'the server confirmed it');
});

test('a message the server has not confirmed when the user takes the session offline is told undelivered', async () => {
  relay.hold();
  assert.equal((await alice.message(BOB, 'just before #offline')).status, 202);
  await eventually(() => relay.held().includes('PRIVMSG bob :just before #offline') || undefined, 'the message written to the server');
  assert.equal((await alice.message(GATEWAY, '#offline')).status, 200);
  const notice = await eventually(
    () => alice.received.find((m) => m.method === 'MESSAGE' && m.from.uri === BOB && m.body.toString('utf8').endsWith('> just before #offline')),
    'the notice that the message was not delivered',
  );
  assert.equal(notice.body.toString('utf8'), `Your message to bob@${SERVER} was not delivered: the session went offline (you asked) (503).\n> just before #offline`);
  relay.open();
});

/** A TCP relay to the server that can hold what clients write (not forwarded, kept to be read) and refuse new connections while it does. */
class HoldingRelay {
  private holding = false;
  private heldText = '';
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: number): Promise<HoldingRelay> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const relay = new HoldingRelay(server, (server.address() as { port: number }).port);
    server.on('connection', (socket: Socket) => relay.accept(socket, target));
    return relay;
  }

  hold(): void {
    this.holding = true;
  }

  open(): void {
    this.holding = false;
  }

  held(): string {
    return this.heldText;
  }

  close(): void {
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private accept(client: Socket, target: number): void {
    if (this.holding) return void client.destroy();
    const upstream = connect(target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (this.holding) this.heldText += chunk.toString('utf8');
      else upstream.write(chunk);
    });
    upstream.pipe(client);
  }
}
