// The XMPP gateway against what a real XMPP server does not do on demand: a server sending malformed
// XML or splitting a character between two TCP segments (a scripted XEP-0114 server here), and no
// server at all (queueing, delay_time, 503), and messages answered 202 while it was unreachable
// surviving kill -9. test/xmpp/prosody.test.ts has the real server.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { createResponse } from '../../src/sip/index.js';
import { StoreError } from '../../src/store/index.js';
import { linphoneCpim } from '../support/linphone.js';
import { eventually } from '../support/eventually.js';
import { freeTcpPort, killAll, startParley, tempDir } from '../support/process.js';
import { type TestServer, startServer } from '../support/server.js';
import { TestUA, registeredTcpUser } from '../support/ua.js';
import { victimSocket } from '../support/victim.js';
import { type ScriptedConnection, ScriptedXmppServer, xmppComponentServer } from '../support/xmpp-peer.js';

const COMPONENT_DOMAIN = 'sip.xmpp.example';
const SECRET = 'scripted-server-secret';
const ROMEO = `sip:romeo*xmpp.example@${COMPONENT_DOMAIN}`;

function xmppConfig(port: number, more: Record<string, unknown> = {}) {
  return {
    xmpp: { enabled: true, xmpp_domain: COMPONENT_DOMAIN, xmpp_password: SECRET, xmpp_port: port, reconnect_min: 0.1, reconnect_max: 0.2, ...more },
  };
}

const componentServer = (more?: (connection: ScriptedConnection, chunk: string) => void) => xmppComponentServer(COMPONENT_DOMAIN, more);

/** The ids of the XEP-0199 pings in `text`. */
const pingIds = (text: string) => [...text.matchAll(/<iq type="get" id="([^"]+)"[^>]*><ping xmlns="urn:xmpp:ping"\/><\/iq>/g)].map((match) => match[1]!);
const occurrences = (text: string, what: string) => text.split(what).length - 1;

/** Holds the next row the outbox is asked to add until `release()` (written then) or `fail(error)`. */
function holdNextOutboxAdd(parley: TestServer): { release(): void; fail(error: Error): void } {
  const outbox = parley.server.store.outbox;
  const add = outbox.add;
  let settle!: (error?: Error) => void;
  const decided = new Promise<Error | undefined>((resolve) => (settle = resolve));
  outbox.add = async (...args) => {
    outbox.add = add;
    const error = await decided;
    if (error) throw error;
    return add.apply(outbox, args);
  };
  return { release: () => settle(), fail: (error) => settle(error) };
}

describe('against a scripted XMPP server', () => {
  let xmppServer: ScriptedXmppServer;
  let parley: TestServer;
  let alice: TestUA;
  const phones: TestUA[] = [];

  before(async () => {
    xmppServer = componentServer();
    parley = await startServer(xmppConfig(await xmppServer.listen()));
    alice = await registeredTcpUser(parley.tcp, 'alice');
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 'gateway online');
  });

  after(async () => {
    alice.close();
    await parley.stop();
    for (const phone of phones) phone.close();
    xmppServer.close();
  });

  for (const [what, stanza, condition] of [
    ['an unknown entity', `<message from='romeo@xmpp.example' to='alice*localhost@${COMPONENT_DOMAIN}'><body>&bogus;</body></message>`, 'restricted-xml'],
    ['a mismatched end tag', `<message from='romeo@xmpp.example' to='alice*localhost@${COMPONENT_DOMAIN}'><body>x</presence>`, 'not-well-formed'],
  ]) {
    test(`malformed XML (${what}) closes the stream with ${condition}, and the link comes back`, async () => {
      const before = xmppServer.connections.length;
      const bad = xmppServer.latest!;
      bad.socket.write(stanza);
      await eventually(() => bad.input.includes(`<${condition} `) || undefined, `a ${condition} stream error`);
      await eventually(() => xmppServer.connections.length > before || undefined, 'a new connection');
      await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 'gateway online again');
      assert.ok(parley.logs.some((line) => line.includes('bad XML from the XMPP server')));
      const options = await alice.send(alice.build('OPTIONS', 'sip:localhost'));
      assert.equal(options.status, 200, 'Parley still answers');
    });
  }

  test('a message for a SIP user of a foreign domain is not sent there without an outbound proxy: an error goes back', async () => {
    const victim = await victimSocket();
    try {
      const connection = xmppServer.latest!;
      connection.socket.write(`<message id='far-1' from='romeo@xmpp.example/r' to='x*${victim.host}@${COMPONENT_DOMAIN}' type='chat'><body>hello</body></message>`);
      const error = await eventually(() => /<message type="error"[^>]*id="far-1">.*?<\/message>/.exec(connection.input)?.[0], 'an error for the message');
      assert.match(error, /<forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/><text [^>]*>403 Forbidden \(domain not served here\)<\/text>/);
      assert.deepEqual(victim.received, []);
    } finally {
      victim.close();
    }
  });

  test('a character split between two TCP segments arrives whole', async () => {
    const stanza = Buffer.from(`<message from='romeo@xmpp.example/r' to='alice*localhost@${COMPONENT_DOMAIN}' type='chat'><body>split 🎉 here</body></message>`);
    const middleOfEmoji = stanza.indexOf(Buffer.from('🎉')) + 2;
    const received = alice.waitForRequest((request) => request.method === 'MESSAGE');
    xmppServer.latest!.socket.write(stanza.subarray(0, middleOfEmoji));
    await new Promise((resolve) => setTimeout(resolve, 50));
    xmppServer.latest!.socket.write(stanza.subarray(middleOfEmoji));
    const message = await received;
    assert.equal(message.body.toString('utf8'), 'split 🎉 here');
    assert.equal(message.from.uri, `sip:romeo*xmpp.example@${COMPONENT_DOMAIN}`);
  });

  test('a burst from XMPP to one phone on UDP: 16 go out unanswered (relay.delivery_window_udp), in order, the rest as they are answered', async () => {
    const window = 16;
    const count = 40;
    const bob = await TestUA.create({ user: 'bob', proto: 'udp', server: parley.udp });
    try {
      assert.equal((await bob.register()).status, 200);
      bob.answer = null;
      const fromRomeo = () => bob.received.filter((m) => m.method === 'MESSAGE' && m.from.uri === ROMEO);
      const bodies = () => fromRomeo().map((m) => m.body.toString());
      const numbered = (n: number) => Array.from({ length: n }, (_, index) => `burst ${index + 1}`);
      const stanzas = numbered(count).map((body) => `<message from='romeo@xmpp.example/r' to='bob*localhost@${COMPONENT_DOMAIN}' type='chat'><body>${body}</body></message>`);
      xmppServer.latest!.socket.write(stanzas.join(''));
      await eventually(() => fromRomeo().length >= window || undefined, `${window} messages at bob before any is answered`);
      // Sent once the burst is queued, alice's MESSAGE arrives behind anything the gateway sent before it.
      const marker = bob.waitForRequest((m) => m.body.toString() === 'marker');
      const markerSent = alice.message(bob.aor, 'marker');
      bob.sendRaw(createResponse(await marker, 200).toBuffer());
      assert.equal((await markerSent).status, 200);
      assert.deepEqual(bodies(), numbered(window), 'the window, in order, and nothing more');
      for (let answered = 0; answered < count; answered++) {
        bob.sendRaw(createResponse(await eventually(() => fromRomeo()[answered], `message ${answered + 1} at bob`), 200).toBuffer());
      }
      assert.deepEqual(bodies(), numbered(count));
    } finally {
      // Open, answering, until Parley stops: a request still on its way would otherwise wait out its timeout at the stop.
      bob.answer = 200;
      phones.push(bob);
    }
  });

  test("what the server writes is acknowledged at once, by a whitespace when nothing else is to be written (a server keeping Nagle's algorithm is not held up)", async () => {
    const connection = xmppServer.latest!;
    const before = connection.input.length;
    const received = alice.waitForRequest((request) => request.method === 'MESSAGE' && request.body.toString() === 'acknowledged');
    connection.socket.write(`<message from='romeo@xmpp.example/r' to='alice*localhost@${COMPONENT_DOMAIN}' type='chat'><body>acknowledged</body></message>`);
    await received;
    // The keepalive (a whitespace too) comes only after xmpp.keepalive, 60 s.
    const answer = await eventually(() => connection.input.slice(before) || undefined, 'something written back');
    assert.match(answer, /^ +$/);
  });

  test('a message for XMPP is written to the server while the store writes it; its 202 waits for the store', async () => {
    const connection = xmppServer.latest!;
    const hold = holdNextOutboxAdd(parley);
    let answered = false;
    const sent = alice.message(ROMEO, 'not waiting for the disk').then((response) => ((answered = true), response));
    await eventually(() => connection.input.includes('<body>not waiting for the disk</body>') || undefined, 'the stanza at the XMPP server');
    assert.equal(answered, false, 'no 202 before the message is in the store');
    hold.release();
    assert.equal((await sent).status, 202);
  });

  test('a message whose store write fails is refused 503 even if its stanza went; the next one goes as usual', async () => {
    const connection = xmppServer.latest!;
    const hold = holdNextOutboxAdd(parley);
    const refused = alice.message(ROMEO, 'store failing');
    await eventually(() => connection.input.includes('<body>store failing</body>') || undefined, 'the stanza at the XMPP server');
    hold.fail(new StoreError('UNAVAILABLE', 'disk I/O error'));
    const response = await refused;
    assert.equal(response.status, 503);
    assert.ok(response.get('retry-after'), 'told when to try again');
    assert.equal((await alice.message(ROMEO, 'store back')).status, 202);
    await eventually(() => connection.input.includes('<body>store back</body>') || undefined, 'the next stanza at the XMPP server');
    await eventually(() => parley.server.xmpp!.stats.queued === 0 || undefined, 'nothing left waiting for XMPP');
  });

  test('an XMPP subject with line breaks of any kind becomes one Subject header line', async () => {
    const subject = 'one&#13;&#10;X-Injected: yes&#x2028;X-Also: yes&#x85;X-Too: yes';
    const received = alice.waitForRequest((request) => request.method === 'MESSAGE' && request.body.toString() === 'with a subject');
    xmppServer.latest!.socket.write(`<message from='romeo@xmpp.example/r' to='alice*localhost@${COMPONENT_DOMAIN}' type='chat'><subject>${subject}</subject><body>with a subject</body></message>`);
    const message = await received;
    assert.deepEqual(message.headers.filter((header) => header.name.startsWith('x-')), []);
    assert.equal(message.get('subject'), 'one X-Injected: yes X-Also: yes X-Too: yes');
  });
});

test('a message the server read but did not confirm before going away is written again on the next stream; confirmed ones are not', async () => {
  const lost = 'written as the server went away';
  const confirmed = 'confirmed by a ping answer';
  const xmppServer = componentServer((connection, chunk) => {
    const index = xmppServer.connections.indexOf(connection);
    // The first stream ends as soon as a message arrives, with the ping after it unanswered.
    if (index === 0) {
      if (chunk.includes('<message')) connection.socket.destroy();
      return;
    }
    for (const id of pingIds(chunk)) {
      const answer = `<iq type='result' id='${id}' from='xmpp.example' to='${COMPONENT_DOMAIN}'/>`;
      const confirmedAt = connection.input.indexOf(confirmed);
      // The second stream ends once the ping after the second message is answered.
      if (index === 1 && confirmedAt >= 0 && confirmedAt < connection.input.indexOf(id)) connection.socket.end(`${answer}</stream:stream>`);
      else connection.socket.write(answer);
    }
  });
  const parley = await startServer(xmppConfig(await xmppServer.listen()));
  const alice = await TestUA.create({ proto: 'tcp', user: 'alice', server: parley.tcp });
  try {
    assert.equal((await alice.register()).status, 200);
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 'gateway online');
    assert.equal((await alice.message(ROMEO, lost)).status, 202);
    await eventually(() => xmppServer.connections[1]?.input.includes(lost) || undefined, 'the message written again on the second stream');
    assert.equal(occurrences(xmppServer.connections[0]!.input, lost), 1);

    assert.equal((await alice.message(ROMEO, confirmed)).status, 202);
    await eventually(() => xmppServer.connections[2]?.input.includes('<handshake>') || undefined, 'a third stream');
    assert.equal((await alice.message(ROMEO, 'on the third stream')).status, 202);
    const third = await eventually(() => (xmppServer.connections[2]!.input.includes('on the third stream') ? xmppServer.connections[2]!.input : undefined), 'the third message');
    assert.equal(occurrences(third, lost), 0, 'confirmed on the second stream: not written again');
    assert.equal(occurrences(third, confirmed), 0, 'confirmed on the second stream: not written again');
    const all = xmppServer.connections.map((connection) => connection.input).join('');
    assert.deepEqual([occurrences(all, lost), occurrences(all, confirmed)], [2, 1]);
    assert.equal(xmppServer.connections.length, 3);
  } finally {
    alice.close();
    await parley.stop();
    xmppServer.close();
  }
});

test('with imdn false, a message from XMPP asking for a receipt and a marker reaches SIP as plain text', async () => {
  const xmppServer = componentServer();
  const parley = await startServer(xmppConfig(await xmppServer.listen(), { imdn: false }));
  const alice = await TestUA.create({ proto: 'tcp', user: 'alice', server: parley.tcp });
  try {
    assert.equal((await alice.register()).status, 200);
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 'gateway online');
    const received = alice.waitForRequest((request) => request.method === 'MESSAGE');
    xmppServer.latest!.socket.write(
      `<message id='m-1' from='romeo@xmpp.example/r' to='alice*localhost@${COMPONENT_DOMAIN}' type='chat'><body>no receipts</body>` +
        `<request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>`,
    );
    const message = await received;
    assert.match(message.get('content-type') ?? '', /^text\/plain/);
    assert.equal(message.body.toString(), 'no receipts');
  } finally {
    alice.close();
    await parley.stop();
    xmppServer.close();
  }
});

test('messages from XMPP for a SIP user with max_queue_to_sip of them waiting go back as resource-constraint; those taken arrive in order', async () => {
  const xmppServer = componentServer();
  const parley = await startServer(xmppConfig(await xmppServer.listen(), { max_queue_to_sip: 20 }));
  const bob = await TestUA.create({ proto: 'udp', user: 'bob', server: parley.udp });
  try {
    assert.equal((await bob.register()).status, 200);
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 'gateway online');
    bob.answer = null;
    const stanzas = Array.from({ length: 30 }, (_, index) => `<message id='b${index + 1}' from='romeo@xmpp.example/r' to='bob*localhost@${COMPONENT_DOMAIN}' type='chat'><body>queued ${index + 1}</body></message>`);
    xmppServer.latest!.socket.write(stanzas.join(''));
    const bounced = await eventually(() => {
      const errors = [...xmppServer.latest!.input.matchAll(/<message type="error" [^>]*id="(b\d+)"><error type="wait"><resource-constraint [^>]*\/><text [^>]*>([^<]*)<\/text>/g)];
      return errors.length === 10 ? errors : undefined;
    }, 'ten messages bounced');
    assert.deepEqual(bounced.map((match) => match[1]), Array.from({ length: 10 }, (_, index) => `b${index + 21}`));
    assert.equal(bounced[0]![2], '20 messages are waiting for delivery to sip:bob@localhost: try again later');
    // The twenty taken arrive, in order, as bob answers them.
    const fromRomeo = () => bob.received.filter((m) => m.method === 'MESSAGE' && m.from.uri === ROMEO);
    for (let answered = 0; answered < 20; answered++) {
      bob.sendRaw(createResponse(await eventually(() => fromRomeo()[answered], `message ${answered + 1} at bob`), 200).toBuffer());
    }
    assert.deepEqual(fromRomeo().map((m) => m.body.toString()), Array.from({ length: 20 }, (_, index) => `queued ${index + 1}`));
  } finally {
    bob.answer = 200;
    await parley.stop();
    bob.close();
    xmppServer.close();
  }
});

test('a message refused 503 (its store write failed) while it waited for the XMPP server is not sent once the server is there', async () => {
  const port = await freeTcpPort();
  const parley = await startServer(xmppConfig(port));
  const alice = await registeredTcpUser(parley.tcp, 'alice');
  const xmppServer = componentServer();
  try {
    const hold = holdNextOutboxAdd(parley);
    const refused = alice.message(ROMEO, 'refused while waiting');
    await eventually(() => parley.server.xmpp!.stats.queued === 1 || undefined, 'the message waiting for the link');
    hold.fail(new StoreError('UNAVAILABLE', 'disk I/O error'));
    assert.equal((await refused).status, 503);
    await xmppServer.listen(port);
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 'gateway online');
    assert.equal((await alice.message(ROMEO, 'taken later')).status, 202);
    const input = await eventually(() => (xmppServer.latest?.input.includes('<body>taken later</body>') ? xmppServer.latest.input : undefined), 'the later message at the XMPP server');
    assert.ok(!input.includes('refused while waiting'), 'the refused message was not sent');
  } finally {
    alice.close();
    await parley.stop();
    xmppServer.close();
  }
});

describe('without a reachable XMPP server', () => {
  let parley: TestServer;
  let alice: TestUA;

  before(async () => {
    parley = await startServer(xmppConfig(await freeTcpPort(), { delay_time: 1, max_queue: 2 }));
    alice = await registeredTcpUser(parley.tcp, 'alice');
  });

  after(async () => {
    alice.close();
    await parley.stop();
  });

  test('messages wait up to delay_time and then fail back to their sender; the queue is bounded', async () => {
    const answers = [];
    for (const text of ['first', 'second', 'third']) answers.push(await alice.message(ROMEO, text));
    assert.deepEqual(answers.map((response) => response.status), [202, 202, 503]);
    assert.match(answers[2]!.reason, /queue full/);
    assert.equal(parley.server.xmpp!.stats.queued, 2);

    const notifications = await eventually(() => {
      const found = alice.received.filter((request) => request.method === 'MESSAGE');
      return found.length === 2 ? found : undefined;
    }, 'two error notifications', 5000);
    for (const [index, text] of ['first', 'second'].entries()) {
      const notification = notifications[index]!;
      assert.equal(notification.from.uri, ROMEO);
      assert.match(notification.body.toString(), new RegExp(`^Your message to romeo@xmpp.example was not delivered: .*unreachable.*\\(408\\)\\.\\n> ${text}$`));
    }
    assert.equal(parley.server.xmpp!.stats.expired, 2);
  });

  test('once the link has been down longer than delay_time, MESSAGEs get 503 at once', async () => {
    const response = await alice.message(ROMEO, 'too late');
    assert.equal(response.status, 503);
    assert.match(response.reason, /unreachable/);
    assert.ok(response.get('retry-after'));
    assert.equal(parley.logs.filter((line) => line.includes('XMPP server unreachable; retrying')).length, 1, 'said once, not at every retry');
  });
});

test('a MESSAGE asking for IMDNs refused with 503 (queue full) leaves no receipt id in the store', async () => {
  const parley = await startServer(xmppConfig(await freeTcpPort(), { delay_time: 600, max_queue: 1 }));
  const alice = await registeredTcpUser(parley.tcp, 'alice');
  const database = new SqliteDatabase(join(parley.dir, 'parley.db'), { readonly: true });
  try {
    const asking = (messageId: string) =>
      linphoneCpim('sip:alice@localhost', ROMEO, [['imdn.Message-ID', messageId], ['imdn.Disposition-Notification', 'positive-delivery']], 'text/plain;charset=UTF-8', messageId);
    assert.equal((await alice.message(ROMEO, asking('kept'), [], 'message/cpim')).status, 202);
    const refused = await alice.message(ROMEO, asking('refused'), [], 'message/cpim');
    assert.equal(refused.status, 503);
    assert.match(refused.reason, /queue full/);
    const awaited = () =>
      (database.prepare(`SELECT entry FROM receipt_ids WHERE direction = 'xmpp-stanza'`).all() as Array<{ entry: string }>).map((row) => (JSON.parse(row.entry) as { messageId: string }).messageId);
    // The refused one's id was written before its 503 (and in one queue of writes with its removal).
    await eventually(() => (awaited().join() === 'kept' ? true : undefined), "only the accepted message's receipt id stored");
  } finally {
    database.close();
    alice.close();
    await parley.stop();
  }
});

test('backend server starts a server-to-server listener instead of a component link', async () => {
  const parley = await startServer(xmppConfig(5347, { backend: 'server', xmpp_password: null, s2s_listen: '127.0.0.1', s2s_port: 0 }));
  try {
    await eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, 's2s listener online');
    assert.ok(parley.logs.some((line) => line.includes('XMPP server (s2s) listening')));
  } finally {
    await parley.stop();
  }
});

describe('kill -9 with messages waiting for the XMPP server', () => {
  after(() => killAll());

  /** A config file for Parley as a component of the XMPP server on `port`. */
  function componentConfig(dir: string, port: number): string {
    const file = join(dir, `xmpp-${port}.yaml`);
    const xmpp = { enabled: true, xmpp_domain: COMPONENT_DOMAIN, xmpp_password: SECRET, xmpp_port: port, reconnect_min: 0.1, reconnect_max: 0.2, delay_time: 60 };
    writeFileSync(file, `auth:\n  policy: open\nxmpp:\n${Object.entries(xmpp).map(([key, value]) => `  ${key}: ${String(value)}\n`).join('')}`);
    return file;
  }

  test('every MESSAGE answered 202 before the kill reaches the XMPP server after the restart, in order', async () => {
    const dir = tempDir();
    const first = await startParley({ dir, args: ['--config', componentConfig(dir, await freeTcpPort())] });
    const alice = await TestUA.create({ user: 'alice', server: first.udp });
    const xmppServer = componentServer();
    try {
      assert.equal((await alice.register()).status, 200);
      const texts = ['one', 'two', 'three', 'four', 'five'];
      for (const text of texts) assert.equal((await alice.message(ROMEO, text)).status, 202);
      first.kill('SIGKILL');
      assert.equal((await first.exited).signal, 'SIGKILL');

      const port = await xmppServer.listen();
      const second = await startParley({ db: first.db, dir, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', componentConfig(dir, port)] });
      try {
        const sent = () => xmppServer.connections.map((connection) => connection.input).join('');
        await eventually(() => sent().includes('<body>five</body>'), 'the last message at the XMPP server', 15_000);
        const positions = texts.map((text) => sent().indexOf(`<body>${text}</body>`));
        assert.ok(positions.every((position, index) => position >= 0 && (index === 0 || position > positions[index - 1]!)), `in order: ${positions.join(', ')}`);
        assert.match(sent(), new RegExp(`<message [^>]*to=.romeo@xmpp.example.`));
      } finally {
        await second.stop();
      }
    } finally {
      alice.close();
      xmppServer.close();
    }
  });
});
