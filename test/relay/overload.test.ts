// What senders see when Parley's UDP receive buffer fills (relay.overload_backlog): the backlog
// reading is set here, as the transport would have sampled it from the kernel.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createResponse } from '../../src/sip/index.js';
import { startServer, type ConfigPatch } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { RELAY } from '../../src/relay/plugin.js';

/** A server whose receive backlog reads `backlog.share`, with Alice and a registered Bob. */
async function overloadable(t: TestContext, patch: ConfigPatch = {}) {
  const s = await startServer(patch);
  const backlog = { share: 0 };
  t.mock.getter(s.server.transports.receiveBacklog, 'share', () => backlog.share);
  const alice = await TestUA.create({ user: 'alice', server: s.udp });
  const bob = await TestUA.create({ user: 'bob', server: s.udp });
  t.after(async () => {
    alice.close();
    bob.close();
    await s.stop();
  });
  assert.equal((await bob.register()).status, 200);
  return { s, backlog, alice, bob };
}

const bodies = (ua: TestUA) => ua.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());

test('with the receive buffer past relay.overload_backlog a new MESSAGE gets 503 with Retry-After, neither relayed nor stored, while the answer to one under way still gets through; MESSAGEs are taken again once the backlog is under half the mark', async (t) => {
  const { s, backlog, alice, bob } = await overloadable(t);
  // Bob's phone answers only when told to, below: "one" is under way when the backlog builds up.
  bob.answer = null;
  const arrived = bob.waitForRequest((m) => m.body.toString() === 'one');
  const one = alice.message('sip:bob@localhost', 'one');
  const underWay = await arrived;

  backlog.share = 0.6;
  const refused = await alice.message('sip:bob@localhost', 'two');
  assert.equal(refused.status, 503, `${refused.status} ${refused.reason}`);
  assert.match(refused.reason, /overloaded/);
  assert.equal(refused.get('retry-after'), '1');

  bob.sendRaw(createResponse(underWay, 200).toBuffer());
  assert.equal((await one).status, 200, 'the device\'s answer was read while refusing');

  backlog.share = 0.4;
  assert.equal((await alice.message('sip:bob@localhost', 'three')).status, 503, 'under the mark but not yet under half of it');
  backlog.share = 0.2;
  bob.answer = 200;
  assert.equal((await alice.message('sip:bob@localhost', 'four')).status, 200);
  assert.deepEqual(bodies(bob), ['one', 'four'], 'the refused messages were neither delivered nor kept');
  assert.equal(await s.server.store.offline.count('bob@localhost'), 0);
  assert.equal(s.server.service(RELAY)!.stats.overloaded, 2);
});

test('a backlog that never reached relay.overload_backlog refuses nothing', async (t) => {
  const { alice, bob, backlog } = await overloadable(t);
  backlog.share = 0.45;
  assert.equal((await alice.message('sip:bob@localhost', 'busy')).status, 200);
  assert.deepEqual(bodies(bob), ['busy']);
});

test('relay.overload_backlog null: a full receive buffer refuses nothing', async (t) => {
  const { backlog, alice, bob } = await overloadable(t, { relay: { overload_backlog: null } });
  backlog.share = 1;
  assert.equal((await alice.message('sip:bob@localhost', 'full')).status, 200);
  assert.deepEqual(bodies(bob), ['full']);
});
