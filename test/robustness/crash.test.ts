// kill -9 safety: what Parley acknowledged (a 202 for a stored MESSAGE, a 200 for a REGISTER) must be
// on disk at that moment, so that a process killed right after, and started again on the same
// database, still has it.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomToken, type SipMessage } from '../../src/sip/index.js';
import { udpAgents } from '../support/ua.js';
import { killAll, startParley, tempDir, type ParleyProcess } from '../support/process.js';
import { bindUdp, closeUdp, lenient, request, sleep } from './wire.js';

const ua = udpAgents();
after(() => killAll());

/** SIGKILL, then the same database and ports again. */
async function crashAndRestart(parley: ParleyProcess): Promise<ParleyProcess> {
  parley.kill('SIGKILL');
  const status = await parley.exited;
  assert.equal(status.signal, 'SIGKILL', 'the process did not die of the SIGKILL');
  assert.ok(!parley.logs.some((line) => line.includes('"parley stopped"')), 'a killed process cannot have stopped cleanly');
  return startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });
}

describe('kill -9 safety', () => {
  test('a MESSAGE acknowledged with 202 survives kill -9 and reaches its recipient on registration', async () => {
    const db = `sqlite:${join(tempDir(), 'parley.db')}`;
    let parley = await startParley({ db });
    try {
      const bob = await ua('bob', parley.udp);
      const alice = await ua('alice', parley.udp);
      assert.equal((await bob.register()).status, 200);
      assert.equal((await bob.register(0)).status, 200, 'bob could not unregister');
      const body = `written before the crash ☃ ${randomToken()}`;
      const sent = Date.now();
      const response = await alice.message('sip:bob@localhost', body);
      assert.equal(response.status, 202, `${response.status} ${response.reason}`);

      const killedAt = Date.now();
      parley = await crashAndRestart(parley);

      const delivered = bob.waitForRequest((m) => m.method === 'MESSAGE', 10_000);
      assert.equal((await bob.register()).status, 200);
      const message = await delivered;
      assert.equal(message.body.toString('utf8'), body);
      assert.match(message.get('from') ?? '', /sip:alice@localhost/);
      const date = message.get('date');
      assert.ok(date, 'the stored message has no Date header');
      const time = Date.parse(date);
      // The Date is when the message arrived (HTTP-date: whole seconds), before the crash, not the delivery time.
      assert.ok(time >= sent - 1000 && time <= killedAt, `Date ${date} is not the time the message was sent (${new Date(sent).toUTCString()}, killed at ${new Date(killedAt).toUTCString()})`);

      // Delivered once: a later registration finds nothing left.
      const again = bob.waitForRequest((m) => m.method === 'MESSAGE', 1000).then(
        (m) => m,
        () => undefined,
      );
      assert.equal((await bob.register()).status, 200);
      const redelivered = await again;
      assert.equal(redelivered, undefined, `delivered again: ${redelivered?.body.toString()}`);
    } finally {
      await parley.stop();
    }
  });

  test('a registration acknowledged with 200 survives kill -9: MESSAGEs reach its UDP contact without a new REGISTER', async () => {
    let parley = await startParley();
    try {
      const carol = await ua('carol', parley.udp);
      const dave = await ua('dave', parley.udp);
      assert.equal((await carol.register()).status, 200);

      parley = await crashAndRestart(parley);

      const relayed = carol.waitForRequest((m) => m.method === 'MESSAGE', 10_000);
      const response = await dave.message('sip:carol@localhost', 'after the crash');
      assert.equal(response.status, 200, `${response.status} ${response.reason}`);
      const message = await relayed;
      assert.equal(message.body.toString(), 'after the crash');
      assert.equal(message.uri, carol.contact);
    } finally {
      await parley.stop();
    }
  });

  test('a burst of registrations, committed together, survives kill -9 right after the last 200: each is reached and its next REGISTER lists it', async () => {
    let parley = await startParley();
    try {
      const users = await Promise.all(Array.from({ length: 30 }, (_, i) => ua(`burst${i}`, parley.udp)));
      const sender = await ua('sender', parley.udp);
      const responses = await Promise.all(users.map((user) => user.register()));
      assert.deepEqual(responses.map((r) => r.status), users.map(() => 200));

      parley = await crashAndRestart(parley);

      for (const user of users) {
        const relayed = user.waitForRequest((m) => m.method === 'MESSAGE', 10_000);
        const response = await sender.message(user.aor, `to ${user.aor}`);
        assert.equal(response.status, 200, `${user.aor}: ${response.status} ${response.reason}`);
        assert.equal((await relayed).body.toString(), `to ${user.aor}`);
      }
      // A REGISTER without Contact asks for the bindings: the one from before the crash is there.
      const first = users[0]!;
      const listed = await first.send(first.build('REGISTER', 'sip:localhost', { to: `<${first.aor}>` }));
      assert.equal(listed.status, 200);
      assert.ok(listed.getAll('contact').some((value) => value.startsWith(`<${first.contact}>;expires=`)), `200 Contact: ${listed.getAll('contact').join(', ')}`);
    } finally {
      await parley.stop();
    }
  });

  test('a stored message and a room post delivered just before kill -9 (unconfirmed) come again after the restart as the same request: Call-ID, From tag, CSeq', async () => {
    let parley = await startParley();
    try {
      const [grace, heidi] = await Promise.all([ua('grace', parley.udp), ua('heidi', parley.udp)]);
      assert.equal((await grace.register()).status, 200);
      const created = grace.waitForRequest((m) => m.body.toString().startsWith('created room'));
      assert.equal((await grace.message('sip:chat-manager@localhost', '#create chat-resend')).status, 200);
      await created;
      const joined = grace.waitForRequest((m) => m.body.toString().includes('has joined'));
      assert.equal((await heidi.message('sip:chat-resend@localhost', '#join')).status, 200);
      await joined;
      assert.equal((await grace.register(0)).status, 200);
      assert.equal((await heidi.message('sip:grace@localhost', 'stored for grace')).status, 202);

      const identity = (m: SipMessage) => ({ callId: m.callId, fromTag: m.from.params.get('tag'), cseq: m.get('cseq') });
      // grace takes it and never confirms: Parley cannot know she has it. (Her device's messages go
      // in order, so the room post comes in a second round, once nothing waits before it.)
      grace.answer = null;
      const stored = grace.waitForRequest((m) => m.body.toString() === 'stored for grace');
      assert.equal((await grace.register()).status, 200);
      const firstStored = await stored;
      grace.answer = 200;
      const storedAgain = grace.waitForRequest((m) => m !== firstStored && m.body.toString() === 'stored for grace', 15_000);
      parley = await crashAndRestart(parley);
      assert.equal((await grace.register()).status, 200);
      assert.deepEqual(identity(await storedAgain), identity(firstStored), 'the stored message came again as another request');

      grace.answer = null;
      const posted = grace.waitForRequest((m) => m.body.toString().includes('posted to the room'));
      assert.equal((await heidi.register()).status, 200);
      assert.equal((await heidi.message('sip:chat-resend@localhost', 'posted to the room')).status, 200);
      const firstPost = await posted;
      grace.answer = 200;
      const postedAgain = grace.waitForRequest((m) => m !== firstPost && m.body.toString().includes('posted to the room'), 15_000);
      parley = await crashAndRestart(parley);
      assert.equal((await grace.register()).status, 200);
      assert.deepEqual(identity(await postedAgain), identity(firstPost), 'the room post came again as another request');
    } finally {
      await parley.stop();
    }
  });

  test('kill -9 in the middle of a burst of MESSAGEs: every one acknowledged with 202 is delivered, once', async () => {
    let parley = await startParley();
    const socket = await bindUdp();
    try {
      const erin = await ua('erin', parley.udp);
      assert.equal((await erin.register()).status, 200);
      assert.equal((await erin.register(0)).status, 200);

      // Raw requests without retransmission: nothing keeps running after the kill.
      const port = socket.address().port;
      const bodies = new Map<string, string>();
      const acked = new Set<string>();
      socket.on('message', (data: Buffer) => {
        const response = lenient(data);
        if (!response || response.isRequest) return;
        try {
          const body = bodies.get(response.via.branch ?? '');
          if (body !== undefined && response.status === 202) acked.add(body);
        } catch {
          // not one of ours
        }
      });
      const total = 60;
      for (let i = 0; i < total; i++) {
        const body = `burst ${i} ${randomToken(6)}`;
        const message = request('MESSAGE', 'sip:erin@localhost', port, { from: '<sip:frank@localhost>', to: '<sip:erin@localhost>', body });
        bodies.set(message.via.branch!, body);
        socket.send(message.toBuffer(), parley.udp.port, parley.udp.host);
        if (i % 10 === 9) await sleep(1);
      }
      // Kill as soon as a part is acknowledged, while the rest is still being written.
      const deadline = Date.now() + 15_000;
      while (acked.size < 15 && Date.now() < deadline) await sleep(1);
      assert.ok(acked.size > 0, 'no MESSAGE of the burst was acknowledged');
      const ackedAtKill = new Set(acked);

      parley = await crashAndRestart(parley);
      // Answers that were on their way when the process died may still arrive: they count as well.
      const mustArrive = new Set([...ackedAtKill, ...acked]);

      const received: string[] = [];
      erin.received.length = 0;
      assert.equal((await erin.register()).status, 200);
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        const got = erin.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
        received.splice(0, received.length, ...got);
        if ([...mustArrive].every((b) => got.includes(b))) break;
        await sleep(50);
      }
      await sleep(300); // anything delivered twice would come now
      const final = erin.received.filter((m) => m.method === 'MESSAGE');
      const texts = final.map((m) => m.body.toString());
      const missing = [...mustArrive].filter((b) => !texts.includes(b));
      assert.deepEqual(missing, [], `acknowledged (202) but not delivered after kill -9 (${mustArrive.size} acknowledged, ${texts.length} delivered)`);
      const sentBodies = new Set(bodies.values());
      assert.deepEqual(texts.filter((t) => !sentBodies.has(t)), [], 'delivered something that was never sent');
      assert.equal(new Set(texts).size, texts.length, `delivered twice: ${texts.filter((t, i) => texts.indexOf(t) !== i).join(', ')}`);
      for (const m of final) assert.ok(m.get('date'), 'a stored message without Date');
      console.log(`# burst: ${total} sent, ${ackedAtKill.size} acknowledged when killed, ${mustArrive.size} in all, ${texts.length} delivered after restart`);
    } finally {
      closeUdp(socket);
      await parley.stop();
    }
  });
});
