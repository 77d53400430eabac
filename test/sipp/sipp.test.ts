// sipp as real peers of an in-process Parley over UDP: registrations, MESSAGEs both ways, 404,
// offline storage and delivery, digest authentication, retransmissions. Each sipp run checks the
// final status itself (-set expected), so its exit code and counters are what is asserted; what a
// receiving peer got is read from the <log> lines of answer.xml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startServer, type TestServer } from '../support/server.js';
import { SippProcess, freePort, runSipp, summarize, type SippResult } from '../support/sipp.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DOMAIN = 'localhost';

let s: TestServer;
const peers: SippProcess[] = [];

before(async () => {
  s = await startServer();
});
after(async () => {
  await Promise.all(peers.map((p) => p.stop()));
  await s?.stop();
});

/** Passes when sipp ran every call to the end with the expected status, else shows why not. */
function assertAllPassed(result: SippResult, calls: number): void {
  const why = summarize(result);
  assert.equal(result.exitCode, 0, why);
  assert.equal(result.stats?.successful, calls, why);
  assert.equal(result.stats?.failed, 0, why);
}

function register(server: TestServer, user: string, options: { password?: string; expires?: number; expected?: number; port?: number } = {}) {
  return runSipp({
    scenario: 'register.xml',
    remote: server.udp,
    port: options.port,
    users: [[user, DOMAIN, options.password ?? '-']],
    keys: { expires: options.expires ?? 3600 },
    vars: { expected: options.expected ?? 200, hold_ms: 0 },
    calls: 1,
    timeoutS: 10,
    // sipp's digest uri is the server's address unless told; Parley wants the Request-URI (sip:DOMAIN).
    extraArgs: ['-auth_uri', DOMAIN],
  });
}

function message(from: string, to: string, body: string, expected: number) {
  return runSipp({
    scenario: 'message.xml',
    remote: s.udp,
    users: [[from, to, DOMAIN]],
    keys: { body },
    vars: { expected },
    calls: 1,
    timeoutS: 10,
  });
}

/**
 * A sipp user agent that registers `user` and then answers the MESSAGEs relayed to it, logging
 * each body; resolves once Parley has its binding.
 */
async function registeredPeer(user: string, answerDelayMs = 0): Promise<SippProcess> {
  const peer = await SippProcess.start({
    scenario: 'register.xml',
    ooc: 'answer.xml',
    remote: s.udp,
    users: [[user, DOMAIN, '-']],
    keys: { expires: 3600 },
    vars: { expected: 200, hold_ms: 60_000, answer_delay_ms: answerDelayMs },
    calls: 1,
    timeoutS: 60,
    logs: true,
  });
  peers.push(peer);
  const deadline = Date.now() + 5000;
  while (s.server.registrar.lookup(`${user}@${DOMAIN}`).length === 0) {
    if (Date.now() > deadline) throw new Error(`${user} did not register:\n${summarize(await peer.stop())}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return peer;
}

const received = (peer: SippProcess) => peer.logLines().filter((l) => l.startsWith('MESSAGE '));

test('sipp registers two users', async () => {
  const port = await freePort();
  const result = await runSipp({
    scenario: 'register.xml',
    remote: s.udp,
    port,
    users: [['alice', DOMAIN, '-'], ['bob', DOMAIN, '-']],
    keys: { expires: 3600 },
    vars: { expected: 200, hold_ms: 0 },
    calls: 2,
    timeoutS: 10,
  });
  assertAllPassed(result, 2);
  for (const user of ['alice', 'bob']) {
    const bindings = s.server.registrar.lookup(`${user}@${DOMAIN}`);
    assert.deepEqual(bindings.map((b) => b.contact), [`sip:${user}@127.0.0.1:${port}`]);
  }
});

test('two registered sipp peers get each other\'s MESSAGEs', async () => {
  const carol = await registeredPeer('carol');
  const dave = await registeredPeer('dave');

  assertAllPassed(await message('carol', 'dave', 'hello dave', 200), 1);
  assertAllPassed(await message('dave', 'carol', 'hello carol', 200), 1);

  // The 200 the sender saw came from the peer, which logs right after answering.
  await dave.waitForLog((l) => l === 'MESSAGE hello dave');
  await carol.waitForLog((l) => l === 'MESSAGE hello carol');
  assert.deepEqual(received(dave), ['MESSAGE hello dave']);
  assert.deepEqual(received(carol), ['MESSAGE hello carol']);
});

test('a MESSAGE to an unknown user gets 404', async () => {
  assertAllPassed(await message('erin', 'nobody', 'anyone there?', 404), 1);
});

test('the status check fails a sipp call that gets another status than expected', async () => {
  // Guards the scenarios themselves: were the check inert, every test above would pass vacuously.
  const result = await message('erin', 'nobody', 'anyone there?', 200);
  assert.equal(result.exitCode, 1, summarize(result));
  assert.equal(result.stats?.testFailed, 1, summarize(result));
});

test('a MESSAGE for a known, unregistered user is stored (202) and delivered when the user registers', async () => {
  // Same local port for both, so the Expires: 0 REGISTER removes the contact the first one added.
  const port = await freePort();
  assertAllPassed(await register(s, 'frank', { port }), 1);
  assertAllPassed(await register(s, 'frank', { port, expires: 0 }), 1);
  assert.equal(s.server.registrar.lookup(`frank@${DOMAIN}`).length, 0);

  assertAllPassed(await message('grace', 'frank', 'kept for frank', 202), 1);
  assert.equal(await s.server.store.offline.count(`frank@${DOMAIN}`), 1);

  const frank = await registeredPeer('frank');
  await frank.waitForLog((l) => l.startsWith('MESSAGE '));
  assert.deepEqual(received(frank), ['MESSAGE kept for frank']);
  // Removed once frank's 200 came back, which is just after frank logged it.
  const deadline = Date.now() + 2000;
  while ((await s.server.store.offline.count(`frank@${DOMAIN}`)) > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(await s.server.store.offline.count(`frank@${DOMAIN}`), 0);
});

test('a sender retransmitting while the recipient is slow gets one answer, and the recipient one MESSAGE', async () => {
  // ivan answers after 1.7 s: the sender retransmits at 0.5 s and 1.5 s (T1 doubling) meanwhile.
  const ivan = await registeredPeer('ivan', 1700);
  const absorbedBefore = s.server.stack.stats.retransmissionsAbsorbed;

  const result = await message('heidi', 'ivan', 'only once', 200);
  assertAllPassed(result, 1);
  assert.ok(result.stats!.retransmissions >= 1, `the sender should have retransmitted:\n${summarize(result)}`);
  assert.ok(s.server.stack.stats.retransmissionsAbsorbed - absorbedBefore >= result.stats!.retransmissions);

  // A copy relayed as a new request would arrive within Parley's Timer E interval (0.5 s); wait longer.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const ivanResult = await ivan.stop();
  assert.deepEqual(ivanResult.logLines.filter((l) => l.startsWith('MESSAGE ')), ['MESSAGE only once'], summarize(ivanResult));
  assert.doesNotMatch(ivanResult.errors, /unexpected|Aborting/i, summarize(ivanResult));
});

test('digest: sipp answers the 401 and registers; a wrong password ends in a second 401', async (t) => {
  // sipp computes MD5 digests only, and answers the first challenge whatever its algorithm:
  // Parley's default order (SHA-256 first) makes it give up ("authentication must use MD5").
  const secured = await startServer({ auth: { policy: 'required', algorithms: ['MD5'] } });
  t.after(() => secured.stop());
  // The real command, against the server's own database.
  execFileSync(process.execPath, ['bin/parley.js', 'user', 'add', `judy@${DOMAIN}`, '--password', 's3cret', '--db', secured.config.database], {
    cwd: ROOT,
    stdio: 'pipe',
  });

  const wrong = await register(secured, 'judy', { password: 'guess', expected: 401 });
  assertAllPassed(wrong, 1);
  assert.equal(secured.server.registrar.lookup(`judy@${DOMAIN}`).length, 0);

  const right = await register(secured, 'judy', { password: 's3cret' });
  assertAllPassed(right, 1);
  assert.equal(secured.server.registrar.lookup(`judy@${DOMAIN}`).length, 1);
});
