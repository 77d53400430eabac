// Benchmark (not a test): legitimate MESSAGE relay at a fixed rate, first alone, then while an
// attacker (bench/attacker.ts, its own process, from other loopback addresses) sends malformed
// datagrams, holds slowloris TCP connections, floods REGISTER for random users and writes garbage
// on s2s streams. Prints, for both phases, the share of legitimate requests that succeeded, sipp's
// p50/p99 response times, Parley's peak RSS and CPU, and what the attacker managed; and, for
// telling the machine's noise from Parley's, how long Parley's event-loop thread and sipp waited
// for a CPU while they had work (their run-queue wait) and the machine's CPU pressure.
//
//   npm run bench:attack
//   npm run bench:attack -- --rate 1000 --seconds 20
//
// Goal: >= 99.9 % of legitimate requests succeed under attack, p99 under 50 ms, RSS under 512 MiB.
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SippProcess, freePort, percentile, type RttSample, type SippOptions, type SippResult } from '../test/support/sipp.js';
import {
  CpuMeter, DOMAIN, ROOT, launch, launchParley, residentBytes, runBounded, sleep, startRelayUas, table, udpSocketCounters, type PingIds, type Server,
} from './common.js';

const PING: PingIds = { branch: 'attack', callId: 'attack-ping' };
const RELAY_USER = 'bench-uas';
/**
 * The UAS answers a retransmitted MESSAGE again, as a user agent's server transaction does (RFC 3261
 * §17.2.2): sipp otherwise ignores, for 33 s, whatever comes for a call it ended, so that a 200 lost
 * on its way to Parley made the whole legitimate call fail rather than cost it one retransmission.
 */
const UAS_ARGS = ['-deadcall_wait', '0'];
const GOALS = { successShare: 0.999, p99Ms: 50, rssMiB: 512 };
/** The line bench/attacker.ts writes once its floods start. */
const ATTACKING = 'attacking';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    'malformed-rate': { type: 'string', default: '20000' },
    'register-rate': { type: 'string', default: '2000' },
    slowloris: { type: 'string', default: '2000' },
  },
});
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const work = mkdtempSync(join(tmpdir(), 'parley-attack-'));

/**
 * Parley as an operator would put it on a public address, with the legitimate traffic on
 * 127.0.0.1 and the attacker on other loopback addresses: per-source limits apply to the attacker
 * only, 127.0.0.1 being the one exempt source (the default exempts all of loopback). The XMPP
 * gateway is its own s2s server, so that its port takes garbage too.
 */
function parleyConfig(s2sPort: number): string {
  return `
sip:
  exempt_sources: ["127.0.0.1/32"]
xmpp:
  enabled: true
  backend: server
  xmpp_domain: xmpp.localhost
  s2s_listen: 127.0.0.1
  s2s_port: ${s2sPort}
routes:
  - { handler: relay }
`;
}

interface Phase {
  name: string;
  calls: number;
  successful: number;
  p50: number;
  p99: number;
  rssMiB: number;
  /** Datagrams to Parley's UDP port the kernel dropped, Parley not reading them in time. */
  udpDrops: number;
  /** Whether Parley was gone by the end of the phase. */
  exited: boolean;
  cpu: number;
  /** Ms per second of the traffic that Parley's event-loop thread, and sipp, were runnable but waited for a CPU. */
  parleyWaitMs?: number;
  sippWaitMs?: number;
  /** Share of the last 10 s, at the traffic's end, in which some runnable task waited for a CPU (Linux PSI). */
  cpuPressure?: number;
  attacker?: Record<string, number>;
  /** How the legitimate calls that failed ended, and how many were retransmitted (an answer later than 500 ms). */
  failures: string;
  /** Answers slower than the p99 goal by second of the phase, the busiest first: whether they come in bursts. */
  slowBursts: string;
}

/**
 * Ms the main thread of `pid` has waited, runnable, for a CPU since it started: the second field
 * of /proc/PID/schedstat, in ns. Undefined where the kernel does not say, or once the process is gone.
 */
function runQueueWaitMs(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
  } catch {
    return undefined;
  }
}

/** "some avg10" of /proc/pressure/cpu, in %; undefined without PSI. */
function cpuPressure(): number | undefined {
  try {
    const avg10 = /^some avg10=([0-9.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1];
    return avg10 === undefined ? undefined : Number(avg10);
  } catch {
    return undefined;
  }
}

/** What runs beside the legitimate traffic: started, with the report it gives at its end. */
type Beside = () => Promise<{ done: Promise<Record<string, number>> }>;

/** One phase: sipp sends RATE MESSAGEs/s for SECONDS to the relay UAS, with `beside` running alongside. */
async function phase(name: string, server: Server, beside?: Beside): Promise<Phase> {
  const calls = RATE * SECONDS;
  const options: SippOptions = {
    scenario: 'message.xml',
    remote: { host: '127.0.0.1', port: server.port },
    users: [['bench-sender', RELAY_USER, DOMAIN]],
    keys: { body: 'legitimate message' },
    vars: { expected: 200 },
    rate: RATE,
    calls,
    limit: RATE * 2,
    timeoutS: SECONDS + 40,
    rttFreq: 1,
    statsPeriodS: SECONDS + 40,
    extraArgs: ['-buff_size', String(4 << 20)],
  };
  const pid = server.pids()[0]!;
  let rssMiB = 0;
  const sampleRss = () => (rssMiB = Math.max(rssMiB, (residentBytes(pid) ?? 0) / 2 ** 20));
  const rssTimer = setInterval(sampleRss, 200);
  sampleRss();
  const dropsBefore = udpSocketCounters(server.port).drops;
  const attack = beside && (await beside());
  // From here: the attacker's start-up, Parley idle meanwhile, is no part of the phase's CPU.
  const meter = new CpuMeter(() => server.pids());
  const started = Date.now();
  const parleyWaitBefore = runQueueWaitMs(pid);
  const sipp = await SippProcess.start(options);
  // sipp's, read while it runs: its /proc entry goes with it.
  let sippWait: number | undefined;
  const waitTimer = setInterval(() => (sippWait = runQueueWaitMs(sipp.pid) ?? sippWait), 200);
  // CPU used and waited for are read over the traffic's SECONDS, not over the wait for late answers after them.
  const traffic = Promise.race([sipp.done.catch(() => undefined), sleep(SECONDS * 1000)]).then(() => {
    const seconds = (Date.now() - started) / 1000;
    const parleyWaitAfter = runQueueWaitMs(pid);
    return {
      cpu: meter.stop(),
      parleyWaitMs: parleyWaitBefore === undefined || parleyWaitAfter === undefined ? undefined : (parleyWaitAfter - parleyWaitBefore) / seconds,
      sippWaitMs: sippWait === undefined ? undefined : sippWait / seconds,
      cpuPressure: cpuPressure(),
    };
  });
  const [result, attacker, used] = await Promise.all([sipp.done, attack?.done, traffic]);
  clearInterval(rssTimer);
  clearInterval(waitTimer);
  const rtts = result.rtts.map((r) => r.ms);
  return {
    name, calls, successful: result.stats?.successful ?? 0, p50: percentile(rtts, 50), p99: percentile(rtts, 99), rssMiB,
    udpDrops: Math.max(0, udpSocketCounters(server.port).drops - dropsBefore),
    exited: residentBytes(pid) === undefined, ...used, attacker, failures: failureAccount(result),
    slowBursts: slowBursts(result.rtts),
  };
}

/**
 * The failed calls by how they ended (a final status other than 200, counted by status line; no
 * answer at all), and sipp's retransmissions: each one is a request or its answer lost or later than 500 ms.
 */
function failureAccount(result: SippResult): string {
  const s = result.stats;
  if (!s) return 'no statistics';
  // sipp also notes in its error file the late copies of answers it ignored: named only when calls failed on one.
  const statuses = new Map<string, number>();
  for (const [, status] of result.errors.matchAll(/received 'SIP\/2\.0 ([^\r\n']*)/g)) statuses.set(status!, (statuses.get(status!) ?? 0) + 1);
  const byStatus = [...statuses].map(([status, count]) => `${count} x ${status}`).join(', ');
  const firstError = result.errors.split('\n').find((line) => line.trim() !== '')?.slice(0, 300);
  return `failed ${s.failed} (timeout ${s.timeouts}, unexpected ${s.unexpected}${s.unexpected > 0 && byStatus ? `: ${byStatus}` : ''}, wrong status ${s.testFailed}), retransmissions ${s.retransmissions}${firstError ? `; first error: ${firstError}` : ''}`;
}

/** "second: count" of the answers slower than the p99 goal, for the ten seconds with the most, and the slowest answer. */
function slowBursts(rtts: RttSample[]): string {
  const bySecond = new Map<number, number>();
  let slowest = 0;
  for (const { atMs, ms } of rtts) {
    slowest = Math.max(slowest, ms);
    if (ms >= GOALS.p99Ms) bySecond.set(Math.floor(atMs / 1000), (bySecond.get(Math.floor(atMs / 1000)) ?? 0) + 1);
  }
  const busiest = [...bySecond].sort((a, b) => b[1] - a[1]).slice(0, 10);
  return `${busiest.map(([second, count]) => `${second}s: ${count}`).join(', ') || 'none'}; slowest ${slowest} ms`;
}

/**
 * Starts bench/attacker.ts and resolves once it attacks, with its report to come: the legitimate
 * traffic starts then, not while tsx compiles the attacker on the same cores, which is no attack.
 */
function attacker(server: Server, s2sPort: number): Beside {
  return async () => {
    const { child, log } = launch(process.execPath, [
      '--import', 'tsx', join(ROOT, 'bench', 'attacker.ts'), '--sip-port', String(server.port), '--s2s-port', String(s2sPort),
      '--seconds', String(SECONDS), '--malformed-rate', args['malformed-rate']!, '--register-rate', args['register-rate']!,
      '--slowloris', args.slowloris!,
    ]);
    const exited = once(child, 'exit') as Promise<[number | null]>;
    await new Promise<void>((resolve, reject) => {
      const attacking = () => {
        if (!log().includes(`${ATTACKING}\n`)) return;
        child.stdout!.off('data', attacking);
        resolve();
      };
      child.stdout!.on('data', attacking);
      void exited.then(([code]) => reject(new Error(`attacker exited with ${code} before attacking\n${log()}`)));
    });
    const done = exited.then(([code]) => {
      if (code !== 0) throw new Error(`attacker exited with ${code}\n${log()}`);
      return JSON.parse(log().trim().split('\n').pop()!) as Record<string, number>;
    });
    return { done };
  };
}

function report(phases: Phase[], loadBefore: number[]): string {
  const rows = [[
    'phase', 'legitimate MESSAGEs', 'succeeded', 'p50 ms', 'p99 ms', 'Parley peak RSS MiB', 'Parley CPU', 'Parley UDP drops',
    'Parley waiting for a CPU ms/s', 'sipp waiting for a CPU ms/s', 'CPU pressure',
  ]];
  const known = (value: number | undefined, unit = '') => (value === undefined ? 'n/a' : `${value.toFixed(0)}${unit}`);
  for (const p of phases) {
    rows.push([
      p.name, String(p.calls), `${((100 * p.successful) / p.calls).toFixed(2)} %`, String(p.p50), String(p.p99),
      p.exited ? `${p.rssMiB.toFixed(0)} (then Parley EXITED)` : p.rssMiB.toFixed(0), p.cpu.toFixed(2), String(p.udpDrops),
      known(p.parleyWaitMs), known(p.sippWaitMs), known(p.cpuPressure, ' %'),
    ]);
  }
  const failures = phases.map((p) => `${p.name}: ${p.failures}\n  answers >= ${GOALS.p99Ms} ms by second of the phase: ${p.slowBursts}`).join('\n');
  const attacked = phases.find((p) => p.attacker);
  const verdict = attacked
    ? [
        `succeeded >= ${GOALS.successShare * 100} %: ${attacked.successful / attacked.calls >= GOALS.successShare ? 'met' : 'NOT met'}`,
        `p99 < ${GOALS.p99Ms} ms: ${attacked.p99 < GOALS.p99Ms ? 'met' : 'NOT met'}`,
        `RSS < ${GOALS.rssMiB} MiB: ${attacked.rssMiB < GOALS.rssMiB ? 'met' : 'NOT met'}`,
        `Parley alive: ${attacked.exited ? 'NO' : 'yes'}`,
      ].join('; ')
    : 'no attacked phase ran';
  return `
Parley under attack, ${new Date().toISOString()}, ${cpus().length} cores, load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}
legitimate: sipp MESSAGE relayed to a registered sipp UAS at ${RATE}/s for ${SECONDS} s, from 127.0.0.1
attacker (bench/attacker.ts, one process, the same cores): ${args['malformed-rate']} malformed datagrams/s from 127.0.0.2,
  ${args['register-rate']} REGISTER/s for random users from 127.0.0.4, ${args.slowloris} slowloris TCP connections from
  127.0.0.10-19, garbage s2s streams from 127.0.0.5
${table(rows)}
waiting for a CPU: runnable but not running (/proc/PID/schedstat; Parley's event-loop thread, the sending sipp); CPU
pressure: share of the last 10 s some task waited for a CPU. Where these are high, so is every response time, attacked
or not: the tail is then the machine's (other processes, the attacker itself on the same cores), not Parley's work.

legitimate calls that failed, and retransmissions (a request or answer lost or later than 500 ms):
${failures}
attacker's account: ${JSON.stringify(attacked?.attacker ?? {})}
goals: ${verdict}`;
}

async function main(): Promise<void> {
  const loadBefore = loadavg();
  const s2sPort = await freePort();
  const server = await launchParley(work, parleyConfig(s2sPort), PING);
  process.stderr.write(`Parley listening on udp:127.0.0.1:${server.port}, s2s on ${s2sPort}\n`);
  try {
    await startRelayUas(server, RELAY_USER, 4 * SECONDS + 120, {
      scenario: 'message.xml', remote: { host: '127.0.0.1', port: server.port }, users: [['bench-sender', RELAY_USER, DOMAIN]],
      keys: { body: 'probe' }, vars: { expected: 200 }, rate: 10, calls: 1, timeoutS: 5,
    }, UAS_ARGS);
    const phases = [await phase('alone', server)];
    await sleep(2000);
    phases.push(await phase('under attack', server, attacker(server, s2sPort)));
    console.log(report(phases, loadBefore));
  } finally {
    await server.stop();
  }
}

await runBounded(main, work, 4 * SECONDS + 240);
