// Graceful stop of the Parley process: SIGTERM/SIGINT log 'parley stopped' and exit 0 within a few
// seconds, requests in progress are still answered, and the ports are free again afterwards.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createResponse } from '../../src/sip/index.js';
import { TestUA } from '../support/ua.js';
import { killAll, startParley, type ParleyProcess } from '../support/process.js';
import { bindUdp, closeUdp, lenient, request, transact } from './wire.js';

const STOP_WITHIN_MS = 5000;
const uas: TestUA[] = [];

after(() => {
  for (const agent of uas) agent.close();
  killAll();
});

/** Sends `signal` and checks the clean exit: code 0, 'stopping' then 'parley stopped', nothing on stderr. */
async function signalAndExpectCleanExit(parley: ParleyProcess, signal: NodeJS.Signals): Promise<number> {
  const sent = Date.now();
  parley.kill(signal);
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), STOP_WITHIN_MS + 5000).unref());
  const status = await Promise.race([parley.exited, timeout]);
  const elapsed = Date.now() - sent;
  assert.notEqual(status, 'timeout', `still running ${STOP_WITHIN_MS + 5000} ms after ${signal}`);
  assert.deepEqual(status, { code: 0, signal: null }, `exit after ${signal}; stderr:\n${parley.stderr.join('\n')}`);
  assert.ok(elapsed < STOP_WITHIN_MS, `${signal} took ${elapsed} ms to stop Parley`);
  const events = parley.entries();
  const stopping = events.findIndex((e) => e.msg === 'stopping');
  const stopped = events.findIndex((e) => e.msg === 'parley stopped');
  assert.ok(stopping >= 0, "no 'stopping' log event");
  assert.equal(events[stopping]!.signal, signal);
  assert.ok(stopped > stopping, "no 'parley stopped' log event after 'stopping'");
  assert.equal(parley.stderr.join('\n').trim(), '', 'stderr of Parley');
  return elapsed;
}

async function options(server: { host: string; port: number }): Promise<number | undefined> {
  const socket = await bindUdp();
  try {
    return (await transact(socket, server, request('OPTIONS', 'sip:localhost', socket.address().port), 3000))?.status;
  } finally {
    closeUdp(socket);
  }
}

describe('graceful shutdown', () => {
  let ports: { udp: number; tcp: number } | undefined;

  test('SIGTERM with clients connected: logs "parley stopped" and exits 0 within a few seconds', async () => {
    const parley = await startParley();
    ports = { udp: parley.udp.port, tcp: parley.tcp.port };
    try {
      const alice = await TestUA.create({ user: 'alice', proto: 'udp', server: parley.udp });
      const bob = await TestUA.create({ user: 'bob', proto: 'tcp', server: parley.tcp });
      uas.push(alice, bob);
      assert.equal((await alice.register()).status, 200);
      assert.equal((await bob.register()).status, 200);
      // bob's TCP connection stays open: stopping must not wait for the client to close it.
      const elapsed = await signalAndExpectCleanExit(parley, 'SIGTERM');
      console.log(`# SIGTERM to exit: ${elapsed} ms`);
    } finally {
      parley.kill('SIGKILL');
    }
  });

  test('after SIGTERM, a second start on the same UDP and TCP ports works', async () => {
    assert.ok(ports, 'the first test did not start Parley');
    const parley = await startParley({ udpPort: ports.udp, tcpPort: ports.tcp });
    try {
      assert.equal(await options(parley.udp), 200, 'OPTIONS over UDP on the reused port');
      const carol = await TestUA.create({ user: 'carol', proto: 'tcp', server: parley.tcp });
      uas.push(carol);
      assert.equal((await carol.register()).status, 200, 'REGISTER over TCP on the reused port');
      await signalAndExpectCleanExit(parley, 'SIGTERM');
    } finally {
      parley.kill('SIGKILL');
    }
  });

  test('SIGINT stops Parley the same way', async () => {
    const parley = await startParley();
    try {
      assert.equal(await options(parley.udp), 200);
      await signalAndExpectCleanExit(parley, 'SIGINT');
    } finally {
      parley.kill('SIGKILL');
    }
  });

  test('a MESSAGE in progress when SIGTERM arrives is still answered; a new request meanwhile gets 503', async () => {
    const parley = await startParley();
    // bob answers MESSAGEs one second late, so the relay is still in progress when the signal comes.
    const bob = await bindUdp();
    const alice = await bindUdp();
    try {
      const bobPort = bob.address().port;
      const registered = await transact(bob, parley.udp, request('REGISTER', 'sip:localhost', bobPort, {
        from: '<sip:bob@localhost>',
        to: '<sip:bob@localhost>',
        headers: [['contact', `<sip:bob@127.0.0.1:${bobPort}>`], ['expires', '600']],
      }));
      assert.equal(registered?.status, 200);
      let reachedBob!: () => void;
      const atBob = new Promise<void>((resolve) => (reachedBob = resolve));
      let answered = false;
      bob.on('message', (data: Buffer, rinfo) => {
        const message = lenient(data);
        // Parley's retransmissions of the MESSAGE are left to the one late answer.
        if (!message?.isRequest || message.method !== 'MESSAGE' || answered) return;
        answered = true;
        reachedBob();
        setTimeout(() => {
          try {
            bob.send(createResponse(message, 200).toBuffer(), rinfo.port, rinfo.address);
          } catch {
            // the test is over
          }
        }, 1000);
      });

      const answer = transact(alice, parley.udp, request('MESSAGE', 'sip:bob@localhost', alice.address().port, { to: '<sip:bob@localhost>', body: 'in flight' }), 8000);
      await atBob;
      parley.kill('SIGTERM');
      await parley.waitForLog('"stopping"', 3000);
      assert.equal(await options(parley.udp), 503, 'a request that arrives while Parley stops');
      assert.equal((await answer)?.status, 200, 'the MESSAGE in progress was not answered');
      const status = await parley.exited;
      assert.deepEqual(status, { code: 0, signal: null });
      assert.ok(parley.logs.some((line) => line.includes('"parley stopped"')));
    } finally {
      closeUdp(bob);
      closeUdp(alice);
      parley.kill('SIGKILL');
    }
  });
});
