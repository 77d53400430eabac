// Benchmark (not a test): the highest rate Parley sustains on loopback for three workloads, driven
// by sipp with the scenarios of test/sipp/, and the same against Kamailio 5.6 when it is installed.
//
//   npm run bench                                  # both servers when kamailio is installed
//   npm run bench -- --no-kamailio                 # Parley only
//   npm run bench -- --step-seconds 5 --start-rate 500 --refine 3
//
// A step runs sipp at a fixed call rate for a few seconds. It passes when every call succeeded, sipp
// retransmitted nothing, and it achieved at least 95 % of the asked rate. The rate doubles from
// --start-rate until a step fails, then --refine bisection steps narrow the gap; the last passing
// step is the "max sustained rate", reported with the p50/p99 response times sipp measured in it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SippProcess, freePort, percentile, runSipp, summarize, type SippOptions, type SippResult } from '../test/support/sipp.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const KAMAILIO = '/usr/sbin/kamailio';
const DOMAIN = 'localhost';
const REPLY_USER = 'bench-reply';
const RELAY_USER = 'bench-uas';

const { values: args } = parseArgs({
  options: {
    kamailio: { type: 'boolean' },
    'no-kamailio': { type: 'boolean' },
    'step-seconds': { type: 'string', default: '3' },
    'start-rate': { type: 'string', default: '250' },
    'max-rate': { type: 'string', default: '64000' },
    refine: { type: 'string', default: '2' },
    'budget-seconds': { type: 'string', default: '480' },
  },
});
const STEP_S = Number(args['step-seconds']);
const START_RATE = Number(args['start-rate']);
const MAX_RATE = Number(args['max-rate']);
const REFINE = Number(args.refine);
const BUDGET_S = Number(args['budget-seconds']);
if (args.kamailio && !existsSync(KAMAILIO)) throw new Error(`--kamailio: ${KAMAILIO} is not installed`);
const withKamailio = args['no-kamailio'] ? false : Boolean(args.kamailio) || existsSync(KAMAILIO);

const work = mkdtempSync(join(tmpdir(), 'parley-bench-'));
const children = new Set<ChildProcess>();
const peers = new Set<SippProcess>();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Servers

interface Server {
  name: string;
  port: number;
  /** Processes whose CPU time is the server's (Kamailio forks its workers). */
  pids(): number[];
  stop(): Promise<void>;
  /** The end of its output, for when it fails. */
  log(): string;
}

function launch(command: string, argv: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return { child, log: () => log };
}

/** SIGTERM (both servers stop cleanly on it), SIGKILL 5 s later. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Resolves once something answers an OPTIONS on udp 127.0.0.1:port; any status will do. */
async function waitForSip(port: number, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const local = socket.address().port;
  let answered = false;
  socket.on('message', () => (answered = true));
  const deadline = Date.now() + timeoutMs;
  try {
    for (let i = 0; !answered; i++) {
      if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before answering`);
      if (Date.now() > deadline) throw new Error(`nothing answered OPTIONS on port ${port} within ${timeoutMs} ms`);
      const options = [
        `OPTIONS sip:${DOMAIN} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-bench-${i};rport`,
        'Max-Forwards: 70',
        `From: <sip:bench@${DOMAIN}>;tag=bench`,
        `To: <sip:${DOMAIN}>`,
        `Call-ID: bench-ping-${i}@127.0.0.1`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      socket.send(options, port, '127.0.0.1');
      await sleep(200);
    }
  } finally {
    socket.close();
  }
}

async function startParley(): Promise<Server> {
  const port = await freePort();
  const dir = join(work, 'parley');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'parley.yaml');
  // No `status: 200` on the reply route: the schema takes 300-699 only, and 200 is the default.
  writeFileSync(config, `routes:\n  - { method: MESSAGE, user: "${REPLY_USER}", handler: reply }\n  - { handler: relay }\n`);
  const { child, log } = launch(process.execPath, [
    'bin/parley.js', 'start', '--config', config,
    '--listen', `udp:127.0.0.1:${port}`, '--listen', `tcp:127.0.0.1:${port}`,
    '--db', `sqlite:${join(dir, 'parley.db')}`, '--domain', DOMAIN, '--log-level', 'warn',
  ]);
  await waitForSip(port, child).catch((error: Error) => Promise.reject(new Error(`Parley: ${error.message}\n${log()}`)));
  return { name: 'Parley', port, pids: () => [child.pid!], stop: () => terminate(child), log };
}

async function startKamailio(): Promise<Server> {
  const port = await freePort();
  const runtime = join(work, 'kamailio');
  mkdirSync(runtime, { recursive: true });
  const { child, log } = launch(KAMAILIO, [
    '-f', join(ROOT, 'bench', 'kamailio', 'kamailio.cfg'),
    '-DD', '-E', // foreground, log to stderr
    '-m', '256', '-M', '16', // shared and per-process memory (MB): room for the registered users
    '-l', `udp:127.0.0.1:${port}`,
    '-Y', runtime,
  ]);
  await waitForSip(port, child).catch((error: Error) => Promise.reject(new Error(`Kamailio: ${error.message}\n${log()}`)));
  // Its workers are forked at start and stay: look them up once, not at every CPU sample.
  const pids = [child.pid!, ...childrenOf(child.pid!)];
  return { name: 'Kamailio', port, pids: () => pids, stop: () => terminate(child), log };
}

function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => procStat(Number(entry))?.[1] === String(pid))
    .map(Number);
}

/** Fields of /proc/PID/stat after the command name (state, ppid, ...), or undefined once it is gone. */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * CPU use of some processes while `during` runs, in cores (1.0 = one core busy throughout).
 * Sampled, because an exited process's times can no longer be read: its last sample counts.
 */
async function cpuDuring(pids: () => number[], during: Promise<unknown>): Promise<number> {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const sample = () => {
    for (const pid of pids()) {
      const fields = procStat(pid);
      if (!fields) continue;
      // utime and stime, in clock ticks (1/100 s on Linux).
      const ticks = Number(fields[11]) + Number(fields[12]);
      if (!first.has(pid)) first.set(pid, ticks);
      last.set(pid, ticks);
    }
  };
  const started = Date.now();
  sample();
  const timer = setInterval(sample, 100);
  try {
    await during;
  } finally {
    clearInterval(timer);
  }
  let ticks = 0;
  for (const [pid, end] of last) ticks += end - first.get(pid)!;
  return ticks / 100 / ((Date.now() - started) / 1000);
}

/** Waits until these processes are close to idle (under 5 % of a core over half a second), at most 40 s. */
async function settle(pids: number[], deadline: number): Promise<void> {
  const until = Math.min(Date.now() + 40_000, deadline);
  while (Date.now() < until && (await cpuDuring(() => pids, sleep(500))) > 0.05);
}

/** The kernel's count of UDP datagrams dropped for a full receive buffer, all sockets. */
function udpDrops(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf('RcvbufErrors')]);
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

/** The UAS of workload (b): registers RELAY_USER, then answers every MESSAGE; resolves once reachable. */
async function startRelayUas(server: Server): Promise<SippProcess> {
  const uas = await SippProcess.start({
    scenario: 'register.xml',
    ooc: 'answer.xml',
    remote: { host: '127.0.0.1', port: server.port },
    users: [[RELAY_USER, DOMAIN, '-']],
    keys: { expires: 3600 },
    vars: { expected: 200, hold_ms: BUDGET_S * 1000, answer_delay_ms: 0 },
    calls: 1,
    timeoutS: BUDGET_S + 60,
    traceErrors: false,
    extraArgs: ['-buff_size', String(4 << 20)],
  });
  peers.add(uas);
  // The first MESSAGE that gets its 200 proves the UAS registered.
  for (let attempt = 0; ; attempt++) {
    const probe = await runSipp({ ...messageTo(RELAY_USER)(server, 10, 1), timeoutS: 5 });
    if (probe.exitCode === 0) return uas;
    if (attempt === 20) throw new Error(`${server.name}: the relay UAS never became reachable\n${summarize(probe)}`);
    await sleep(250);
  }
}

const indent = (text: string) => text.replace(/^/gm, '    ');

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

const workloads: Workload[] = [
  { key: 'reply', label: '(a) MESSAGE answered by the server', sipp: messageTo(REPLY_USER) },
  {
    key: 'relay',
    label: '(b) MESSAGE relayed to a registered sipp UAS',
    async prepare(server) {
      let uas = await startRelayUas(server);
      return {
        pids: () => [uas.pid],
        async ready() {
          if (uas.running) return;
          process.stderr.write(`  ${server.name}: the relay UAS had exited, restarting it\n${indent(summarize(await uas.done))}\n`);
          peers.delete(uas);
          uas = await startRelayUas(server);
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

// ---------------------------------------------------------------------------------------------
// Stepping

interface Step {
  rate: number;
  achieved: number;
  result: SippResult;
  /** CPU in cores during the step: the server's, and sipp's (sender plus UAS when there is one). */
  serverCpu: number;
  sippCpu: number;
  drops: number;
  problem?: string;
}

interface Search {
  best?: Step;
  /** The lowest failing step, and so what bounds `best`. */
  failed?: Step;
  steps: number;
}

async function runStep(server: Server, workload: Workload, helper: Helper | undefined, rate: number, step: number): Promise<Step> {
  await helper?.ready();
  const calls = Math.round(rate * STEP_S);
  const dropsBefore = udpDrops();
  const sipp = await SippProcess.start(workload.sipp(server, rate, calls, step));
  const [result, serverCpu, sippCpu] = await Promise.all([
    sipp.done,
    cpuDuring(() => server.pids(), sipp.done),
    cpuDuring(() => [sipp.pid, ...(helper?.pids() ?? [])], sipp.done),
  ]);
  const drops = udpDrops() - dropsBefore;
  const stats = result.stats;
  // The pace responses came at between the first and the last timed one: what sipp and the server
  // kept up together, leaving out start-up and the wait for the last answers, which would weigh
  // on short steps. (Calls over elapsed time when too few responses were timed.)
  const rtts = result.rtts;
  const span = rtts.length > 10 ? (rtts[rtts.length - 1]!.atMs - rtts[0]!.atMs) / 1000 : 0;
  const achieved = span > 0 ? (rtts.length - 1) / span : stats && stats.elapsedS > 0 ? stats.outgoing / stats.elapsedS : 0;
  let problem: string | undefined;
  if (!stats) problem = `no statistics (sipp exit ${result.exitCode ?? result.signal})`;
  else if (stats.failed > 0 || stats.successful < calls) problem = `${calls - stats.successful} of ${calls} calls failed or unfinished`;
  else if (stats.retransmissions > 0) problem = `${stats.retransmissions} retransmissions`;
  else if (achieved < 0.95 * rate) problem = `achieved only ${Math.round(achieved)}/s`;
  return { rate, achieved, result, serverCpu, sippCpu, drops, problem };
}

/** Rounds a rate to two significant digits, so that bisected steps read well. */
const nice = (rate: number) => {
  const unit = 10 ** Math.max(0, Math.floor(Math.log10(rate)) - 1);
  return Math.round(rate / unit) * unit;
};

async function search(server: Server, workload: Workload, helper: Helper | undefined, deadline: number): Promise<Search> {
  const found: Search = { steps: 0 };
  let refinements = 0;
  const next = (): number | undefined => {
    if (!found.failed) {
      const rate = found.best ? found.best.rate * 2 : START_RATE;
      return rate <= MAX_RATE ? rate : undefined;
    }
    if (refinements++ >= REFINE) return undefined;
    const low = found.best?.rate ?? 0;
    const rate = nice((low + found.failed.rate) / 2);
    return rate > low && rate < found.failed.rate ? rate : undefined;
  };
  for (let rate = next(); rate !== undefined; rate = next()) {
    if (Date.now() + (STEP_S + 5) * 1000 > deadline) {
      process.stderr.write(`  ${server.name} ${workload.key}: out of time budget before the ${rate}/s step\n`);
      break;
    }
    const step = await runStep(server, workload, helper, rate, found.steps++);
    const rtts = step.result.rtts.map((r) => r.ms);
    process.stderr.write(
      `  ${server.name.padEnd(8)} ${workload.key.padEnd(8)} ${String(rate).padStart(6)}/s  ${(step.problem ?? 'ok').padEnd(38)}` +
        ` achieved ${String(Math.round(step.achieved)).padStart(6)}/s  p50 ${percentile(rtts, 50)} ms  p99 ${percentile(rtts, 99)} ms` +
        `  CPU server ${step.serverCpu.toFixed(2)} sipp ${step.sippCpu.toFixed(2)}  UDP drops (whole machine) ${step.drops}\n`,
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

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((v, c) => v.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

function report(results: Map<string, Map<string, Search>>, loadBefore: number[]): string {
  const names = [...results.keys()];
  const header = ['workload', ...names.flatMap((n) => [`${n} max/s`, 'p50 ms', 'p99 ms', 'CPU srv/sipp'])];
  if (names.length > 1) header.push(`${names[0]}/${names[1]}`);
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
      stops.push(`  ${name}, ${workload.label}: ${failed ? `${failed.rate}/s failed: ${failed.problem}` : 'no step failed'}`);
    }
    if (names.length > 1) row.push(maxima.every(Number.isFinite) ? (maxima[0]! / maxima[1]!).toFixed(2) : '-');
    rows.push(row);
  }
  const cores = cpus().length;
  return `
Parley benchmark, ${new Date().toISOString()}, ${cores} cores (${cpus()[0]?.model ?? 'unknown CPU'}), sipp over UDP on 127.0.0.1
load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadavg().map((l) => l.toFixed(1)).join(' ')}: anything above what this run adds (~2) is other work sharing the cores
${table(rows)}

max/s   highest passing step: no failed call, no retransmission, >= 95 % of the rate achieved
        (${STEP_S} s steps, doubling from ${START_RATE}/s until one fails, then ${REFINE} bisection steps between
        the last passing and the lowest failing rate: the limit lies between max/s and that failing rate)
p50/p99 sipp's response times in that step, in whole milliseconds (its resolution: 0 means < 1 ms)
CPU     cores busy during that step: the server's, then sipp's (sender, plus the UAS for (b))
Parley: one Node.js process; SQLite with synchronous=FULL, a REGISTER is committed before its 200.
${withKamailio ? 'Kamailio 5.6: bench/kamailio/kamailio.cfg, children=2 (two UDP workers), usrloc db_mode 0 (memory only), UDP buffers up to 4 MB as for Parley.\n' : ''}sipp runs on the same ${cores} cores: up to one core per sipp process, two processes in (b); at the
highest rates it competes with the server for CPU, so those numbers measure sipp as much as the server.
Why each search stopped:
${stops.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const deadline = Date.now() + BUDGET_S * 1000;
  const loadBefore = loadavg();
  const starters: Array<() => Promise<Server>> = withKamailio ? [startParley, startKamailio] : [startParley];
  const results = new Map<string, Map<string, Search>>();
  let pairsLeft = starters.length * workloads.length;
  for (const start of starters) {
    const server = await start();
    process.stderr.write(`${server.name} listening on udp:127.0.0.1:${server.port}\n`);
    const byWorkload = new Map<string, Search>();
    results.set(server.name, byWorkload);
    try {
      for (const workload of workloads) {
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
      }
    } finally {
      await server.stop();
    }
  }
  console.log(report(results, loadBefore));
}

async function cleanup(): Promise<void> {
  await Promise.all([...peers].map((p) => p.stop()));
  await Promise.all([...children].map((c) => terminate(c)));
  rmSync(work, { recursive: true, force: true });
}

// Bounded no matter what: past the budget and a margin, everything this script started is stopped.
const watchdog = setTimeout(() => {
  process.stderr.write('bench: over the time budget, stopping everything\n');
  void cleanup().then(() => process.exit(1));
}, (BUDGET_S + 60) * 1000);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanup().then(() => process.exit(130)));
}

try {
  await main();
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
