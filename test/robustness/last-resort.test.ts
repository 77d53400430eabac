// Errors that escape a handler: a request whose handling fails, answer included, is only logged; the
// last resort of `parley start` logs an error nothing handled with its module, counts it in
// parley_internal_errors_total, and keeps serving.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { moduleOf } from '../../src/log/index.js';
import { randomToken } from '../../src/sip/index.js';
import { startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { killAll, startParley } from '../support/process.js';
import { bindUdp, closeUdp, request, transact } from './wire.js';

/** Makes SIGUSR2 provoke an unhandled rejection in the process; `?throw`, an uncaught exception. */
const FAIL_ON_SIGNAL = new URL('../support/fail-on-signal.ts', import.meta.url).href;

after(() => killAll());

test('an unhandled rejection is logged with its module and counted, and Parley keeps serving', async () => {
  const parley = await startParley({ nodeArgs: ['--import', 'tsx', '--import', FAIL_ON_SIGNAL], expectInternalErrors: true });
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

test('an uncaught exception is logged with its module, then Parley exits with code 1 for a fresh start', async () => {
  const parley = await startParley({ nodeArgs: ['--import', 'tsx', '--import', `${FAIL_ON_SIGNAL}?throw`], expectInternalErrors: true });
  try {
    parley.kill('SIGUSR2');
    const status = await parley.exited;
    assert.deepEqual(status, { code: 1, signal: null });
    const logged = parley.entries().find((entry) => String(entry.msg).startsWith('internal error: uncaught exception'));
    assert.ok(logged, `no internal error logged:\n${parley.logs.slice(-5).join('\n')}\n${parley.stderr.join('\n')}`);
    assert.equal(logged.level, 'error');
    assert.equal(logged.module, 'sip');
  } finally {
    await parley.stop();
  }
});

test('an error none of whose stack frames is in a Parley module is counted as unknown', () => {
  assert.equal(moduleOf(new Error('thrown by a test')), 'unknown');
  assert.equal(moduleOf('a rejection with a string'), 'unknown');
});

test('a request none of whose answers can be sent (Via port 0, no rport) is given up, and Parley keeps serving', async () => {
  const parley = await startServer();
  const socket = await bindUdp();
  try {
    const unanswerable = [
      'OPTIONS sip:localhost SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bK${randomToken(12)}`,
      'From: <sip:probe@localhost>;tag=1',
      'To: <sip:localhost>',
      `Call-ID: ${randomToken(12)}@probe`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    socket.send(unanswerable, parley.udp.port, parley.udp.host);
    const answer = await transact(socket, parley.udp, request('OPTIONS', 'sip:localhost', socket.address().port));
    assert.equal(answer?.status, 200, 'Parley no longer answers');
  } finally {
    closeUdp(socket);
    await parley.stop();
  }
});
