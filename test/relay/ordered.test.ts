// Ordered deliveries, pipelined: a recipient gets its next MESSAGE once the previous one is
// written, up to a window of them unanswered, still in order; offline storing and outcomes in order.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { OrderedDeliveries, Outbox, jsonCodec, type DeliveryTurn, type LegContext, type LegOutcome } from '../../src/relay/index.js';
import type { OutboxProgress, OutboxStore } from '../../src/store/index.js';
import { createResponse, type SipMessage } from '../../src/sip/index.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { command } from '../imc/room-helpers.js';

/** Lets every promise callback and I/O callback queued so far run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Works that say they have sent with `window`, then wait until `finish[index]` is called (before
 * they start, too); then, with `answering`, say they are answered before they wait for their turn.
 */
function gatedWorks(count: number, window: number, answering = false) {
  const started: number[] = [];
  const afterPrevious: number[] = [];
  const finish: Array<(error?: Error) => void> = [];
  const gates = Array.from({ length: count }, (_, index) => new Promise<void>((resolve, reject) => (finish[index] = (error) => (error ? reject(error) : resolve()))));
  const works = gates.map((gate, index) => async (turn: DeliveryTurn) => {
    started.push(index);
    turn.sent(window);
    await gate;
    if (answering) turn.answered();
    await turn.previous;
    afterPrevious.push(index);
  });
  return { works, started, afterPrevious, finish };
}

describe('OrderedDeliveries', () => {
  test('works that say they have sent run up to the window at once, in order, and end in order', async () => {
    const queues = new OrderedDeliveries(() => assert.fail('no work fails'));
    const { works, started, afterPrevious, finish } = gatedWorks(10, 4);
    for (const work of works) queues.add('bob', work);
    await settle();
    assert.deepEqual(started, [0, 1, 2, 3], 'four under way, the fifth waits');
    assert.equal(queues.underWay('bob'), 4);
    // The last of the window is answered first: it still ends after the earlier ones.
    finish[3]!();
    await settle();
    assert.deepEqual(afterPrevious, []);
    assert.deepEqual(started, [0, 1, 2, 3], 'a work that is done but waits for earlier ones still counts');
    finish[0]!();
    await settle();
    assert.deepEqual(afterPrevious, [0]);
    assert.deepEqual(started, [0, 1, 2, 3, 4]);
    for (let index = 1; index < 10; index++) finish[index]!();
    await queues.drain();
    assert.deepEqual(afterPrevious, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(queues.underWay('bob'), 0);
  });

  test('a work answered while an earlier one is not makes room in the window: the next starts, and they still end in order', async () => {
    const queues = new OrderedDeliveries(() => assert.fail('no work fails'));
    const { works, started, afterPrevious, finish } = gatedWorks(8, 4, true);
    for (const work of works) queues.add('bob', work);
    await settle();
    assert.deepEqual(started, [0, 1, 2, 3]);
    // The first is not answered (its request lost, say): the ones behind it are, and more go out.
    for (const index of [1, 2, 3]) finish[index]!();
    await settle();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(queues.underWay('bob'), 4);
    assert.deepEqual(afterPrevious, [], 'none ends before the first');
    for (const index of [4, 5, 6, 7]) finish[index]!();
    await settle();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(afterPrevious, []);
    finish[0]!();
    await queues.drain();
    assert.deepEqual(afterPrevious, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(queues.underWay('bob'), 0);
    // The lane went with its last work: the next one starts at once, in a lane of its own.
    const next = gatedWorks(1, 4, true);
    queues.add('bob', next.works[0]!);
    await settle();
    assert.deepEqual(next.started, [0]);
    next.finish[0]!();
    await queues.drain();
    assert.deepEqual(next.afterPrevious, [0]);
  });

  test('a work that fails mid-window is reported, and the ones behind it go on in order', async () => {
    const failures: Array<{ error: unknown; recipient: string }> = [];
    const queues = new OrderedDeliveries((error, recipient) => failures.push({ error, recipient }));
    const { works, afterPrevious, finish } = gatedWorks(6, 3);
    for (const work of works) queues.add('bob', work);
    await settle();
    finish[1]!(new Error('leg 1 broke'));
    for (const index of [2, 0, 3, 4, 5]) finish[index]!();
    await queues.drain();
    assert.deepEqual(afterPrevious, [0, 2, 3, 4, 5]);
    assert.deepEqual(failures.map(({ error, recipient }) => `${recipient}: ${(error as Error).message}`), ['bob: leg 1 broke']);
  });

  test('a work that never says it has sent runs alone: the next starts once it is done', async () => {
    const queues = new OrderedDeliveries(() => assert.fail('no work fails'));
    const started: number[] = [];
    const finish: Array<() => void> = [];
    for (let index = 0; index < 3; index++) {
      queues.add('xmpp', async () => {
        started.push(index);
        await new Promise<void>((resolve) => (finish[index] = resolve));
      });
    }
    await settle();
    assert.deepEqual(started, [0]);
    finish[0]!();
    await settle();
    assert.deepEqual(started, [0, 1]);
    finish[1]!();
    await settle();
    finish[2]!();
    await queues.drain();
    assert.deepEqual(started, [0, 1, 2]);
  });

  test('afterPrevious runs at once when nothing is before the work, and after the earlier works otherwise', async () => {
    const queues = new OrderedDeliveries(() => assert.fail('no work fails'));
    const order: string[] = [];
    let release!: () => void;
    queues.add('bob', async (turn) => {
      const result = turn.afterPrevious(() => 'first, at once');
      assert.equal(result, 'first, at once', 'the result itself, not a promise of it');
      order.push(result);
      turn.sent(4);
      await new Promise<void>((resolve) => (release = resolve));
      order.push('first done');
    });
    let second: unknown;
    queues.add('bob', (turn) => {
      second = turn.afterPrevious(() => {
        order.push('second, after the first');
        return 2;
      });
    });
    await settle();
    assert.ok(second instanceof Promise, 'the first has not ended: the second waits for it');
    assert.deepEqual(order, ['first, at once']);
    release();
    assert.equal(await second, 2);
    await queues.drain();
    assert.deepEqual(order, ['first, at once', 'first done', 'second, after the first']);
  });

  test('works done as they start (returning no promise) run in order, a long lane of them as a loop', async () => {
    const queues = new OrderedDeliveries(() => assert.fail('no work fails'));
    let release!: () => void;
    queues.add('xmpp', () => new Promise<void>((resolve) => (release = resolve)));
    const ran: number[] = [];
    // Deeper than the stack allows as a recursion.
    const count = 200_000;
    for (let index = 0; index < count; index++) queues.add('xmpp', () => void ran.push(index));
    await settle();
    assert.deepEqual(ran, []);
    release();
    await queues.drain();
    assert.equal(ran.length, count);
    assert.ok(ran.every((value, index) => value === index), 'in the order queued');
    assert.equal(queues.underWay('xmpp'), 0);
  });

  test('a recipient whose works hang holds up only itself', async () => {
    const queues = new OrderedDeliveries(() => assert.fail('no work fails'));
    const slow = gatedWorks(5, 2);
    for (const work of slow.works) queues.add('slow', work);
    const fast: number[] = [];
    for (let index = 0; index < 5; index++) {
      queues.add('fast', async (turn) => {
        turn.sent(2);
        await turn.previous;
        fast.push(index);
      });
    }
    await settle();
    await settle();
    assert.deepEqual(fast, [0, 1, 2, 3, 4]);
    assert.deepEqual(slow.started, [0, 1]);
    for (const finish of slow.finish) finish();
    await queues.drain();
    assert.deepEqual(slow.afterPrevious, [0, 1, 2, 3, 4]);
  });
});

/** An outbox store with nothing pending at start that numbers rows in order and keeps the progress recorded. */
function recordingStore(): { store: OutboxStore; progress: OutboxProgress[] } {
  const progress: OutboxProgress[] = [];
  let ids = 0;
  const store: OutboxStore = {
    add: () => Promise.resolve(++ids),
    record: (written) => {
      progress.push(written);
      return Promise.resolve();
    },
    pending: () => Promise.resolve({ records: [], cursors: new Map() }),
  };
  return { store, progress };
}

test('outbox: a leg left pending at stop keeps the later legs of its recipient pending too, though they were delivered', async () => {
  const { store, progress } = recordingStore();
  const delivered: string[] = [];
  const delivery = {
    // The first can never be stored (the store is unavailable for it); the others reach bob.
    deliver: (text: string, _recipient: string, _at: number, { turn }: LegContext): Promise<LegOutcome> => {
      turn.sent(4);
      if (text === 'first') return Promise.resolve('retry');
      delivered.push(text);
      return Promise.resolve('done');
    },
  };
  const outbox = new Outbox(store, 'test', jsonCodec<string>(), delivery, new OrderedDeliveries(() => assert.fail('no leg fails')), { maxMessages: 10, maxPerRecipient: 10 }, pino({ enabled: false }));
  await outbox.start();
  for (const text of ['first', 'second', 'third']) await outbox.submit(text, ['bob@localhost']);
  await eventually(() => delivered.length === 2, 'second and third delivered while first waits');
  await outbox.stop();
  assert.deepEqual(delivered, ['second', 'third']);
  // Nothing marked: a cursor for bob past the first would lose it at the next start.
  assert.deepEqual(progress.flatMap((written) => [...written.finished, ...written.cursors.map((cursor) => `${cursor.recipient}:${cursor.doneId}`)]), []);
  assert.equal(outbox.size, 3, 'all three still pending, to be delivered again at the next start');
});

test('outbox: legs delivered at once (an outcome, not a promise) are delivered in order and marked done', async () => {
  const { store, progress } = recordingStore();
  const delivered: string[] = [];
  const delivery = {
    deliver: (text: string): LegOutcome => {
      delivered.push(text);
      return 'done';
    },
  };
  const outbox = new Outbox(store, 'test', jsonCodec<string>(), delivery, new OrderedDeliveries(() => assert.fail('no leg fails')), { maxMessages: 10, maxPerRecipient: 10 }, pino({ enabled: false }));
  await outbox.start();
  await Promise.all(['one', 'two', 'three'].map((text) => outbox.submit(text, ['xmpp'])));
  await outbox.stop();
  assert.deepEqual(delivered, ['one', 'two', 'three']);
  assert.deepEqual(progress.flatMap((written) => written.finished), [1, 2, 3], 'every row done for its one recipient');
  assert.equal(outbox.size, 0);
});

test("outbox: a batch's legs start once the store has told the whole batch committed, so its disk sync is not held back by them", async () => {
  const events: string[] = [];
  const adds: Array<{ committed?: (id: number) => void; resolve: (id: number) => void }> = [];
  const store: OutboxStore = {
    add: (_record, committed) => new Promise((resolve) => adds.push({ committed, resolve })),
    record: () => Promise.resolve(),
    pending: () => Promise.resolve({ records: [], cursors: new Map() }),
  };
  const delivery = {
    deliver: (text: string): LegOutcome => {
      events.push(`delivered ${text}`);
      return 'done';
    },
  };
  const outbox = new Outbox(store, 'test', jsonCodec<string>(), delivery, new OrderedDeliveries(() => assert.fail('no leg fails')), { maxMessages: 10, maxPerRecipient: 10 }, pino({ enabled: false }));
  await outbox.start();
  const submitted = ['one', 'two'].map((text) => outbox.submit(text, ['xmpp']));
  await eventually(() => adds.length === 2 || undefined, 'both rows asked for');
  // One batch, as group commit tells it: every row committed, then the sync starts, then it is done.
  adds.forEach(({ committed }, index) => committed!(index + 1));
  events.push('sync started');
  adds.forEach(({ resolve }, index) => resolve(index + 1));
  await Promise.all(submitted);
  await outbox.stop();
  assert.deepEqual(events, ['sync started', 'delivered one', 'delivered two']);
});

describe('room posts to one member, pipelined', () => {
  let s: TestServer;
  let alice: TestUA;
  let carol: TestUA;
  const agents: TestUA[] = [];

  before(async () => {
    s = await startServer({ relay: { delivery_window: 4, delivery_window_udp: 2 }, imc: { history: 0, max_rate: 1000, rate_burst: 1000 } });
    alice = await agent('alice', 'udp');
    carol = await agent('carol', 'udp');
  });
  after(async () => {
    for (const ua of agents) ua.close();
    await s.stop();
  });

  async function agent(user: string, proto: 'udp' | 'tcp'): Promise<TestUA> {
    const ua = await TestUA.create({ user, proto, server: proto === 'udp' ? s.udp : s.tcp });
    agents.push(ua);
    assert.equal((await ua.register()).status, 200);
    return ua;
  }

  /** A room of alice's with these members. */
  async function roomWith(name: string, members: TestUA[]): Promise<string> {
    assert.match(await command(alice, 'sip:chat-manager@localhost', `#create chat-${name}`), /created room/);
    const room = `sip:chat-${name}@localhost`;
    for (const member of members) {
      const told = member.waitForRequest((m) => m.body.toString().startsWith('*** alice added you'));
      assert.match(await command(alice, room, `#add ${member.options.user}`), /^added /);
      await told;
    }
    return room;
  }

  /** The posts of `room` a member received, in arrival order. */
  const posts = (member: TestUA, room: string): SipMessage[] =>
    member.received.filter((m) => m.method === 'MESSAGE' && m.get('from')!.includes(room) && m.body.toString().startsWith('<alice> '));
  const bodies = (messages: SipMessage[]) => messages.map((m) => m.body.toString());
  const numbered = (count: number) => Array.from({ length: count }, (_, index) => `<alice> post ${index + 1}`);
  const answer = (member: TestUA, request: SipMessage, status: number) => member.sendRaw(createResponse(request, status).toBuffer());

  /**
   * Alice posts `count` messages (each answered 200 once it is queued for every member), while
   * `member` answers none: it gets as many as its window, no more. A MESSAGE straight from carol,
   * sent once the posts are queued, arrives behind anything the room sent before it.
   */
  async function postWhileHeld(room: string, member: TestUA, count: number, window: number): Promise<void> {
    member.answer = null;
    for (let index = 1; index <= count; index++) assert.equal((await alice.message(room, `post ${index}`)).status, 200);
    await eventually(() => posts(member, room).length >= window, `${window} posts at ${member.options.user} before any is answered`);
    const marker = member.waitForRequest((m) => m.body.toString() === 'marker');
    const markerSent = carol.message(member.aor, 'marker');
    answer(member, await marker, 200);
    assert.equal((await markerSent).status, 200);
    assert.deepEqual(bodies(posts(member, room)), numbered(window), 'the window, in order, and nothing more');
  }

  for (const { proto, window } of [{ proto: 'tcp', window: 4 }, { proto: 'udp', window: 2 }] as const) {
    test(`over ${proto}: ${window} posts go out unanswered, in order, and the rest follow as they are answered`, async () => {
      const bob = await agent(`bob-${proto}`, proto);
      const room = await roomWith(proto, [bob]);
      await postWhileHeld(room, bob, 20, window);
      // Answered one by one as they come, the rest arrive, all in order.
      for (let answered = 0; answered < 20; answered++) answer(bob, await eventually(() => posts(bob, room)[answered], `post ${answered + 1} at bob`), 200);
      bob.answer = 200;
      assert.deepEqual(bodies(posts(bob, room)), numbered(20));
    });
  }

  test('over udp: a post its member has not answered holds up only itself, not the posts behind it', async () => {
    const gina = await agent('gina', 'udp');
    const room = await roomWith('lost', [gina]);
    const post = (number: number) => eventually(() => posts(gina, room).find((m) => m.body.toString() === `<alice> post ${number}`), `post ${number} at gina`);
    gina.answer = null;
    for (let index = 1; index <= 4; index++) assert.equal((await alice.message(room, `post ${index}`)).status, 200);
    const first = await post(1);
    // The first stays unanswered, as if it were lost on the way; the second, of the same window of 2, is answered.
    answer(gina, await post(2), 200);
    answer(gina, await post(3), 200);
    answer(gina, await post(4), 200);
    const failedBefore = s.server.rooms!.stats.deliveriesFailed;
    answer(gina, first, 200);
    gina.answer = 200;
    await eventually(() => s.server.rooms!.pendingPosts === 0, 'every post delivered');
    assert.equal(s.server.rooms!.stats.deliveriesFailed, failedBefore);
    assert.deepEqual(bodies(posts(gina, room)), numbered(4));
  });

  test('a member who answers nothing does not hold up the others', async () => {
    const dave = await agent('dave', 'tcp');
    const erin = await agent('erin', 'tcp');
    const room = await roomWith('slow', [erin, dave]);
    await postWhileHeld(room, dave, 12, 4);
    await eventually(() => posts(erin, room).length === 12, 'every post at erin');
    assert.deepEqual(bodies(posts(erin, room)), numbered(12));
    dave.answer = 200;
    for (const held of posts(dave, room)) answer(dave, held, 200);
    await eventually(() => posts(dave, room).length === 12, 'the rest at dave once answered');
    assert.deepEqual(bodies(posts(dave, room)), numbered(12));
  });

  test('posts refused mid-window (480) are stored offline in the order they were posted', async () => {
    const frank = await agent('frank', 'tcp');
    const room = await roomWith('offline', [frank]);
    const storedBefore = s.server.relay.stats.stored;
    await postWhileHeld(room, frank, 6, 4);
    const [first, second, third, fourth] = posts(frank, room);
    // The later ones are refused first: each is stored only once the earlier ones are.
    for (const held of [second, fourth, third, first]) answer(frank, held!, 480);
    // frank's device is remembered: what it refused waits for it, and the later posts wait behind
    // it in the store rather than go out before it. Whatever is sent to it meanwhile it refuses too.
    frank.answer = 480;
    await eventually(() => s.server.relay.stats.stored - storedBefore === 6, 'six posts stored offline');
    frank.answer = 200;
    const seen = frank.received.length;
    assert.equal((await frank.register()).status, 200);
    const delivered = () => bodies(frank.received.slice(seen).filter((m) => m.method === 'MESSAGE'));
    await eventually(() => delivered().length >= 6, 'the six stored posts delivered at the new registration');
    assert.deepEqual(delivered(), numbered(6));
  });
});
