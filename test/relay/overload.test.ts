// What senders see when the relay is offered more than relay.max_in_progress MESSAGEs at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createResponse } from '../../src/sip/index.js';
import { startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';

test('past relay.max_in_progress a new MESSAGE gets 503 with Retry-After at once; those under way are delivered, and the next is relayed once they are answered', async (t) => {
  // accept_timeout well past the test: what waits for the device waits for its answer, not for a timer.
  const s = await startServer({ relay: { max_in_progress: 2, overload_busy_share: 0, accept_timeout: 60 } as never });
  const alice = await TestUA.create({ user: 'alice', server: s.udp });
  const bob = await TestUA.create({ user: 'bob', server: s.udp });
  t.after(async () => {
    alice.close();
    bob.close();
    await s.stop();
  });
  assert.equal((await bob.register()).status, 200);
  // Bob's phone takes its time: it answers only when told to, below.
  bob.answer = null;
  const bothArrived = Promise.all([bob.waitForRequest((m) => m.body.toString() === 'one'), bob.waitForRequest((m) => m.body.toString() === 'two')]);
  const one = alice.message('sip:bob@localhost', 'one');
  const two = alice.message('sip:bob@localhost', 'two');
  const underWay = await bothArrived;

  const refused = await alice.message('sip:bob@localhost', 'three');
  assert.equal(refused.status, 503, `${refused.status} ${refused.reason}`);
  assert.match(refused.reason, /overloaded/);
  assert.ok(Number(refused.get('retry-after')) > 0, `Retry-After: ${refused.get('retry-after')}`);

  for (const request of underWay) bob.sendRaw(createResponse(request, 200).toBuffer());
  assert.deepEqual([(await one).status, (await two).status], [200, 200]);

  bob.answer = 200;
  assert.equal((await alice.message('sip:bob@localhost', 'four')).status, 200);
  const delivered = bob.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
  assert.deepEqual(delivered, ['one', 'two', 'four'], 'the refused message was neither delivered nor kept');
  assert.equal(await s.server.store.offline.count('bob@localhost'), 0);
});
