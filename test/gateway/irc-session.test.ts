// The IRC network's session against a real ngIRCd, with an irc-framework client as the other IRC
// user: registration, private messages both ways (UTF-8, CTCP ACTION, formatting codes, long bodies
// split at the line limit), errors matched to messages, channels, a refused server password that
// fails once without retrying, and a server restart the session rides out by itself.
import assert from 'node:assert/strict';
import { type Server, type Socket, createServer, connect } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/log/index.js';
import type { SessionEvents } from '../../src/gateway/adapter.js';
import { IrcNetwork, type IrcSession, ircLines, splitUtf8 } from '../../src/gateway/irc-network.js';
import { eventually } from '../support/eventually.js';
import { IrcUser } from '../support/irc-user.js';
import { Ngircd } from '../support/ngircd.js';

const SERVER_PASSWORD = 'Irc-Server-Pass-4711';
const WRONG_PASSWORD = 'Wrong-Irc-Pass-0815';
const LINE_LIMIT = 400;
const SETTINGS = { priority: 0, reconnectMinMs: 100, reconnectMaxMs: 500 };

type Recorded = { [E in keyof SessionEvents]: { event: E; args: SessionEvents[E] } }[keyof SessionEvents];

const logs: string[] = [];
const log = createLogger('debug', new Writable({ write: (chunk, _enc, done) => done(void logs.push(String(chunk))) }));
const network = new IrcNetwork({ alias: 'irc.localhost', delimiter: '*', lineLimit: LINE_LIMIT, networks: new Map() }, log);

let ngircd: Ngircd;
let bob: IrcUser;
const sessions: IrcSession[] = [];

/** A session whose events are recorded in order. */
function openSession(nick: string, password: string, port = ngircd.port): { session: IrcSession; events: Recorded[] } {
  const session = network.createSession(
    { id: sessions.length + 1, extUser: `${nick}@${ngircd.name}`, password, server: ngircd.host, port, tls: 'none' },
    SETTINGS,
  ) as IrcSession;
  sessions.push(session);
  const events: Recorded[] = [];
  for (const event of ['online', 'offline', 'failed', 'message', 'undelivered', 'roomMessage', 'joined', 'left', 'presence'] as const) {
    session.on(event, (...args: unknown[]) => events.push({ event, args } as Recorded));
  }
  session.start();
  return { session, events };
}

function waitForEvent<E extends keyof SessionEvents>(events: Recorded[], event: E, test: (...args: SessionEvents[E]) => boolean = () => true, since = 0, timeoutMs = 10_000): Promise<SessionEvents[E]> {
  return eventually(
    () => events.slice(since).find((e): e is Extract<Recorded, { event: E }> => e.event === event && test(...(e.args as SessionEvents[E])))?.args as SessionEvents[E] | undefined,
    `session event ${event}`,
    timeoutMs,
  );
}

const count = (events: Recorded[], event: keyof SessionEvents) => events.filter((e) => e.event === event).length;

before(async () => {
  ngircd = await Ngircd.start({ password: SERVER_PASSWORD });
  bob = await IrcUser.connect(ngircd, 'bob', SERVER_PASSWORD);
});

after(async () => {
  await Promise.all(sessions.map((s) => s.stop()));
  bob?.close();
  await ngircd?.stop();
});

describe('splitting bodies into PRIVMSG texts', () => {
  test('pieces fit the limit in UTF-8 bytes, cut at spaces, never inside a character', () => {
    assert.deepEqual(splitUtf8('aaa bbb ccc ddd', 7), ['aaa bbb', 'ccc ddd']);
    assert.deepEqual(splitUtf8('abcdefghij', 4), ['abcd', 'efgh', 'ij']);
    assert.deepEqual(splitUtf8('ééééé', 3), ['é', 'é', 'é', 'é', 'é']);
    assert.deepEqual(splitUtf8('☀☀ ☀', 7), ['☀☀', '☀']);
    assert.deepEqual(splitUtf8('short', 400), ['short']);
  });

  test('one or more texts per line; /me lines become actions; control characters go', () => {
    assert.deepEqual(ircLines('/me waves\x02!\r\nhi\tthere\n\nbye\x07', 400), [
      { action: true, text: 'waves!' },
      { action: false, text: 'hi there' },
      { action: false, text: 'bye' },
    ]);
  });
});

describe('IRC session against ngIRCd', () => {
  let alice: { session: IrcSession; events: Recorded[] };

  test('registers with the server password and goes online', async () => {
    alice = openSession('alice', SERVER_PASSWORD);
    await waitForEvent(alice.events, 'online');
    assert.equal(alice.session.state, 'online');
    bob.raw('ISON alice');
    await bob.waitFor((m) => m.command === '303' && /\balice\b/.test(m.params.at(-1)!), 'alice is on');
  });

  test('private messages both ways, in UTF-8', async () => {
    const text = 'Grüße, Bob ☀ 日本語 <&>';
    assert.equal(await alice.session.send(`bob@${ngircd.name}`, { body: text }, 'm1'), true);
    await eventually(() => bob.privmsgs('alice').includes(text) || undefined, 'bob gets the message');
    bob.say('alice', 'Hallo Alice ünïcödé 👋');
    const [from, im] = await waitForEvent(alice.events, 'message', (_, im) => im.body === 'Hallo Alice ünïcödé 👋');
    assert.equal(from, `bob@${ngircd.name}`);
    assert.equal(network.sipAddressOf(from), `sip:bob*${ngircd.name}@irc.localhost`);
    assert.deepEqual(im, { body: 'Hallo Alice ünïcödé 👋' });
  });

  test('/me goes as CTCP ACTION, and an ACTION arrives as /me', async () => {
    await alice.session.send(`bob@${ngircd.name}`, { body: '/me waves at Bob' }, 'm2');
    await eventually(() => bob.privmsgs('alice').includes('\x01ACTION waves at Bob\x01') || undefined, 'bob gets the action');
    bob.say('alice', '\x01ACTION grins\x01');
    await waitForEvent(alice.events, 'message', (_, im) => im.body === '/me grins');
  });

  test('formatting codes are stripped from incoming text', async () => {
    bob.say('alice', '\x02bold\x02 \x0304,12red\x03 \x0312blue\x0F \x1Ditalic\x1D \x1Funder\x1F \x16rev\x16 \x1Estrike\x1E \x11mono\x11 end');
    await waitForEvent(alice.events, 'message', (_, im) => im.body === 'bold red blue italic under rev strike mono end');
  });

  test('a presence other than plainly available sets AWAY with the note; available comes back', async () => {
    const isAway = async (expected: string | undefined) => {
      const since = bob.lines.length;
      bob.raw('WHOIS alice');
      await bob.waitFor((m) => m.command === '318' && bob.lines.indexOf(m) >= since, 'end of WHOIS');
      const away = bob.lines.slice(since).find((m) => m.command === '301');
      assert.equal(away?.params.at(-1), expected);
    };
    alice.session.setPresence({ basic: 'open', notes: ['In a meeting'], activities: ['meeting'] });
    await isAway('In a meeting');
    alice.session.setPresence({ basic: 'open', notes: [], activities: [] });
    await isAway(undefined);
    // ngIRCd has no MONITOR: watching is a no-op there.
    alice.session.watch(`bob@${ngircd.name}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(count(alice.events, 'presence'), 0);
  });

  test('a 2,000-character message arrives as several PRIVMSGs of at most the line limit', async () => {
    const words = ['Parley', 'gateway', 'übermäßig', '日本語', 'a', 'IRC', 'line', 'naïve', '☀☀☀', 'splitting'];
    const parts: string[] = [];
    for (let i = 0; parts.join(' ').length < 2000; i++) parts.push(`${words[i % words.length]}${i}`);
    const text = parts.join(' ');
    const before = bob.privmsgs('alice').length;
    await alice.session.send(`bob@${ngircd.name}`, { body: text }, 'm3');
    const pieces = await eventually(() => {
      const got = bob.privmsgs('alice').slice(before);
      return got.join(' ').length >= text.length ? got : undefined;
    }, 'all pieces of the long message');
    assert.ok(pieces.length >= 5, `${pieces.length} pieces`);
    for (const piece of pieces) assert.ok(Buffer.byteLength(piece) <= LINE_LIMIT, `${Buffer.byteLength(piece)} bytes`);
    assert.equal(pieces.join(' '), text);
  });

  test('a multi-line body goes as one PRIVMSG per line', async () => {
    const before = bob.privmsgs('alice').length;
    await alice.session.send(`bob@${ngircd.name}`, { body: 'first line\nsecond line\r\nthird' }, 'm4');
    await eventually(() => bob.privmsgs('alice').length >= before + 3 || undefined, 'three lines');
    assert.deepEqual(bob.privmsgs('alice').slice(before), ['first line', 'second line', 'third']);
  });

  test('a message to a nick no one uses is undelivered (404), matched to that message', async () => {
    await alice.session.send(`nobody@${ngircd.name}`, { body: 'anyone there? '.repeat(40) }, 'm5');
    const [id, status, explanation] = await waitForEvent(alice.events, 'undelivered');
    assert.equal(id, 'm5');
    assert.equal(status, 404);
    assert.match(explanation, /nobody/);
    // Each of the message's PRIVMSGs drew a 401; only one error is told.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(count(alice.events, 'undelivered'), 1);
  });

  test('a channel: join, talk both ways, kicked, join again, leave', async () => {
    const room = `#parley@${ngircd.name}`;
    assert.deepEqual(network.roomOf({ scheme: 'sip', user: `#parley*${ngircd.name}`, host: 'irc.localhost', params: new Map(), headers: new Map() }), { room });
    assert.equal(network.roomAddressOf(room), `sip:%23parley*${ngircd.name}@irc.localhost`);
    await bob.join('#parley');
    assert.equal(alice.session.join(room, 'ignored'), true);
    await waitForEvent(alice.events, 'joined', (r, nick) => r === room && nick === 'alice');
    assert.deepEqual([...alice.session.rooms], [[room, 'alice']]);
    await bob.waitFor((m) => m.command === 'JOIN' && m.nick === 'alice' && m.params[0] === '#parley', 'alice joins');

    bob.say('#parley', 'Welcome, \x02Alice\x02!');
    const [r, nick, im] = await waitForEvent(alice.events, 'roomMessage');
    assert.deepEqual([r, nick, im], [room, 'bob', { body: 'Welcome, Alice!' }]);
    assert.equal(await alice.session.sendToRoom(room, { body: 'Thanks, all ☀' }, 'r1'), true);
    await eventually(() => bob.privmsgs('alice', '#parley').includes('Thanks, all ☀') || undefined, 'bob hears alice in #parley');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(count(alice.events, 'roomMessage'), 1, 'no echo of her own message');

    bob.raw('KICK #parley alice :too chatty');
    const [, reason] = await waitForEvent(alice.events, 'left', (r) => r === room);
    assert.match(reason ?? '', /kicked by bob: too chatty/);
    assert.equal(alice.session.rooms.size, 0);
    assert.equal(alice.session.sendToRoom(room, { body: 'still here?' }, 'r2'), false);

    const joinedSince = alice.events.length;
    alice.session.join(room, 'alice');
    await waitForEvent(alice.events, 'joined', (r) => r === room, joinedSince);
    const leftSince = alice.events.length;
    alice.session.leave(room);
    assert.deepEqual((await waitForEvent(alice.events, 'left', () => true, leftSince))[1], undefined);
    await bob.waitFor((m) => m.command === 'PART' && m.nick === 'alice' && m.params[0] === '#parley', 'alice parts');
    assert.equal(alice.session.rooms.size, 0);
  });

  test('a refused join (invite-only channel) is told with the reason', async () => {
    await bob.join('#closed');
    bob.raw('MODE #closed +i');
    await bob.waitFor((m) => m.command === 'MODE' && m.params[0] === '#closed', 'mode set');
    const room = `#closed@${ngircd.name}`;
    alice.session.join(room, 'alice');
    const [, reason] = await waitForEvent(alice.events, 'left', (r) => r === room);
    assert.match(reason ?? '', /invite-only \(473/);
    assert.equal(alice.session.rooms.has(room), false);
  });

  test('a wrong server password fails the session once, with no reconnection attempts', async () => {
    const proxy = await countingProxy(ngircd.port);
    try {
      const carol = openSession('carol', WRONG_PASSWORD, proxy.port);
      const [reason] = await waitForEvent(carol.events, 'failed', () => true, 0, 15_000);
      assert.match(reason, /password/i);
      assert.equal(carol.session.state, 'failed');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(proxy.connections(), 1);
      assert.equal(count(carol.events, 'failed'), 1);
      assert.equal(count(carol.events, 'online'), 0);
    } finally {
      proxy.close();
    }
    for (const secret of [SERVER_PASSWORD, WRONG_PASSWORD]) assert.ok(!logs.join('').includes(secret), 'a password reached the log');
  });

  test('the server restarts: the session goes offline, comes back by itself, and re-joins its channel', async () => {
    const room = `#parley@${ngircd.name}`;
    const since = alice.events.length;
    alice.session.join(room, 'alice');
    await waitForEvent(alice.events, 'joined', (r) => r === room, since);
    bob.close();
    await ngircd.stop();
    await waitForEvent(alice.events, 'offline', () => true, since);
    assert.equal(alice.session.state, 'connecting');
    await ngircd.start();
    await waitForEvent(alice.events, 'online', () => true, since, 15_000);
    await waitForEvent(alice.events, 'joined', (r) => r === room, alice.events.findIndex((e, i) => i >= since && e.event === 'online'));
    bob = await IrcUser.connect(ngircd, 'bob', SERVER_PASSWORD);
    await bob.join('#parley');
    const names = await bob.waitFor((m) => m.command === '353' && m.params[2] === '#parley', 'names of #parley');
    assert.match(names.params.at(-1)!, /(^|[\s@+])alice(\s|$)/);
    bob.say('#parley', 'you are back');
    await waitForEvent(alice.events, 'roomMessage', (r, _, im) => r === room && im.body === 'you are back', since);
  });
});

/** A TCP relay to the server on a loopback port, counting the connections made through it. */
async function countingProxy(target: number): Promise<{ port: number; connections(): number; close(): void }> {
  let made = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    made++;
    const upstream = connect(target, '127.0.0.1');
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    connections: () => made,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
