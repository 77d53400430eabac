// Benchmark (not a test): the highest rate Parley sustains on loopback for three workloads, driven
// by sipp with the scenarios of test/sipp/, and the same against Kamailio 5.6 when it is installed.
//
//   npm run bench                                  # both servers when kamailio is installed
//   npm run bench -- --no-kamailio                 # Parley only
//   npm run bench -- --only relay                  # one workload (reply, relay, register)
//   npm run bench -- --only relay --start-rate 8000 --max-rate 16000 --refine 3   # around the relay's knee
//   npm run bench -- --no-bare                     # without the bare Node.js responder
//   npm run bench -- --step-seconds 5 --start-rate 500 --refine 3 --repeats 5
//   npm run bench -- --only reply --start-rate 20000 --max-rate 20000   # one rate: CPU per answer side by side
//
// A run is sipp at a fixed call rate for a few seconds against one server. It passes when every call
// succeeded, sipp retransmitted nothing, and it achieved at least 95 % of the asked rate; a failing
// run says whether sipp itself sent below the rate and whose UDP socket dropped datagrams.
//
// Fair and stable on a small machine: all the servers of a workload run at once, idle but for the
// one under load, and at each rate step they take turns run by run (Parley, Kamailio, bare, then
// Kamailio, bare, Parley, ...), each server's step being decided by a majority of --repeats runs
// (3: two that agree, a third when they do not) and told by their medians. Other work on the
// machine then weighs on every server alike rather than on whichever ran during it. With taskset
// and two cores or more, each server is pinned to the last CPU and every sipp to the others (--no-pin
// leaves them free): at saturation the server and sipp no longer take cores from each other, which
// made the top steps swing from run to run. Every run reports the server's CPU and its CPU time
// per answer, which compares the servers below saturation, where rates alone cannot; the summary
// turns it into a ratio too ("by CPU"), at the highest rate both servers passed.
//
// The rate doubles from --start-rate (by default each workload's own: 500/s, the relay 4000/s, where
// both servers pass far below their limits on a 2-core machine, so that its costlier steps go to the
// bisection) until a step fails, then --refine bisection steps (2, the relay 3) narrow the gap;
// the last passing step is the "max sustained rate", reported with the p50/p99 response times sipp
// measured in its runs. Workload (a) is also run against a bare Node.js UDP responder
// (bench/udp-responder.ts): what Node's datagram path alone sustains, the floor Parley's stateless
// answer is compared with. The defaults take about 10 minutes for the three workloads.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SippProcess, freePort, percentile, runSipp, summarize, type SippOptions } from '../test/support/sipp.js';
import {
  DOMAIN, KAMAILIO, ROOT, achievedRate, cpuDuring, indent, launchParley, offeredRate, peers, pinToCpus, rateSearch, runBounded, settle, cpuTicks,
  startRelayUas, startServer, stepDecided, stepOptions, stepSettings, table, udpDrops, wantKamailio, UdpReceiveWatch,
  type Found, type Measured, type PingIds, type Server, type UdpSocketCounters,
} from './common.js';

/** This script's OPTIONS pings while waiting for a server to answer. */
const PING: PingIds = { branch: 'bench', callId: 'bench-ping' };
const REPLY_USER = 'bench-reply';
const BARE = 'bare Node';
const RELAY_USER = 'bench-uas';

const { values: args } = parseArgs({
  options: {
    ...stepOptions('3', '900'),
    /** Bisection steps of every workload's search; by default each workload's own (refine, else 2). */
    refine: { type: 'string' },
    /** The first rate of every workload's search; by default each workload's own (startRate, else 500). */
    'start-rate': { type: 'string' },
    'max-rate': { type: 'string', default: '64000' },
    /** Only these workloads (reply, relay, register), comma-separated. */
    only: { type: 'string' },
    /** Leave out the bare Node.js responder of workload (a). */
    'no-bare': { type: 'boolean' },
    /** Runs that decide a step, by majority; the servers take turns run by run. */
    repeats: { type: 'string', default: '3' },
    /** Leave the servers and sipp free to run on any core. */
    'no-pin': { type: 'boolean' },
  },
});
const { STEP_S, BUDGET_S } = stepSettings(args);
/** Where a workload's search starts without --start-rate. */
const DEFAULT_START_RATE = 500;
const startRateOf = (workload: Workload) => (args['start-rate'] === undefined ? (workload.startRate ?? DEFAULT_START_RATE) : Number(args['start-rate']));
/** Bisection steps when neither --refine nor the workload says. */
const DEFAULT_REFINE = 2;
const refineOf = (workload: Workload) => (args.refine === undefined ? (workload.refine ?? DEFAULT_REFINE) : Number(args.refine));
const MAX_RATE = Number(args['max-rate']);
const withKamailio = wantKamailio(args, existsSync(KAMAILIO), KAMAILIO);
const withBare = !args['no-bare'];
const REPEATS = Number(args.repeats);
if (!(Number.isInteger(REPEATS) && REPEATS >= 1)) throw new Error(`--repeats: a whole number of runs, at least 1, not ${args.repeats}`);

/** Why the servers and sipp run unpinned, or undefined when they are pinned. */
const pinningOff = args['no-pin'] ? '--no-pin' : cpus().length < 2 ? 'one core' : !hasTaskset() ? 'taskset is missing (Debian package util-linux)' : undefined;
/** The CPU list (taskset's syntax) each server is pinned to, and every sipp's. */
const pinning = pinningOff ? undefined : { server: String(cpus().length - 1), sipp: cpus().length === 2 ? '0' : `0-${cpus().length - 2}`, sippCores: cpus().length - 1 };

/**
 * A step's sipp processes (sender, and the UAS for the relay) busy at least this share of the CPUs
 * they are pinned to: the load, not only the server, may have been what fell behind.
 */
const SIPP_SATURATED = 0.9;

/**
 * A failing run during which the server's CPU was this busy (a share of it) with anything but the
 * server's processes (other processes, this script included, and interrupts) says so: that time may
 * have been what the server lacked.
 */
const OTHER_WORK_ON_SERVER_CPU = 0.1;

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const work = mkdtempSync(join(tmpdir(), 'parley-bench-'));

// ---------------------------------------------------------------------------------------------
// Servers

/** Each start an empty database of its own, deleted when the server stops. */
async function startParley(): Promise<Server> {
  const dir = mkdtempSync(join(work, 'parley-'));
  // No `status: 200` on the reply route: the schema takes 300-699 only, and 200 is the default.
  const server = await launchParley(dir, `routes:\n  - { method: MESSAGE, user: "${REPLY_USER}", handler: reply }\n  - { handler: relay }\n`, PING);
  return { ...server, stop: () => server.stop().then(() => rmSync(dir, { recursive: true, force: true })) };
}

/** The bare Node.js UDP responder (bench/udp-responder.ts), for workload (a) only. */
async function startBareResponder(): Promise<Server> {
  const port = await freePort();
  return startServer(BARE, process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'udp-responder.ts'), '--port', String(port)], port, PING);
}

/**
 * Shared memory Kamailio keeps a registered user in (usrloc, db_mode 0): about 1.2 kB measured with
 * bench/kamailio/kamailio.cfg (16 MB held 11,567 users, 64 MB 55,167), with room to spare. A save()
 * that finds no memory left is answered 500 Server Internal Error at once: when the users of earlier
 * steps had filled the 256 MB it was given, every REGISTER of the later steps failed that way, fast,
 * with no drop and its workers far from busy.
 */
const KAMAILIO_BYTES_PER_USER = 2048;
/** Shared memory for what Kamailio keeps besides the users: transactions, hash tables, modules (MB). */
const KAMAILIO_BASE_SHM_MB = 256;

async function startKamailio(): Promise<Server> {
  const port = await freePort();
  const runtime = join(work, 'kamailio');
  mkdirSync(runtime, { recursive: true });
  return startServer('Kamailio', KAMAILIO, [
    '-f', join(ROOT, 'bench', 'kamailio', 'kamailio.cfg'),
    '-DD', '-E', // foreground, log to stderr
    // Shared and per-process memory (MB). Shared, room for the most users a REGISTER step registers
    // (every step starts with a fresh Kamailio, see freshServers): Kamailio maps it all at start, but
    // the pages it never writes cost nothing.
    '-m', String(KAMAILIO_BASE_SHM_MB + Math.ceil((mostUsersPerStep() * KAMAILIO_BYTES_PER_USER) / (1 << 20))), '-M', '16',
    '-l', `udp:127.0.0.1:${port}`,
    '-Y', runtime,
  ], port, PING, { forks: true });
}

/** Calls that warm a server up before it is measured. */
const WARM_UP_CALLS = 2000;

/** The most users one REGISTER step registers with a server: its runs at the highest rate, after the warm-up. */
function mostUsersPerStep(): number {
  return REPEATS * Math.round(MAX_RATE * STEP_S) + WARM_UP_CALLS;
}


/**
 * Starts a server for a workload, pinned, with what the workload runs beside it, and warms it up;
 * stops them again when that fails.
 */
async function launch(start: () => Promise<Server>, workload: Workload): Promise<{ server: Server; helper?: Helper }> {
  const server = await start();
  let helper: Helper | undefined;
  try {
    if (pinning) pinToCpus(server.pids(), pinning.server);
    process.stderr.write(`${server.name} listening on udp:127.0.0.1:${server.port} for ${workload.key}\n`);
    helper = await workload.prepare?.(server);
    // Warm-up, not measured: JIT compilation (enough calls for V8's optimizing tier, or the first
    // step of a search started high would measure Parley's interpreter), first database writes,
    // socket buffers.
    await runSipp(workload.sipp(server, 1000, WARM_UP_CALLS, -1));
    return { server, helper };
  } catch (error) {
    await helper?.stop();
    await server.stop();
    throw error;
  }
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
  /**
   * Servers started afresh (and warmed up again, with what `prepare` runs beside them started
   * again), so that no run inherits what the earlier ones left: for REGISTER, the users they
   * registered (Parley's database, Kamailio's shared memory and hash chains), before every step;
   * for the relay, before a server's run that follows a failed run of it: what an overloaded run
   * left goes on for half a minute after it (its MESSAGEs retransmitted, then stored for the UAS
   * when their transactions time out, and the full offline mailbox had the next runs answered 486),
   * while a passing run left nothing (every MESSAGE answered 200 by the UAS at the first try), which
   * spares the restarts of the doubling. `what`: what the fresh servers hold, said in the report's legend.
   */
  freshServers?: { before: 'every step' | 'a run after a failed one'; what: string };
  /** The first rate of its search when --start-rate is not given (500/s otherwise). */
  startRate?: number;
  /** Its bisection steps when --refine is not given (2 otherwise). */
  refine?: number;
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
    // A run still going 3 s after its last call was sent has had a request retransmitted (T1 is
    // 500 ms) and failed: waiting longer for its stragglers only costs the time of later steps.
    timeoutS: STEP_S + 3,
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
    freshServers: { before: 'a run after a failed one', what: 'the UAS registered again, no MESSAGE stored for it (a new Parley database)' },
    // Both servers pass it with most of their core to spare (about 0.4 of it): the doubling spends
    // two steps below the knee, not five, and the bisection gets the time (each run after a failed
    // one starts the server and the UAS again): three steps, so that the limits of both servers,
    // between 8000/s and 16000/s on a 2-core machine, are known to 1000/s.
    startRate: 4000,
    refine: 3,
    sipp: messageTo(RELAY_USER),
  },
  {
    key: 'register',
    label: '(c) REGISTER, distinct users, expires 3600',
    freshServers: { before: 'every step', what: 'no user registered (a new Parley database)' },
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

/** One sipp run against one server at one rate; sippCpu counts the sender plus the UAS when there is one. */
interface Run extends Measured {
  achieved: number;
  /** What sipp sent: below the rate when the sender, not the server, fell behind. */
  offered: number;
  /** The receive side of the server's socket and of the sender's (sipp's): who fell behind when datagrams were lost. */
  serverSocket: UdpSocketCounters;
  sippSocket: UdpSocketCounters;
}

/** One server at one rate: its runs, alternated with the other servers' runs, told by their medians. */
interface Step {
  rate: number;
  runs: Run[];
  /** Medians over the runs (of two, the lower). */
  achieved: number;
  offered: number;
  serverCpu: number;
  sippCpu: number;
  /** The response times of all its runs together (ms). */
  rtts: number[];
  /** Why the step failed, when the majority of --repeats runs did: the first failing run's problem. */
  problem?: string;
}

/** A server measured on a workload: what runs beside it, where its rate search stands, the steps it ran. */
interface Contender {
  /** Starts the server again (a workload's freshServers). */
  start: () => Promise<Server>;
  server: Server;
  helper?: Helper;
  found: Found<Step>;
  steps: Step[];
  /** The rate of its next step; undefined once its search is over. */
  next: () => number | undefined;
  /** Its runs so far, numbering each run's users (fresh names for REGISTER). */
  runs: number;
  /** Whether its last run failed (freshServers before 'a run after a failed one'). */
  lastRunFailed: boolean;
}

async function runOnce(contender: Contender, workload: Workload, rate: number): Promise<Run> {
  const { server, helper } = contender;
  await helper?.ready();
  const calls = Math.round(rate * STEP_S);
  const dropsBefore = udpDrops();
  const sipp = await SippProcess.start(workload.sipp(server, rate, calls, contender.runs++));
  if (pinning) pinToCpus([sipp.pid, ...(helper?.pids() ?? [])], pinning.sipp);
  const sockets = new UdpReceiveWatch(() => [server.port, sipp.port]);
  const serverCpuBefore = pinning && cpuTicks(pinning.server);
  const [result, serverCpu, sippCpu] = await Promise.all([
    sipp.done,
    cpuDuring(() => server.pids(), sipp.done),
    cpuDuring(() => [sipp.pid, ...(helper?.pids() ?? [])], sipp.done),
  ]);
  const socket = sockets.stop();
  const serverCpuAfter = pinning && cpuTicks(pinning.server);
  /** The share of the server's CPU that other processes used meanwhile. */
  const otherWork = serverCpuBefore && serverCpuAfter && serverCpuAfter.total > serverCpuBefore.total
    ? Math.max(0, (serverCpuAfter.busy - serverCpuBefore.busy) / (serverCpuAfter.total - serverCpuBefore.total) - serverCpu)
    : 0;
  const [serverSocket, sippSocket] = [socket(server.port), socket(sipp.port)];
  const drops = udpDrops() - dropsBefore;
  const stats = result.stats;
  const achieved = achievedRate(result);
  const offered = offeredRate(result);
  let problem: string | undefined;
  if (!stats) problem = `no statistics (sipp exit ${result.exitCode ?? result.signal})`;
  else if (stats.failed > 0 || stats.successful < calls) problem = `${calls - stats.successful} of ${calls} calls failed or unfinished${unexpectedAnswer(result.errors)}`;
  else if (stats.retransmissions > 0) problem = `${stats.retransmissions} retransmissions`;
  else if (achieved < 0.95 * rate) problem = offered < 0.95 * rate ? `sipp sent only ${Math.round(offered)}/s` : `achieved only ${Math.round(achieved)}/s`;
  // Lost datagrams are told by whose socket overflowed: the server's, or sipp's own (sipp reads one
  // datagram per turn of its loop, and a sipp that falls behind fails the step as much as the server).
  if (problem && serverSocket.drops + sippSocket.drops > 0) problem += ` (dropped at server ${serverSocket.drops}, at sipp ${sippSocket.drops})`;
  if (problem && pinning && sippCpu >= SIPP_SATURATED * pinning.sippCores) problem += `, sipp busy ${Math.round((100 * sippCpu) / pinning.sippCores)} % of CPU ${pinning.sipp}`;
  if (problem && pinning && otherWork >= OTHER_WORK_ON_SERVER_CPU) problem += `, CPU ${pinning.server} ${Math.round(100 * otherWork)} % busy besides the server`;
  return { achieved, offered, result, serverCpu, sippCpu, drops, serverSocket, sippSocket, problem };
}

/** The first answer sipp did not expect (e.g. "500 Server Internal Error" from a server out of memory), as a suffix of a problem. */
function unexpectedAnswer(errors: string): string {
  // Not the answers to calls already over (sipp's "Dead call"): a retransmission's, harmless.
  const status = /Aborting call on unexpected message[^\n]*?received 'SIP\/2\.0 ([0-9]{3}[^\r\n']*)/.exec(errors)?.[1];
  return status ? `, answered ${status.trim()}` : '';
}

const kB = (bytes: number) => Math.round(bytes / 1024);
/** Server CPU time per answer, in microseconds. */
const cpuPerAnswer = (step: { serverCpu: number; achieved: number }) => (step.achieved > 0 ? Math.round((step.serverCpu * 1e6) / step.achieved) : NaN);



function stepOf(rate: number, runs: Run[]): Step {
  const median = (pick: (run: Run) => number) => percentile(runs.map(pick), 50);
  const failures = runs.filter((run) => run.problem);
  const failed = failures.length * 2 >= REPEATS;
  return {
    rate,
    runs,
    achieved: median((run) => run.achieved),
    offered: median((run) => run.offered),
    serverCpu: median((run) => run.serverCpu),
    sippCpu: median((run) => run.sippCpu),
    rtts: runs.flatMap((run) => run.result.rtts.map((r) => r.ms)),
    problem: failed ? `${failures.length} of ${runs.length} runs failed, first: ${failures[0]!.problem}` : undefined,
  };
}

/** Stops a contender's server and helper and starts them afresh (a workload's freshServers). */
async function restart(contender: Contender, workload: Workload): Promise<void> {
  await contender.helper?.stop();
  await contender.server.stop();
  Object.assign(contender, await launch(contender.start, workload));
}

/**
 * Runs the rate searches of all the servers of a workload together, round by round: in a round each
 * server still searching runs its next rate, the servers taking turns run by run (a server's second
 * run comes after every other server's first), until a majority of --repeats runs decides its step.
 * Between runs, every server and helper is left to fall idle, so that no run measures what an
 * overloaded one left behind (retransmissions for up to 32 s, Timer F, tm's fr_timer).
 */
async function measure(contenders: Contender[], workload: Workload, deadline: number): Promise<void> {
  const everyPid = () => contenders.flatMap((c) => [...c.server.pids(), ...(c.helper?.pids() ?? [])]);
  let turn = 0;
  for (;;) {
    const round = contenders.flatMap((contender) => {
      const rate = contender.next();
      return rate === undefined ? [] : [{ contender, rate, runs: [] as Run[] }];
    });
    if (round.length === 0) return;
    if (Date.now() + round.length * REPEATS * (STEP_S + 3) * 1000 > deadline) {
      process.stderr.write(`  ${workload.key}: out of time budget before the round at ${round.map((r) => `${r.contender.server.name} ${r.rate}/s`).join(', ')}\n`);
      return;
    }
    if (workload.freshServers?.before === 'every step') {
      for (const { contender } of round) if (contender.steps.length > 0) await restart(contender, workload);
    }
    for (let undecided = round; undecided.length > 0; undecided = undecided.filter((r) => !stepDecided(r.runs, REPEATS)), turn++) {
      for (let i = 0; i < undecided.length; i++) {
        const { contender, rate, runs } = undecided[(i + turn) % undecided.length]!;
        if (workload.freshServers?.before === 'a run after a failed one' && contender.lastRunFailed) await restart(contender, workload);
        const run = await runOnce(contender, workload, rate);
        contender.lastRunFailed = run.problem !== undefined;
        runs.push(run);
        process.stderr.write(
          `  ${contender.server.name.padEnd(9)} ${workload.key.padEnd(8)} ${String(rate).padStart(6)}/s  ${(run.problem ?? 'ok').padEnd(38)}` +
            ` sent ${String(Math.round(run.offered)).padStart(6)}/s achieved ${String(Math.round(run.achieved)).padStart(6)}/s` +
            `  p50 ${percentile(run.result.rtts.map((r) => r.ms), 50)} ms  p99 ${percentile(run.result.rtts.map((r) => r.ms), 99)} ms` +
            `  CPU server ${run.serverCpu.toFixed(2)} (${cpuPerAnswer(run)} µs/answer) sipp ${run.sippCpu.toFixed(2)}  UDP drops (whole machine) ${run.drops}` +
            `  most queued server ${kB(run.serverSocket.queued)} kB sipp ${kB(run.sippSocket.queued)} kB\n`,
        );
        await settle(everyPid(), deadline);
      }
    }
    for (const { contender, rate, runs } of round) {
      const step = stepOf(rate, runs);
      contender.steps.push(step);
      if (step.problem) contender.found.failed = step;
      else contender.found.best = step;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

/**
 * What `first`'s rate would be against `other`'s were both held back by their CPU alone: other's
 * CPU time per answer over first's, at the highest rate both passed, with that rate. The same cores
 * and the same moment of the run, so steadier than the ratio of the highest rates, which a starved
 * sipp caps alike for every server on a busy machine.
 */
function cpuRatio(first: Contender | undefined, other: Contender | undefined): string {
  const passed = (contender: Contender | undefined) => new Map(contender?.steps.filter((step) => !step.problem).map((step) => [step.rate, step]));
  const [mine, theirs] = [passed(first), passed(other)];
  const rate = Math.max(...[...mine.keys()].filter((r) => theirs.has(r)));
  if (!Number.isFinite(rate)) return '-';
  return `${(cpuPerAnswer(theirs.get(rate)!) / cpuPerAnswer(mine.get(rate)!)).toFixed(2)} at ${rate}/s`;
}

/**
 * Where the CPU time per call of a passing step puts each side's limit when pinned: the server's
 * one core over its CPU per answer, and sipp's cores (the sender, and the UAS for the relay, which
 * share them) over theirs; the lower is what the search runs into first. Estimates: a side nearing
 * its limit spends more per call (batches shrink, sipp's loop turns more often).
 */
function ceilings(step: Step): string {
  if (!pinning || step.achieved <= 0) return '';
  const perCall = (cpu: number) => cpu / step.achieved;
  const server = Math.round(1 / perCall(step.serverCpu));
  const sipp = Math.round(pinning.sippCores / perCall(step.sippCpu));
  return `; at ${step.rate}/s, CPU per call puts the server's limit (CPU ${pinning.server}) near ${server}/s, sipp's (CPU ${pinning.sipp}) near ${sipp}/s`;
}

function report(results: Map<Workload, Contender[]>, loadBefore: number[]): string {
  const names = [...new Set([...results.values()].flatMap((contenders) => contenders.map((c) => c.server.name)))];
  const others = names.slice(1);
  const header = [
    'workload', ...names.flatMap((n) => [`${n} max/s`, 'p50 ms', 'p99 ms', 'CPU srv/sipp']),
    ...others.map((n) => `${names[0]}/${n}`), ...others.map((n) => `${names[0]}/${n} by CPU`),
  ];
  const rows = [header];
  const stepRows = [['workload', 'server', 'rate/s', 'runs ok', 'achieved/s', 'p50 ms', 'p99 ms', 'CPU srv/sipp', 'µs CPU/answer']];
  const stops: string[] = [];
  for (const [workload, contenders] of results) {
    const row = [workload.label];
    const maxima: number[] = [];
    for (const name of names) {
      const contender = contenders.find((c) => c.server.name === name);
      const best = contender?.found.best;
      maxima.push(best?.rate ?? NaN);
      if (best) {
        row.push(String(best.rate), String(percentile(best.rtts, 50)), String(percentile(best.rtts, 99)), `${best.serverCpu.toFixed(2)}/${best.sippCpu.toFixed(2)}`);
      } else row.push(contender ? `< ${startRateOf(workload)}` : 'not run', '-', '-', '-');
      const failed = contender?.found.failed;
      if (contender) stops.push(`  ${name}, ${workload.label}: ${failed ? `${failed.rate}/s failed: ${failed.problem}` : 'no step failed'}${best ? ceilings(best) : ''}`);
    }
    for (let i = 1; i < names.length; i++) row.push(Number.isFinite(maxima[0]!) && Number.isFinite(maxima[i]!) ? (maxima[0]! / maxima[i]!).toFixed(2) : '-');
    const first = contenders.find((c) => c.server.name === names[0]);
    for (const name of others) row.push(cpuRatio(first, contenders.find((c) => c.server.name === name)));
    rows.push(row);
    const steps = contenders.flatMap((c) => c.steps.map((step) => ({ name: c.server.name, step })));
    steps.sort((a, b) => a.step.rate - b.step.rate || names.indexOf(a.name) - names.indexOf(b.name));
    for (const { name, step } of steps) {
      stepRows.push([
        workload.key, name, String(step.rate), `${step.runs.filter((run) => !run.problem).length}/${step.runs.length}`, String(Math.round(step.achieved)),
        String(percentile(step.rtts, 50)), String(percentile(step.rtts, 99)), `${step.serverCpu.toFixed(2)}/${step.sippCpu.toFixed(2)}`, String(cpuPerAnswer(step)),
      ]);
    }
  }
  const cores = cpus().length;
  return `
Parley benchmark, ${new Date().toISOString()}, ${cores} cores (${cpus()[0]?.model ?? 'unknown CPU'}), sipp over UDP on 127.0.0.1
load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadavg().map((l) => l.toFixed(1)).join(' ')}: anything above what this run adds (~2) is other work sharing the cores
${pinning ? `pinned with taskset: every server on CPU ${pinning.server}, every sipp on CPU ${pinning.sipp}` : `not pinned (${pinningOff}): servers and sipp share all ${cores} cores`}
${table(rows)}

max/s   highest passing step: a majority of its ${REPEATS} runs passed (no failed call, no retransmission,
        >= 95 % of the rate achieved; "sipp sent only": sipp itself fell below the rate;
        "dropped at": whose socket overflowed)
        (${STEP_S} s runs, the servers taking turns run by run at each step; doubling from ${workloads.map((w) => `${startRateOf(w)}/s (${w.key})`).join(', ')} until a
        step fails, then ${workloads.map((w) => `${refineOf(w)} (${w.key})`).join(', ')} bisection steps between the last passing and the lowest failing rate:
        the limit lies between max/s and that failing rate)
p50/p99 sipp's response times in that step's runs, in whole milliseconds (its resolution: 0 means < 1 ms)
CPU     cores busy during that step (median of its runs): the server's, then sipp's (sender, plus the UAS for (b))
Parley: one Node.js process running the compiled dist/; SQLite, a REGISTER is committed and its log synced to disk before its 200.
${withKamailio ? 'Kamailio 5.6: bench/kamailio/kamailio.cfg, children=2 (two UDP workers), usrloc db_mode 0 (memory only), UDP buffers up to 4 MB as for Parley.\n' : ''}${workloads.flatMap((w) => (w.freshServers ? [`${w.label}: ${w.freshServers.before === 'every step' ? 'each step starts with every server' : 'each run after a failed one starts with its server'} started afresh and warmed up, ${w.freshServers.what}.\n`] : [])).join('')}${withBare ? `${BARE}: bench/udp-responder.ts, one Node.js process answering every request 200 with no SIP stack, (a) only:\n        ${names[0]}/${BARE} is the share of Node's own datagram path Parley keeps (target >= 0.80).\n` : ''}by CPU  the same ratio from the servers' CPU time per answer at the highest rate both passed,
        what it would be were each held back by its own core alone.
${pinning ? `Each server has CPU ${pinning.server} to itself but for other work on the machine (Kamailio's two workers share it), sipp has the rest:
in (b) the sender and the UAS share CPU ${pinning.sipp}, so sipp may be the limit as much as the server; a failing run says
"sipp busy" when they used ${SIPP_SATURATED * 100} % of it or more, and "CPU ${pinning.server} N % busy besides the server" when other
processes or interrupts took that share of the server's CPU; each search's last line gives where CPU per call puts either side's limit.` : `sipp runs on the same ${cores} cores: up to one core per sipp process, two processes in (b); at the\nhighest rates it competes with the server for CPU, so those numbers measure sipp as much as the server.`}

Every step (medians of its runs; µs CPU/answer: the server's CPU time over the answers it gave, telling
only on passing steps, as a failing one also spends it on what it dropped or was sent again):
${table(stepRows)}
Why each search stopped:
${stops.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const deadline = Date.now() + BUDGET_S * 1000;
  const loadBefore = loadavg();
  // Which workloads each server is measured on: the bare responder can only answer.
  const servers: Array<{ start: () => Promise<Server>; serves: (workload: Workload) => boolean }> = [
    { start: startParley, serves: () => true },
    ...(withKamailio ? [{ start: startKamailio, serves: () => true }] : []),
    ...(withBare ? [{ start: startBareResponder, serves: (workload: Workload) => workload.key === 'reply' }] : []),
  ];
  const results = new Map<Workload, Contender[]>();
  // Each workload gets a share of the time left by how many servers it measures.
  let serverRunsLeft = workloads.reduce((sum, workload) => sum + servers.filter((s) => s.serves(workload)).length, 0);
  for (const workload of workloads) {
    const contenders: Contender[] = [];
    results.set(workload, contenders);
    try {
      // Fresh servers per workload, all running for the whole of it, so that they can take turns:
      // what an overloaded step left behind (transactions kept for Timer J, queues, heap) must not
      // weigh on the next workload's figures.
      for (const { start } of servers.filter((s) => s.serves(workload))) {
        const found: Found<Step> = {};
        const next = rateSearch(found, (step) => step.rate, startRateOf(workload), (rate) => rate <= MAX_RATE, refineOf(workload));
        contenders.push({ start, ...(await launch(start, workload)), found, steps: [], runs: 0, lastRunFailed: false, next });
      }
      const share = ((deadline - Date.now()) * contenders.length) / serverRunsLeft;
      serverRunsLeft -= contenders.length;
      await measure(contenders, workload, Date.now() + share);
    } finally {
      for (const { server, helper } of contenders) {
        await helper?.stop();
        await server.stop();
      }
    }
  }
  console.log(report(results, loadBefore));
}

// Bounded no matter what: past the budget and a margin, everything this script started is stopped.
await runBounded(main, work, BUDGET_S + 60);
