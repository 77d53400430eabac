// Benchmark (not a test): the highest rate Parley sustains on loopback for three workloads, driven
// by sipp with the scenarios of test/sipp/, and the same against Kamailio 5.6 when it is installed.
//
//   npm run bench                                  # both servers when kamailio is installed
//   npm run bench -- --no-kamailio                 # Parley only
//   npm run bench -- --only relay                  # one workload (reply, relay, register)
//   npm run bench -- --no-bare                     # without the bare Node.js responder
//   npm run bench -- --step-seconds 5 --start-rate 500 --refine 3
//
// A step runs sipp at a fixed call rate for a few seconds. It passes when every call succeeded, sipp
// retransmitted nothing, and it achieved at least 95 % of the asked rate; a failing step says whether
// sipp itself sent below the rate and whose UDP socket dropped datagrams. The rate doubles from
// --start-rate until a step fails, then --refine bisection steps narrow the gap; the last passing
// step is the "max sustained rate", reported with the p50/p99 response times sipp measured in it.
//
// Workload (a) is also run, in the same run, against a bare Node.js UDP responder (bench/udp-responder.ts):
// what Node's datagram path alone sustains, the floor Parley's stateless answer is compared with.
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SippProcess, freePort, percentile, runSipp, summarize, type SippOptions } from '../test/support/sipp.js';
import {
  DOMAIN, KAMAILIO, ROOT, achievedRate, cpuDuring, indent, launchParley, offeredRate, peers, rateSearch, runBounded, sleep,
  startRelayUas, startServer, stepOptions, stepSettings, table, udpDrops, wantKamailio, UdpReceiveWatch,
  type Found, type Measured, type PingIds, type Server, type UdpSocketCounters,
} from './common.js';

/** This script's OPTIONS pings while waiting for a server to answer. */
const PING: PingIds = { branch: 'bench', callId: 'bench-ping' };
const REPLY_USER = 'bench-reply';
const BARE = 'bare Node';
const RELAY_USER = 'bench-uas';

const { values: args } = parseArgs({
  options: {
    ...stepOptions('3', '480'),
    'start-rate': { type: 'string', default: '250' },
    'max-rate': { type: 'string', default: '64000' },
    /** Only these workloads (reply, relay, register), comma-separated. */
    only: { type: 'string' },
    /** Leave out the bare Node.js responder of workload (a). */
    'no-bare': { type: 'boolean' },
  },
});
const { STEP_S, REFINE, BUDGET_S } = stepSettings(args);
const START_RATE = Number(args['start-rate']);
const MAX_RATE = Number(args['max-rate']);
const withKamailio = wantKamailio(args, existsSync(KAMAILIO), KAMAILIO);
const withBare = !args['no-bare'];

const work = mkdtempSync(join(tmpdir(), 'parley-bench-'));

// ---------------------------------------------------------------------------------------------
// Servers

async function startParley(): Promise<Server> {
  // No `status: 200` on the reply route: the schema takes 300-699 only, and 200 is the default.
  return launchParley(work, `routes:\n  - { method: MESSAGE, user: "${REPLY_USER}", handler: reply }\n  - { handler: relay }\n`, PING);
}

/** The bare Node.js UDP responder (bench/udp-responder.ts), for workload (a) only. */
async function startBareResponder(): Promise<Server> {
  const port = await freePort();
  return startServer(BARE, process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'udp-responder.ts'), '--port', String(port)], port, PING);
}

async function startKamailio(): Promise<Server> {
  const port = await freePort();
  const runtime = join(work, 'kamailio');
  mkdirSync(runtime, { recursive: true });
  return startServer('Kamailio', KAMAILIO, [
    '-f', join(ROOT, 'bench', 'kamailio', 'kamailio.cfg'),
    '-DD', '-E', // foreground, log to stderr
    '-m', '256', '-M', '16', // shared and per-process memory (MB): room for the registered users
    '-l', `udp:127.0.0.1:${port}`,
    '-Y', runtime,
  ], port, PING, { forks: true });
}

/** Waits until these processes are close to idle (under 5 % of a core over half a second), at most 40 s. */
async function settle(pids: number[], deadline: number): Promise<void> {
  const until = Math.min(Date.now() + 40_000, deadline);
  while (Date.now() < until && (await cpuDuring(() => pids, sleep(500))) > 0.05);
}

// ---------------------------------------------------------------------------------------------
// Workloads

/** Something a workload runs next to the server, e.g. the UAS that MESSAGEs are relayed to. */
interface Helper {
  pids(): number[];
  /** Called before each step: makes sure it still works (an overloaded sipp may give up). */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

interface Workload {
  key: string;
  label: string;
  /** Runs once per server before the steps: starts what the workload needs besides the sender. */
  prepare?(server: Server): Promise<Helper>;
  /** sipp options for one step; `step` numbers the steps, for fresh user names. */
  sipp(server: Server, rate: number, calls: number, step: number): SippOptions;
}

/** Rate, call count and bounds common to every step. */
function load(rate: number, calls: number): Pick<SippOptions, 'rate' | 'calls' | 'limit' | 'timeoutS' | 'rttFreq' | 'statsPeriodS' | 'extraArgs'> {
  return {
    rate,
    calls,
    // sipp throttles itself at -l open calls: two seconds' worth is far more than a keeping-up
    // server leaves open, so reaching it means the server is behind; the achieved rate shows it.
    limit: Math.max(200, rate * 2),
    timeoutS: STEP_S + 10,
    rttFreq: 100,
    statsPeriodS: STEP_S + 10,
    // The 4 MB socket buffers Parley asks for, for sipp too: a burst sipp itself dropped would make
    // it retransmit, and count against the server.
    extraArgs: ['-buff_size', String(4 << 20)],
  };
}

function messageTo(user: string) {
  return (server: Server, rate: number, calls: number): SippOptions => ({
    scenario: 'message.xml',
    remote: { host: '127.0.0.1', port: server.port },
    users: [['bench-sender', user, DOMAIN]],
    keys: { body: 'benchmark message' },
    vars: { expected: 200 },
    ...load(rate, calls),
  });
}

const allWorkloads: Workload[] = [
  { key: 'reply', label: '(a) MESSAGE answered by the server', sipp: messageTo(REPLY_USER) },
  {
    key: 'relay',
    label: '(b) MESSAGE relayed to a registered sipp UAS',
    async prepare(server) {
      const start = () => startRelayUas(server, RELAY_USER, BUDGET_S, { ...messageTo(RELAY_USER)(server, 10, 1), timeoutS: 5 });
      let uas = await start();
      return {
        pids: () => [uas.pid],
        async ready() {
          if (uas.running) return;
          process.stderr.write(`  ${server.name}: the relay UAS had exited, restarting it\n${indent(summarize(await uas.done))}\n`);
          peers.delete(uas);
          uas = await start();
        },
        async stop() {
          peers.delete(uas);
          await uas.stop();
        },
      };
    },
    sipp: messageTo(RELAY_USER),
  },
  {
    key: 'register',
    label: '(c) REGISTER, distinct users, expires 3600',
    sipp: (server, rate, calls, step) => ({
      scenario: 'register.xml',
      remote: { host: '127.0.0.1', port: server.port },
      users: Array.from({ length: calls }, (_, i) => [`bench-${step}-${i}`, DOMAIN, '-']),
      keys: { expires: 3600 },
      vars: { expected: 200, hold_ms: 0 },
      ...load(rate, calls),
    }),
  },
];
const workloads = args.only === undefined ? allWorkloads : allWorkloads.filter((w) => args.only!.split(',').includes(w.key));
if (workloads.length === 0) throw new Error(`--only: none of ${args.only}; workloads: ${allWorkloads.map((w) => w.key).join(', ')}`);

// ---------------------------------------------------------------------------------------------
// Stepping

/** sippCpu counts the sender plus the UAS when there is one. */
interface Step extends Measured {
  rate: number;
  achieved: number;
  /** What sipp sent: below `rate` when the sender, not the server, fell behind. */
  offered: number;
  /** The receive side of the server's socket and of the sender's (sipp's): who fell behind when datagrams were lost. */
  serverSocket: UdpSocketCounters;
  sippSocket: UdpSocketCounters;
}

interface Search extends Found<Step> {
  steps: number;
}

async function runStep(server: Server, workload: Workload, helper: Helper | undefined, rate: number, step: number): Promise<Step> {
  await helper?.ready();
  const calls = Math.round(rate * STEP_S);
  const dropsBefore = udpDrops();
  const sipp = await SippProcess.start(workload.sipp(server, rate, calls, step));
  const sockets = new UdpReceiveWatch(() => [server.port, sipp.port]);
  const [result, serverCpu, sippCpu] = await Promise.all([
    sipp.done,
    cpuDuring(() => server.pids(), sipp.done),
    cpuDuring(() => [sipp.pid, ...(helper?.pids() ?? [])], sipp.done),
  ]);
  const socket = sockets.stop();
  const [serverSocket, sippSocket] = [socket(server.port), socket(sipp.port)];
  const drops = udpDrops() - dropsBefore;
  const stats = result.stats;
  const achieved = achievedRate(result);
  const offered = offeredRate(result);
  let problem: string | undefined;
  if (!stats) problem = `no statistics (sipp exit ${result.exitCode ?? result.signal})`;
  else if (stats.failed > 0 || stats.successful < calls) problem = `${calls - stats.successful} of ${calls} calls failed or unfinished`;
  else if (stats.retransmissions > 0) problem = `${stats.retransmissions} retransmissions`;
  else if (achieved < 0.95 * rate) problem = offered < 0.95 * rate ? `sipp sent only ${Math.round(offered)}/s` : `achieved only ${Math.round(achieved)}/s`;
  // Lost datagrams are told by whose socket overflowed: the server's, or sipp's own (sipp reads one
  // datagram per turn of its loop, and a sipp that falls behind fails the step as much as the server).
  if (problem && serverSocket.drops + sippSocket.drops > 0) problem += ` (dropped at server ${serverSocket.drops}, at sipp ${sippSocket.drops})`;
  return { rate, achieved, offered, result, serverCpu, sippCpu, drops, serverSocket, sippSocket, problem };
}

const kB = (bytes: number) => Math.round(bytes / 1024);

async function search(server: Server, workload: Workload, helper: Helper | undefined, deadline: number): Promise<Search> {
  const found: Search = { steps: 0 };
  const next = rateSearch(found, (step) => step.rate, START_RATE, (rate) => rate <= MAX_RATE, REFINE);
  for (let rate = next(); rate !== undefined; rate = next()) {
    if (Date.now() + (STEP_S + 5) * 1000 > deadline) {
      process.stderr.write(`  ${server.name} ${workload.key}: out of time budget before the ${rate}/s step\n`);
      break;
    }
    const step = await runStep(server, workload, helper, rate, found.steps++);
    const rtts = step.result.rtts.map((r) => r.ms);
    process.stderr.write(
      `  ${server.name.padEnd(8)} ${workload.key.padEnd(8)} ${String(rate).padStart(6)}/s  ${(step.problem ?? 'ok').padEnd(38)}` +
        ` sent ${String(Math.round(step.offered)).padStart(6)}/s achieved ${String(Math.round(step.achieved)).padStart(6)}/s  p50 ${percentile(rtts, 50)} ms  p99 ${percentile(rtts, 99)} ms` +
        `  CPU server ${step.serverCpu.toFixed(2)} sipp ${step.sippCpu.toFixed(2)}  UDP drops (whole machine) ${step.drops}` +
        `  most queued server ${kB(step.serverSocket.queued)} kB sipp ${kB(step.sippSocket.queued)} kB\n`,
    );
    if (step.problem) {
      found.failed = step;
      // An overloaded server and UAS keep retransmitting for up to 32 s (Timer F, tm's fr_timer):
      // the next step must not measure that.
      await settle([...server.pids(), ...(helper?.pids() ?? [])], deadline);
    } else {
      found.best = step;
      await sleep(500);
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Report

function report(results: Map<string, Map<string, Search>>, loadBefore: number[]): string {
  const names = [...results.keys()];
  const others = names.slice(1);
  const header = ['workload', ...names.flatMap((n) => [`${n} max/s`, 'p50 ms', 'p99 ms', 'CPU srv/sipp']), ...others.map((n) => `${names[0]}/${n}`)];
  const rows = [header];
  const stops: string[] = [];
  for (const workload of workloads) {
    const row = [workload.label];
    const maxima: number[] = [];
    for (const name of names) {
      const found = results.get(name)!.get(workload.key);
      const best = found?.best;
      maxima.push(best?.rate ?? NaN);
      if (best) {
        const rtts = best.result.rtts.map((r) => r.ms);
        row.push(String(best.rate), String(percentile(rtts, 50)), String(percentile(rtts, 99)), `${best.serverCpu.toFixed(2)}/${best.sippCpu.toFixed(2)}`);
      } else row.push(found ? `< ${START_RATE}` : 'not run', '-', '-', '-');
      const failed = found?.failed;
      if (found) stops.push(`  ${name}, ${workload.label}: ${failed ? `${failed.rate}/s failed: ${failed.problem}` : 'no step failed'}`);
    }
    for (let i = 1; i < names.length; i++) row.push(Number.isFinite(maxima[0]!) && Number.isFinite(maxima[i]!) ? (maxima[0]! / maxima[i]!).toFixed(2) : '-');
    rows.push(row);
  }
  const cores = cpus().length;
  return `
Parley benchmark, ${new Date().toISOString()}, ${cores} cores (${cpus()[0]?.model ?? 'unknown CPU'}), sipp over UDP on 127.0.0.1
load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadavg().map((l) => l.toFixed(1)).join(' ')}: anything above what this run adds (~2) is other work sharing the cores
${table(rows)}

max/s   highest passing step: no failed call, no retransmission, >= 95 % of the rate achieved
        ("sipp sent only": sipp itself fell below the rate; "dropped at": whose socket overflowed)
        (${STEP_S} s steps, doubling from ${START_RATE}/s until one fails, then ${REFINE} bisection steps between
        the last passing and the lowest failing rate: the limit lies between max/s and that failing rate)
p50/p99 sipp's response times in that step, in whole milliseconds (its resolution: 0 means < 1 ms)
CPU     cores busy during that step: the server's, then sipp's (sender, plus the UAS for (b))
Parley: one Node.js process; SQLite, a REGISTER is committed and its log synced to disk before its 200.
${withKamailio ? 'Kamailio 5.6: bench/kamailio/kamailio.cfg, children=2 (two UDP workers), usrloc db_mode 0 (memory only), UDP buffers up to 4 MB as for Parley.\n' : ''}${withBare ? `${BARE}: bench/udp-responder.ts, one Node.js process answering every request 200 with no SIP stack, (a) only:\n        ${names[0]}/${BARE} is the share of Node's own datagram path Parley keeps (target >= 0.80).\n` : ''}sipp runs on the same ${cores} cores: up to one core per sipp process, two processes in (b); at the
highest rates it competes with the server for CPU, so those numbers measure sipp as much as the server.
Why each search stopped:
${stops.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const deadline = Date.now() + BUDGET_S * 1000;
  const loadBefore = loadavg();
  // Which workloads each server is measured on: the bare responder can only answer.
  const contenders: Array<{ start: () => Promise<Server>; serves: (workload: Workload) => boolean }> = [
    { start: startParley, serves: () => true },
    ...(withKamailio ? [{ start: startKamailio, serves: () => true }] : []),
    ...(withBare ? [{ start: startBareResponder, serves: (workload: Workload) => workload.key === 'reply' }] : []),
  ];
  const results = new Map<string, Map<string, Search>>();
  let pairsLeft = contenders.reduce((pairs, contender) => pairs + workloads.filter(contender.serves).length, 0);
  for (const { start, serves } of contenders) {
    for (const workload of workloads.filter(serves)) {
      // A fresh server per workload: what an overloaded step left behind (transactions kept for
      // Timer J, queues, heap) must not weigh on the next workload's figures.
      const server = await start();
      process.stderr.write(`${server.name} listening on udp:127.0.0.1:${server.port} for ${workload.key}\n`);
      const byWorkload = results.get(server.name) ?? new Map<string, Search>();
      results.set(server.name, byWorkload);
      try {
        const helper = await workload.prepare?.(server);
        try {
          // Warm-up, not measured: JIT compilation, first database writes, socket buffers.
          await runSipp(workload.sipp(server, 200, 400, -1));
          // Each (server, workload) pair gets an equal share of the time left.
          const share = (deadline - Date.now()) / pairsLeft--;
          byWorkload.set(workload.key, await search(server, workload, helper, Date.now() + share));
        } finally {
          await helper?.stop();
        }
      } finally {
        await server.stop();
      }
    }
  }
  console.log(report(results, loadBefore));
}

// Bounded no matter what: past the budget and a margin, everything this script started is stopped.
await runBounded(main, work, BUDGET_S + 60);
