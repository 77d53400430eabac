// bench/common.ts: how a fan-out bench reads its receivers' log (bench/sipp/member.xml) and judges
// a step on the legs in it: a leg is read once, whole, even when sipp had written only part of its
// line; a leg whose line is not there yet is waited for; a leg that came without a send time, one
// whose receive time was logged incomplete, or one whose line never came, fails the step, each
// saying so.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { legLog, legsProblem, loggedLegs } from '../../bench/common.js';

const dir = mkdtempSync(join(tmpdir(), 'parley-legs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A line of member.xml's log: sent at 100 s + `sentUs`, received at 100 s + `receivedUs`. */
const timed = (sentUs: number, receivedUs: number, callId: string) =>
  `sent=${((100e6 + sentUs) / 1e6).toFixed(6)} received=${((100e6 + receivedUs) / 1e6).toFixed(6)} call=${callId}\n`;

test('a leg whose line was half written at one read is counted once, whole, at the next', () => {
  const file = join(dir, 'split.log');
  const line = timed(1000, 251000, 'b@parley');
  writeFileSync(file, timed(0, 12500, 'a@parley') + line.slice(0, 30));
  const read = legLog(file);
  assert.deepEqual(read(), { latencies: [12.5], untimed: [] });
  appendFileSync(file, line.slice(30));
  assert.deepEqual(read(), { latencies: [250], untimed: [] });
  assert.deepEqual(read(), { latencies: [], untimed: [] });
});

test('a leg logged after the count was read is waited for, and the step passes', async () => {
  const file = join(dir, 'late.log');
  writeFileSync(file, timed(0, 1000, 'a@parley'));
  const reader = legLog(file);
  let reads = 0;
  const read = () => {
    const legs = reader();
    if (reads++ === 1) appendFileSync(file, timed(0, 2000, 'b@parley'));
    return legs;
  };
  const legs = await loggedLegs(read, 2, 60_000);
  assert.deepEqual(legs, { latencies: [1, 2], untimed: [], unlogged: 0 });
  assert.equal(legsProblem(legs, 2), undefined);
});

test('a leg that came without a send time fails the step, quoting its line', async () => {
  const file = join(dir, 'untimed.log');
  writeFileSync(file, timed(0, 1000, 'a@parley') + ' received=100.005000 call=n@parley\n');
  const legs = await loggedLegs(legLog(file), 2, 0);
  assert.equal(legsProblem(legs, 2), '1 of 2 legs carried no send time ("received=100.005000 call=n@parley")');
});

test('a leg whose receive time was logged incomplete fails the step, naming the receive time', async () => {
  const file = join(dir, 'unreceived.log');
  // As sipp logged a separate microseconds variable whose value was 0: as nothing.
  writeFileSync(file, timed(0, 1000, 'a@parley') + 'sent=100.997246 received=101.000000_ call=z@parley\n');
  const legs = await loggedLegs(legLog(file), 2, 0);
  assert.equal(legsProblem(legs, 2), '1 of 2 legs were logged without a whole receive time ("sent=100.997246 received=101.000000_ call=z@parley")');
});

test('a leg sipp counted whose line never came fails the step as never logged', async () => {
  const file = join(dir, 'missing.log');
  writeFileSync(file, timed(0, 1000, 'a@parley'));
  const legs = await loggedLegs(legLog(file), 2, 0);
  assert.equal(legsProblem(legs, 2), '1 of 2 legs counted by sipp never reached its log');
});
