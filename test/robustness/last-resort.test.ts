// The last resort of `parley start`: an error that escaped every handler is logged with its module
// and counted in parley_internal_errors_total, and the process keeps serving.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { moduleOf } from '../../src/log/index.js';
import { TestUA } from '../support/ua.js';
import { killAll, startParley } from '../support/process.js';

const REJECT_ON_SIGNAL = fileURLToPath(new URL('../support/reject-on-signal.ts', import.meta.url));

after(() => killAll());

test('an unhandled rejection is logged with its module and counted, and Parley keeps serving', async () => {
  const parley = await startParley({ nodeArgs: ['--import', 'tsx', '--import', REJECT_ON_SIGNAL], expectInternalErrors: true });
  const alice = await TestUA.create({ user: 'alice', proto: 'udp', server: parley.udp });
  try {
    const listening = JSON.parse(await parley.waitForLog('admin endpoint listening')) as { listen: string };
    const metrics = async () => (await fetch(`http://${listening.listen}/metrics`)).text();

    parley.kill('SIGUSR2');
    const logged = JSON.parse(await parley.waitForLog('internal error: unhandled rejection')) as Record<string, unknown>;
    assert.equal(logged.level, 'error');
    assert.equal(logged.module, 'sip');
    assert.match(String(logged.msg), /^internal error: unhandled rejection in sip: /);
    assert.match(String((logged.err as { stack?: string }).stack), /src\/sip\/parser\.ts/);

    assert.ok(parley.alive, 'the process exited');
    assert.equal((await alice.register()).status, 200, 'Parley no longer answers');
    assert.match(await metrics(), /^parley_internal_errors_total\{module="sip"\} 1$/m);
  } finally {
    alice.close();
    await parley.stop();
  }
});

test('an error none of whose stack frames is in a Parley module is counted as unknown', () => {
  assert.equal(moduleOf(new Error('thrown by a test')), 'unknown');
  assert.equal(moduleOf('a rejection with a string'), 'unknown');
});
