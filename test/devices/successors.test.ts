// Which device a client without +sip.instance is, once one like it registered from a new port while
// it is still registered (relay/successors.ts): over UDP the two are two devices (two phones of one
// model behind one NAT) and the new one's messages never wait, the old one being taken for the new
// one's former address only when its binding expires unrefreshed; over a stream connection that looks
// open the new one's messages wait until the old one answers (another device) or fails (the same one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Successors, type Successor } from '../../src/relay/successors.js';
import type { Binding } from '../../src/store/types.js';

const aor = 'ida@localhost';
const ZOIPER = 'Z 5.6.1 v2.10.20.1';

function binding(proto: 'udp' | 'tcp', port: number, updatedAt: number): Binding {
  const transport = proto === 'udp' ? '' : ';transport=tcp';
  return {
    aor, contact: `sip:ida@192.0.2.1:${port}${transport}`, expiresAt: updatedAt + 3_600_000, q: 1, callId: `c${port}`, cseq: 1,
    source: { proto, host: '192.0.2.1', port }, userAgent: ZOIPER, updatedAt,
  };
}

/** Successors over `registered` bindings, with what they decided. */
function successorsOf(registered: Binding[]) {
  const tookOver: Array<{ old: string; device: string; since: number }> = [];
  const released: string[] = [];
  const successors = new Successors({
    wasThatDevice: (_aor, old, successor: Successor) => {
      tookOver.push({ old, device: successor.device, since: successor.since });
      return Promise.resolve();
    },
    released: (_aor, device) => void released.push(device),
  }, () => registered);
  return { successors, tookOver, released };
}

/** Once what is under way in promises has run. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

const OLD_UDP = 'sip:ida@192.0.2.1:5060';
const NEW_UDP = 'sip:ida@192.0.2.1:5062';
const OLD_TCP = 'sip:ida@192.0.2.1:40001';
const NEW_TCP = 'sip:ida@192.0.2.1:40002';

test('over UDP the new port\'s messages never wait, a phone at the old port not reached stays a device of its own, and only its binding expiring unrefreshed makes it the new one\'s former address', async () => {
  const old = binding('udp', 5060, 1_000);
  const registered = [old, binding('udp', 5062, 2_000)];
  const { successors, tookOver, released } = successorsOf(registered);
  successors.note(aor, OLD_UDP, NEW_UDP, 2_000, registered);
  assert.equal(successors.isHeld(aor, NEW_UDP), false, 'two phones behind one NAT are as likely');
  successors.answered(aor, OLD_UDP, false);
  assert.deepEqual(tookOver, [], 'a phone out of coverage a moment is not replaced');

  registered.splice(0, 1);
  successors.expired(aor, [old]);
  await settled();
  assert.deepEqual(tookOver, [{ old: OLD_UDP, device: NEW_UDP, since: 2_000 }], 'what waited from before the new one came');
  assert.deepEqual(released, [NEW_UDP]);
  assert.equal(successors.size, 0);
});

test('over UDP a phone at the old port that refreshes its binding after the new one came is another device', () => {
  const registered = [binding('udp', 5060, 1_000), binding('udp', 5062, 2_000)];
  const { successors, tookOver } = successorsOf(registered);
  successors.note(aor, OLD_UDP, NEW_UDP, 2_000, registered);
  registered[0] = binding('udp', 5060, 3_000);
  successors.registered(aor, registered);
  assert.deepEqual(tookOver, []);
  assert.equal(successors.size, 0);
});

test('over a stream connection that looks open the new connection\'s messages wait: the old one answering makes it another device, failing makes it the same one', async () => {
  const registered = [binding('tcp', 40001, 1_000), binding('tcp', 40002, 2_000)];
  const answering = successorsOf(registered);
  answering.successors.note(aor, OLD_TCP, NEW_TCP, 2_000, registered);
  assert.equal(answering.successors.isHeld(aor, NEW_TCP), true);
  answering.successors.answered(aor, OLD_TCP, true);
  assert.equal(answering.successors.isHeld(aor, NEW_TCP), false);
  assert.deepEqual(answering.released, [NEW_TCP], 'what waited goes at once');
  assert.deepEqual(answering.tookOver, []);

  const failing = successorsOf(registered);
  failing.successors.note(aor, OLD_TCP, NEW_TCP, 2_000, registered);
  failing.successors.answered(aor, OLD_TCP, false);
  assert.deepEqual(failing.tookOver, [{ old: OLD_TCP, device: NEW_TCP, since: 2_000 }]);
  assert.equal(failing.successors.isHeld(aor, NEW_TCP), true, 'until the takeover is done');
  await settled();
  assert.equal(failing.successors.isHeld(aor, NEW_TCP), false);
  assert.deepEqual(failing.released, [NEW_TCP]);
});
