// A device that stays registered through a short outage: the message it missed (sent, not
// answered: stored for it) reaches it with the next message for its user, before that one, without
// the device registering again, also when the missed ones filled the user's mailbox, or, when none
// comes, on a timer (relay.redelivery_backoff); a device that stays silent is sent what waits for it
// again after a growing back-off, not with each new message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents, type TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { movableClock, newInstance, registerDevice } from './devices.js';

// A request nothing answers is given up after a second (relay.fork_timeout).
const SHORT = { accept_timeout: 1, fork_timeout: 1 };
let roomy: TestServer;
/** Room for one message waiting per user. */
let tight: TestServer;
/** A new message starts no redelivery to a device within an hour of one it was not reached with. */
let patient: TestServer;
/** The default relay.redelivery_backoff, 30 s; its SIP timers' clock moved by hand. */
let backingOff: TestServer;
let clock: ReturnType<typeof movableClock>;
const agent = udpAgents();
before(async () => {
  roomy = await startServer({ relay: SHORT as never });
  tight = await startServer({ relay: SHORT as never, offline: { max_per_user: 1 } as never });
  patient = await startServer({ relay: { ...SHORT, redelivery_backoff: 3600 } as never });
  backingOff = await startServer({ relay: SHORT as never });
  clock = movableClock(backingOff.server.timers);
});
after(async () => {
  await roomy.stop();
  await tight.stop();
  await patient.stop();
  await backingOff.stop();
});

/** The bodies of the MESSAGEs `ua` received from its `from`th request on, in the order they came. */
const bodiesSince = (ua: TestUA, from: number) => ua.received.slice(from).filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());

/**
 * `user`'s phone on `s`, registered (with +sip.instance or, `plain`, a softphone without one),
 * misses `missed` from a sender: nothing comes back from it until Parley gives the request up. It
 * is still silent. `since`: how many requests it had received before `missed`.
 */
async function phoneMissedOne(s: TestServer, user: string, plain: boolean, missed: string) {
  const phone = await agent(user, s.udp);
  const sender = await agent(`${user}-friend`, s.udp);
  const instance = newInstance();
  assert.equal((plain ? await phone.register() : await registerDevice(phone, { instance })).status, 200);
  const aor = `sip:${user}@localhost`;
  assert.equal((await sender.message(aor, 'before')).status, 200);
  phone.answer = null;
  const since = phone.received.length;
  assert.equal((await sender.message(aor, missed)).status, 202, 'stored for the phone');
  const device = plain ? phone.contact.replace(/;.*/, '') : instance;
  await eventually(() => s.logs.some((line) => line.includes('nothing came back from the device') && line.includes(device)), 'the phone\'s request given up');
  return { phone, sender, aor, device, instance, since };
}

/**
 * `phone` of `device`, silent on backingOff, is sent the first message it missed a `count`th time
 * (counting from `since`, the first live): nothing comes back within fork_timeout, that drain is given up.
 */
async function missedAgain(phone: TestUA, since: number, device: string, count: number) {
  await eventually(() => bodiesSince(phone, since).length === count, `the first message sent to the phone a ${count}th time`);
  clock.advance(1000);
  const failures = () => backingOff.logs.filter((line) => line.includes('delivery to a device failed') && line.includes(device)).length;
  await eventually(() => failures() === count - 1, 'that drain given up');
}

for (const plain of [false, true]) {
  const kind = plain ? 'a softphone without +sip.instance' : 'a phone with +sip.instance';

  test(`${kind} that missed a message and answers again gets it with the next one, first, without registering again`, async () => {
    const { phone, sender, aor } = await phoneMissedOne(roomy, plain ? 'bob' : 'cal', plain, 'missed');
    phone.answer = 200;
    const back = phone.received.length;
    const next = await sender.message(aor, 'next');
    assert.ok(next.status >= 200 && next.status < 300, `the next message accepted, not ${next.status} ${next.reason}`);
    await eventually(() => bodiesSince(phone, back).includes('next'), 'the next message reaches the phone');
    assert.deepEqual(bodiesSince(phone, back), ['missed', 'next']);
    assert.equal((await sender.message(aor, 'third')).status, 200, 'nothing waits for the phone any more: it takes the third at once');
    assert.deepEqual(bodiesSince(phone, back), ['missed', 'next', 'third']);
  });

  test(`${kind} that missed a message and answers again gets it on a timer, without registering again or a new message`, async () => {
    const { phone, sender, aor } = await phoneMissedOne(backingOff, plain ? 'ida' : 'jon', plain, 'missed');
    phone.answer = 200;
    const back = phone.received.length;
    // Time goes by, a second at each look.
    await eventually(() => {
      clock.advance(1000);
      return bodiesSince(phone, back).includes('missed');
    }, 'the missed message reaches the phone');
    assert.deepEqual(bodiesSince(phone, back), ['missed']);
    assert.equal((await sender.message(aor, 'next')).status, 200, 'nothing waits for the phone any more: it takes the next message at once');
  });

  test(`${kind} whose missed messages filled the mailbox gets them when the next one is refused, and the messages after, without registering again`, async () => {
    const { phone, sender, aor } = await phoneMissedOne(tight, plain ? 'dan' : 'eva', plain, 'missed');
    phone.answer = 200;
    const back = phone.received.length;
    const refused = await sender.message(aor, 'refused');
    assert.equal(refused.status, 486, 'the mailbox is full while the missed message waits');
    await eventually(() => bodiesSince(phone, back).includes('missed'), 'the missed message reaches the phone');
    const user = aor.slice('sip:'.length);
    await eventually(async () => (await tight.server.store.deliveries.pendingCounts(user)).length === 0, 'nothing waits for the phone');
    const later = await sender.message(aor, 'later');
    assert.ok(later.status >= 200 && later.status < 300, `the later message accepted, not ${later.status} ${later.reason}`);
    await eventually(() => bodiesSince(phone, back).includes('later'), 'the later message reaches the phone');
    assert.deepEqual(bodiesSince(phone, back), ['missed', 'later']);
  });
}

test('a registered phone that stays silent is sent what waits for it again on a timer, after relay.redelivery_backoff, then twice as long; back, it gets it all in order without registering again or a new message', async () => {
  const { phone, sender, aor, device, since } = await phoneMissedOne(backingOff, 'fin', false, 'one');
  // Still silent: the next message starts a drain (the first message, sent again), which fails.
  assert.equal((await sender.message(aor, 'two')).status, 202);
  await missedAgain(phone, since, device, 2);
  clock.advance(30_000);
  await missedAgain(phone, since, device, 3);
  phone.answer = 200;
  clock.advance(30_000);
  assert.equal((await sender.message(aor, 'three')).status, 202, 'stored behind what waits: no drain 30 s after the second one failed, nor with a new message');
  assert.deepEqual(bodiesSince(phone, since), ['one', 'one', 'one'], 'sent once live, then by the drain and its retry; nothing since');
  clock.advance(30_000);
  await eventually(() => bodiesSince(phone, since).includes('three'), 'what waits reaches the phone 60 s after the second drain failed');
  assert.deepEqual(bodiesSince(phone, since), ['one', 'one', 'one', 'one', 'two', 'three']);
  assert.equal((await sender.message(aor, 'four')).status, 200, 'nothing waits for the phone any more: it takes the next message at once');
});

test('a registered phone that stays silent is sent what waits for it again at least once every 10 minutes, however long it stays silent', async () => {
  const { phone, device, since } = await phoneMissedOne(backingOff, 'kim', false, 'one');
  let sent = 1;
  // After the message it missed, then after each drain it was not reached with.
  for (const backoff of [30, 30, 60, 120, 240, 480, 600, 600]) {
    clock.advance(backoff * 1000);
    await missedAgain(phone, since, device, ++sent);
  }
});

test('a registered phone that stays silent is not sent what waits for it again with each new message within relay.redelivery_backoff; its registration brings it at once', async () => {
  const { phone, sender, aor, device, instance, since } = await phoneMissedOne(patient, 'gus', false, 'one');
  // Still silent: this message starts a drain (the first message, sent again), which fails.
  assert.equal((await sender.message(aor, 'two')).status, 202);
  await eventually(() => patient.logs.some((line) => line.includes('delivery to a device failed') && line.includes(device)), 'the drain given up');
  phone.answer = 200;
  // A drain started by it would have the phone take it through its queue: 200.
  assert.equal((await sender.message(aor, 'three')).status, 202, 'stored behind what waits: no drain within the back-off after one the phone was not reached with');
  const back = phone.received.length;
  assert.deepEqual(bodiesSince(phone, since), ['one', 'one'], 'sent once live, once by the drain; nothing since');
  const all = eventually(() => bodiesSince(phone, back).includes('three'), 'what waits reaches the phone');
  assert.equal((await registerDevice(phone, { instance })).status, 200);
  await all;
  assert.deepEqual(bodiesSince(phone, back), ['one', 'two', 'three']);
});
