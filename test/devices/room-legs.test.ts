// A room post to a member with devices known by +sip.instance is written once: the outbox keeps it
// until the member's leg is done, and it is stored for the member's devices only when some did not
// take it (away, not answering), each of which gets it when it registers again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { command } from '../imc/room-helpers.js';
import { newInstance, registerDevice } from './devices.js';
import { eventually } from '../support/eventually.js';
import { createResponse } from '../../src/sip/index.js';

let s: TestServer;
const agent = udpAgents();
before(async () => {
  s = await startServer({ relay: { accept_timeout: 1 } as never });
});
after(() => s.stop());

/** The "message stored" lines logged for `aor` since log line `from`. */
const storedLines = (aor: string, from: number) => s.logs.slice(from).filter((line) => line.includes('"msg":"message stored') && line.includes(`"aor":"${aor}"`));
const posts = (ua: { received: Array<{ method: string; body: Buffer }> }, text: string) => ua.received.filter((m) => m.method === 'MESSAGE' && m.body.toString().includes(text)).length;

test('a room post reaches every device of a member, stored only for the one that was away', async () => {
  const bob = await agent('bob', s.udp);
  assert.equal((await bob.register()).status, 200);
  assert.match(await command(bob, 'sip:chat-manager@localhost', '#create chat-devs'), /created room/);
  const phone = await agent('amy', s.udp);
  const laptop = await agent('amy', s.udp);
  const phoneInstance = newInstance();
  const laptopInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  assert.match(await command(laptop, 'sip:chat-devs@localhost', '#join'), /you joined/);
  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);

  let from = s.logs.length;
  const toLaptop = laptop.waitForRequest((m) => m.body.toString().includes('while the phone is away'));
  assert.equal((await bob.message('sip:chat-devs@localhost', 'while the phone is away')).status, 200);
  await toLaptop;
  const toPhone = phone.waitForRequest((m) => m.body.toString().includes('while the phone is away'));
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  await toPhone;
  const stored = storedLines('amy@localhost', from);
  assert.equal(stored.length, 1, stored.join('\n'));
  assert.match(stored[0]!, /"devices":1\b/, 'stored for the phone only');
  // Until the phone's taking it is recorded, its queue is being delivered: a post meanwhile waits behind it, stored.
  await eventually(async () => (await s.server.store.deliveries.pendingCounts('amy@localhost')).every(({ pending }) => pending === 0), 'the phone\'s backlog delivered');

  from = s.logs.length;
  const both = [phone, laptop].map((ua) => ua.waitForRequest((m) => m.body.toString().includes('both here')));
  assert.equal((await bob.message('sip:chat-devs@localhost', 'both here')).status, 200);
  await Promise.all(both);
  assert.deepEqual(storedLines('amy@localhost', from), [], 'taken by every device: not stored');

  // Registering again brings nothing twice.
  const next = laptop.waitForRequest((m) => m.body.toString().includes('last'));
  assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
  assert.equal((await bob.message('sip:chat-devs@localhost', 'last')).status, 200);
  await next;
  for (const [ua, text] of [[phone, 'while the phone is away'], [laptop, 'while the phone is away'], [phone, 'both here'], [laptop, 'both here']] as const) {
    assert.equal(posts(ua, text), 1, `${text} once`);
  }
});

test('a device that answers a room post 503 gets it again, before the next post, when it registers again', async () => {
  const bob = await agent('bob', s.udp);
  assert.equal((await bob.register()).status, 200);
  assert.match(await command(bob, 'sip:chat-manager@localhost', '#create chat-busy'), /created room/);
  const tablet = await agent('ann', s.udp);
  const instance = newInstance();
  assert.equal((await registerDevice(tablet, { instance })).status, 200);
  assert.match(await command(tablet, 'sip:chat-busy@localhost', '#join'), /you joined/);

  tablet.answer = 503;
  const refused = tablet.waitForRequest((m) => m.body.toString().includes('busy now'));
  assert.equal((await bob.message('sip:chat-busy@localhost', 'busy now')).status, 200);
  await refused;
  tablet.answer = 200;
  const again = tablet.waitForRequest((m) => m.body.toString().includes('busy now'));
  assert.equal((await registerDevice(tablet, { instance })).status, 200);
  await again;
  const later = tablet.waitForRequest((m) => m.body.toString().includes('after'));
  assert.equal((await bob.message('sip:chat-busy@localhost', 'after')).status, 200);
  await later;
  const bodies = tablet.received.filter((m) => m.method === 'MESSAGE' && /busy now|after/.test(m.body.toString())).map((m) => m.body.toString().replace(/^<\w+> /, ''));
  assert.deepEqual(bodies, ['busy now', 'busy now', 'after']);
});

test('a room\'s reply to a member is written once too: not stored when every device took it, stored for the away one only', async () => {
  const phone = await agent('ben', s.udp);
  const laptop = await agent('ben', s.udp);
  const phoneInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: newInstance() })).status, 200);
  const from = s.logs.length;
  const toPhone = phone.waitForRequest((m) => m.body.toString().includes('created room'));
  assert.match(await command(laptop, 'sip:chat-manager@localhost', '#create chat-notes'), /created room/);
  await toPhone;

  assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
  assert.match(await command(laptop, 'sip:chat-manager@localhost', '#create chat-notes-2'), /created room/);
  const later = phone.waitForRequest((m) => m.body.toString().includes('chat-notes-2'));
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  await later;
  const stored = storedLines('ben@localhost', from);
  assert.equal(stored.length, 1, stored.join('\n'));
  assert.match(stored[0]!, /"devices":1\b/, 'the second reply, for the phone only');
});

test('a device that does not answer a room post within relay.accept_timeout gets a row for it, gone once it answers', async () => {
  const bob = await agent('bob', s.udp);
  assert.equal((await bob.register()).status, 200);
  assert.match(await command(bob, 'sip:chat-manager@localhost', '#create chat-slow'), /created room/);
  const phone = await agent('cal', s.udp);
  const laptop = await agent('cal', s.udp);
  const phoneInstance = newInstance();
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  assert.equal((await registerDevice(laptop, { instance: newInstance() })).status, 200);
  assert.match(await command(laptop, 'sip:chat-slow@localhost', '#join'), /you joined/);

  phone.answer = null;
  const toPhone = phone.waitForRequest((m) => m.body.toString().includes('phone asleep'));
  const toLaptop = laptop.waitForRequest((m) => m.body.toString().includes('phone asleep'));
  assert.equal((await bob.message('sip:chat-slow@localhost', 'phone asleep')).status, 200);
  const [held] = await Promise.all([toPhone, toLaptop]);
  const waiting = async () => {
    const rows = await s.server.store.deliveries.pendingFor('cal@localhost', phoneInstance, Date.now(), undefined, 100);
    return rows.some(({ message }) => message.body.toString().includes('phone asleep'));
  };
  await eventually(waiting, 'the post stored for the phone while it still does not answer');
  phone.sendRaw(createResponse(held, 200).toBuffer());
  await eventually(async () => !(await waiting()), 'the phone\'s row gone once it took the post');
  phone.answer = 200;
  assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
  const next = phone.waitForRequest((m) => m.body.toString().includes('next'));
  assert.equal((await bob.message('sip:chat-slow@localhost', 'next')).status, 200);
  await next;
  assert.equal(posts(phone, 'phone asleep'), 1, 'taken once');
});
