// Helpers shared by the benchmark scripts (bench/run.ts, bench/rooms.ts, bench/xmpp.ts,
// bench/gateway.ts): starting and stopping the servers, CPU and UDP accounting from /proc, reading
// sipp's results, and XMPP receivers that time what arrives. Kept free of side effects at import,
// so that each script's own options and time budget stay in the script.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { client, type Client } from '@xmpp/client';
import xml from '@xmpp/xml';
import type { Prosody } from '../test/support/prosody.js';
import { SippProcess, freePort, parseStats, runSipp, summarize, type SippOptions, type SippResult } from '../test/support/sipp.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const KAMAILIO = '/usr/sbin/kamailio';
export const DOMAIN = 'localhost';

// ---------------------------------------------------------------------------------------------
// Options

/**
 * The parseArgs options both benchmarks take, with the script's own defaults: the Kamailio switches,
 * the step length, the bisection steps and the time budget. Each script adds its own start and
 * maximum rates.
 */
export function stepOptions(stepSeconds: string, budgetSeconds: string) {
  return {
    kamailio: { type: 'boolean' },
    'no-kamailio': { type: 'boolean' },
    'step-seconds': { type: 'string', default: stepSeconds },
    refine: { type: 'string', default: '2' },
    'budget-seconds': { type: 'string', default: budgetSeconds },
  } as const;
}

/** The numbers of stepOptions: step length and budget in seconds, bisection steps. */
export function stepSettings(args: { 'step-seconds'?: string; refine?: string; 'budget-seconds'?: string }) {
  return { STEP_S: Number(args['step-seconds']), REFINE: Number(args.refine), BUDGET_S: Number(args['budget-seconds']) };
}

/**
 * Whether to measure Kamailio too: by default when it is installed; --kamailio insists (an error
 * naming `missing` when it is not installed), --no-kamailio leaves it out.
 */
export function wantKamailio(args: { kamailio?: boolean; 'no-kamailio'?: boolean }, installed: boolean, missing: string): boolean {
  if (args.kamailio && !installed) throw new Error(`--kamailio: ${missing} is not installed`);
  return args['no-kamailio'] ? false : Boolean(args.kamailio) || installed;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Debian package's installed version, for a report; '(version unknown)' when dpkg cannot tell. */
export function packageVersion(name: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', name], { encoding: 'utf8' });
  } catch {
    return '(version unknown)';
  }
}

/** Indents every line by four spaces: sipp summaries and server errors nested under a step line. */
export const indent = (text: string) => text.replace(/^/gm, '    ');

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * What a script started and must stop however it ends: servers (added by `launch`) and sipp peers
 * that outlive one step (added by the script). One script runs per process, so module-level sets.
 */
export const children = new Set<ChildProcess>();
export const peers = new Set<SippProcess>();

/**
 * Spawns a server and keeps the last 20 kB of its output, for the error when it fails; `ipc` opens
 * Node's message channel to it (a Node.js server that answers requests, bench/gateway-server.ts).
 */
export function launch(command: string, argv: string[], cwd = ROOT, { ipc = false } = {}): { child: ChildProcess; log: () => string } {
  const child = spawn(command, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc' as const] : [])] });
  let text = '';
  const keep = (chunk: Buffer) => (text = (text + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return { child, log: () => text };
}

/** SIGTERM (both servers stop cleanly on it), SIGKILL 5 s later. */
export async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Stops everything `children` and `peers` hold and removes the script's work directory. */
export async function cleanup(work: string): Promise<void> {
  await Promise.all([...peers].map((p) => p.stop()));
  await Promise.all([...children].map((c) => terminate(c)));
  rmSync(work, { recursive: true, force: true });
}

/**
 * Runs a script's main, bounded no matter what: past `limitS` everything it started is stopped
 * (exit 1), and so it is on SIGINT/SIGTERM (exit 130); cleanup also runs when main ends.
 */
export async function runBounded(main: () => Promise<void>, work: string, limitS: number): Promise<void> {
  const watchdog = setTimeout(() => {
    process.stderr.write('bench: over the time budget, stopping everything\n');
    void cleanup(work).then(() => process.exit(1));
  }, limitS * 1000);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanup(work).then(() => process.exit(130)));
  }
  try {
    await main();
  } finally {
    clearTimeout(watchdog);
    await cleanup(work);
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

export interface Server {
  name: string;
  port: number;
  /** Processes whose CPU time is the server's (Kamailio forks its workers). */
  pids(): number[];
  stop(): Promise<void>;
  /** The end of its output, for when it fails. */
  log(): string;
}

/** How a script marks its OPTIONS pings (Via branch and Call-ID prefixes), so that they tell apart in traces. */
export interface PingIds {
  branch: string;
  callId: string;
}

/** Resolves once something answers an OPTIONS on udp 127.0.0.1:port; any status will do. */
export async function waitForSip(port: number, child: ChildProcess, ids: PingIds, timeoutMs = 15_000): Promise<void> {
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
        `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-${ids.branch}-${i};rport`,
        'Max-Forwards: 70',
        `From: <sip:bench@${DOMAIN}>;tag=bench`,
        `To: <sip:${DOMAIN}>`,
        `Call-ID: ${ids.callId}-${i}@127.0.0.1`,
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

/**
 * Launches a server and resolves once it answers SIP; a failure carries the end of its output.
 * `forks`: its workers are forked at start and stay (Kamailio), so they are looked up once here,
 * not at every CPU sample, and counted with it.
 */
export async function startServer(
  name: string,
  command: string,
  argv: string[],
  port: number,
  ping: PingIds,
  { cwd = ROOT, forks = false }: { cwd?: string; forks?: boolean } = {},
): Promise<Server> {
  const { child, log } = launch(command, argv, cwd);
  await waitForSip(port, child, ping).catch((error: Error) => Promise.reject(new Error(`${name}: ${error.message}\n${log()}`)));
  const pids = forks ? [child.pid!, ...childrenOf(child.pid!)] : undefined;
  return { name, port, pids: () => pids ?? [child.pid!], stop: () => terminate(child), log };
}

let distCurrent = false;

/**
 * dist/, made current first (scripts/build-if-changed.sh, once per process): benchmarks measure
 * Parley as production runs it, compiled, not its sources through tsx. The build's own output goes
 * to stderr, leaving stdout to the report.
 */
export function compiledDist(): string {
  if (!distCurrent) {
    execFileSync('bash', [join(ROOT, 'scripts', 'build-if-changed.sh')], { stdio: ['ignore', 2, 'inherit'] });
    distCurrent = true;
  }
  return join(ROOT, 'dist');
}

/**
 * Parley compiled (dist/cli/main.js, see compiledDist) on a free port, with `config` as its
 * parley.yaml (authentication open: the load is unauthenticated) and a SQLite database in `work`.
 */
export async function launchParley(work: string, config: string, ping: PingIds): Promise<Server> {
  const cli = join(compiledDist(), 'cli', 'main.js');
  const port = await freePort();
  const dir = join(work, 'parley');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'parley.yaml');
  writeFileSync(file, `auth:\n  policy: open\n${config}`);
  return startServer('Parley', process.execPath, [
    cli, 'start', '--config', file,
    '--listen', `udp:127.0.0.1:${port}`, '--listen', `tcp:127.0.0.1:${port}`,
    '--db', `sqlite:${join(dir, 'parley.db')}`, '--domain', DOMAIN, '--log-level', 'warn',
    // A free port for the admin endpoint too, so benchmarks can run beside each other and a running Parley.
    '--admin-listen', '127.0.0.1:0',
  ], port, ping);
}

/**
 * A sipp UAS that registers `user` and answers every MESSAGE 200 at once (bench/sipp/answer-now.xml:
 * nothing else, as it shares sipp's CPU with the sender) for `holdS` seconds; resolves once
 * `probe` (one MESSAGE to that user) gets its 200, which proves the registration took. `uasArgs`
 * go to that sipp too.
 */
export async function startRelayUas(server: Server, user: string, holdS: number, probe: SippOptions, uasArgs: string[] = []): Promise<SippProcess> {
  const uas = await SippProcess.start({
    scenario: 'register.xml',
    ooc: join(ROOT, 'bench', 'sipp', 'answer-now.xml'),
    remote: { host: '127.0.0.1', port: server.port },
    users: [[user, DOMAIN, '-']],
    keys: { expires: 3600 },
    vars: { expected: 200, hold_ms: holdS * 1000 },
    calls: 1,
    timeoutS: holdS + 60,
    traceErrors: false,
    extraArgs: ['-buff_size', String(4 << 20), ...uasArgs],
  });
  peers.add(uas);
  for (let attempt = 0; ; attempt++) {
    const result = await runSipp(probe);
    if (result.exitCode === 0) return uas;
    if (attempt === 20) throw new Error(`${server.name}: the relay UAS never became reachable\n${summarize(result)}`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// /proc accounting

/** Fields of /proc/PID/stat after the command name (state, ppid, ...), or undefined once it is gone. */
export function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The resident memory of a process in bytes (VmRSS), or undefined once it is gone. */
export function residentBytes(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

export function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => procStat(Number(entry))?.[1] === String(pid))
    .map(Number);
}

/**
 * CPU time of some processes, sampled every 100 ms, because an exited process's times can no
 * longer be read: its last sample counts.
 */
export class CpuMeter {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private readonly started = Date.now();
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pids: () => number[]) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }
  private sample(): void {
    for (const pid of this.pids()) {
      const fields = procStat(pid);
      if (!fields) continue;
      // utime and stime, in clock ticks (1/100 s on Linux).
      const ticks = Number(fields[11]) + Number(fields[12]);
      if (!this.first.has(pid)) this.first.set(pid, ticks);
      this.last.set(pid, ticks);
    }
  }
  /**
   * Stops sampling; cores busy on average (1.0 = one core throughout). `sampleLast` takes one more
   * sample first; cpuDuring leaves it out, counting only the 100 ms samples, as bench/run.ts did.
   */
  stop(sampleLast = true): number {
    if (sampleLast) this.sample();
    clearInterval(this.timer);
    let ticks = 0;
    for (const [pid, end] of this.last) ticks += end - this.first.get(pid)!;
    return ticks / 100 / ((Date.now() - this.started) / 1000);
  }
}

/**
 * Restricts processes, every thread of them, to `cpuList` (taskset's syntax, e.g. "1" or "0-2");
 * threads and processes they start later inherit it. A process that is already gone is skipped.
 */
export function pinToCpus(pids: number[], cpuList: string): void {
  for (const pid of pids) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
    } catch (error) {
      if (procStat(pid)) throw new Error(`taskset could not pin process ${pid} to CPU ${cpuList}: ${(error as Error).message}`);
    }
  }
}

/** CPU use of some processes while `during` runs, in cores (1.0 = one core busy throughout). */
export async function cpuDuring(pids: () => number[], during: Promise<unknown>): Promise<number> {
  const meter = new CpuMeter(pids);
  let cores: number;
  try {
    await during;
  } finally {
    cores = meter.stop(false);
  }
  return cores;
}

/** Waits until these processes are close to idle (under 5 % of a core over half a second), at most 40 s. */
export async function settle(pids: number[], deadline: number): Promise<void> {
  const until = Math.min(Date.now() + 40_000, deadline);
  while (Date.now() < until && (await cpuDuring(() => pids, sleep(500))) > 0.05);
}

/** A server below this share of its core passed a step far from its limit: one run decides it. */
export const FAR_BELOW_LIMIT_CPU = 0.5;

/**
 * Whether a step's runs so far settle it: a majority of `repeats` runs passed, or can no longer;
 * or its first run passed with the server far below its limit (the low steps, where repeats would
 * only cost time).
 */
export function stepDecided(runs: { problem?: string; serverCpu: number }[], repeats: number): boolean {
  const passed = runs.filter((run) => !run.problem).length;
  if (runs.length === 1 && passed === 1 && runs[0]!.serverCpu < FAR_BELOW_LIMIT_CPU) return true;
  return runs.length >= repeats || passed * 2 > repeats || (runs.length - passed) * 2 >= repeats;
}

/**
 * Busy and total time so far of one CPU (`cpu`, its number) or of the whole machine (no `cpu`), in
 * clock ticks (1/100 s), from /proc/stat: busy is all but idle and iowait.
 */
export function cpuTicks(cpu = ''): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `));
  // user nice system idle iowait irq softirq steal: guest times, after them, are counted in user already.
  const fields = line?.trim().split(/\s+/).slice(1, 9).map(Number) ?? [];
  const total = fields.reduce((sum, ticks) => sum + ticks, 0);
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

/** What /proc/net/udp tells of the UDP sockets bound to a port: drops for a full receive buffer, and bytes waiting to be read. */
export interface UdpSocketCounters {
  drops: number;
  queued: number;
}

/**
 * The counters of the IPv4 UDP sockets bound to `port`, summed (the last field of /proc/net/udp, and
 * rx_queue): what one process did not read in time, told apart from what its peer lost.
 */
export function udpSocketCounters(port: number): UdpSocketCounters {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const counters = { drops: 0, queued: 0 };
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (!fields[1]?.endsWith(hexPort)) continue;
    counters.drops += Number(fields[fields.length - 1]);
    counters.queued += parseInt(fields[4]!.split(':')[1]!, 16);
  }
  return counters;
}

/**
 * The receive side of each UDP port of a step, sampled every 20 ms while it runs: datagrams dropped
 * since it started, and the most bytes that waited to be read at once (the buffer holds about
 * twice what SO_RCVBUF asked for, in the kernel's accounting of whole packets). Tells whether the
 * server or sipp fell behind when a step lost datagrams.
 */
export class UdpReceiveWatch {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private readonly peak = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly ports: () => number[]) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 20);
  }
  private sample(): void {
    for (const port of this.ports()) {
      const { drops, queued } = udpSocketCounters(port);
      if (!this.first.has(port)) this.first.set(port, drops);
      // A socket closed meanwhile (sipp exiting) reads as 0: its last real sample stands.
      if (drops >= (this.last.get(port) ?? 0)) this.last.set(port, drops);
      this.peak.set(port, Math.max(this.peak.get(port) ?? 0, queued));
    }
  }
  /** Stops sampling; per port, the drops since the first sample and the highest receive queue (bytes). */
  stop(): (port: number) => UdpSocketCounters {
    this.sample();
    clearInterval(this.timer);
    return (port) => ({ drops: (this.last.get(port) ?? 0) - (this.first.get(port) ?? 0), queued: this.peak.get(port) ?? 0 });
  }
}

/** The kernel's count of UDP datagrams dropped for a full receive buffer, all sockets. */
export function udpDrops(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf('RcvbufErrors')]);
}

// ---------------------------------------------------------------------------------------------
// sipp results and stepping (and what the receivers of bench/sipp/member.xml logged)

/**
 * The pace responses came at between the first and the last timed one: what sipp and the server
 * kept up together, leaving out start-up and the wait for the last answers, which would weigh on
 * short steps. (Calls over elapsed time when too few responses were timed.)
 */
export function achievedRate(result: SippResult): number {
  const stats = result.stats;
  const rtts = result.rtts;
  const span = rtts.length > 10 ? (rtts[rtts.length - 1]!.atMs - rtts[0]!.atMs) / 1000 : 0;
  return span > 0 ? (rtts.length - 1) / span : stats && stats.elapsedS > 0 ? stats.outgoing / stats.elapsedS : 0;
}

/**
 * The pace sipp sent the timed requests at, each sent when its response came less its response time:
 * below the asked rate when sipp itself could not keep up, as its call generator counts the calls it
 * could not start within a millisecond as started, and never makes them up.
 */
export function offeredRate(result: SippResult): number {
  const rtts = result.rtts;
  if (rtts.length <= 10) return achievedRate(result);
  let first = Infinity;
  let last = -Infinity;
  for (const { atMs, ms } of rtts) {
    first = Math.min(first, atMs - ms);
    last = Math.max(last, atMs - ms);
  }
  return last > first ? (rtts.length - 1) / ((last - first) / 1000) : 0;
}

/** Why a sipp run failed (an error status, no answer, a retransmission); undefined when it did not. */
export function sippProblem(result: SippResult, calls: number, what = 'MESSAGEs'): string | undefined {
  const stats = result.stats;
  if (!stats) return `no statistics (sipp exit ${result.exitCode ?? result.signal})`;
  if (stats.failed > 0 || stats.successful < calls) return `${calls - stats.successful} of ${calls} ${what} failed or unfinished`;
  if (stats.retransmissions > 0) return `${stats.retransmissions} retransmissions`;
  return undefined;
}

/**
 * sipp options for MESSAGEs into a gateway (bench/sipp/xmpp-message.xml), each to be answered 202:
 * `calls` at `rate`, the injection rows (from_user;from_domain;to_user;to_domain) taken in turn,
 * each body `tag`, the call number and sipp's send time.
 */
export function gatewayMessages(port: number, users: string[][], tag: string, rate: number, calls: number, timeoutS: number): SippOptions {
  return {
    scenario: join(ROOT, 'bench', 'sipp', 'xmpp-message.xml'),
    remote: { host: '127.0.0.1', port },
    users,
    keys: { body: tag },
    vars: { expected: 202 },
    rate,
    calls,
    limit: Math.max(200, rate * 2),
    timeoutS,
    rttFreq: Math.max(1, Math.min(100, Math.floor(calls / 20))),
    statsPeriodS: timeoutS,
    extraArgs: ['-buff_size', String(4 << 20)],
  };
}

/** What every step measures, whatever unit its rate is in. */
export interface Measured {
  /** The sender's sipp run. */
  result: SippResult;
  /** CPU in cores during the step: the server's, and the sipp processes'. */
  serverCpu: number;
  sippCpu: number;
  /** UDP datagrams the kernel dropped during the step, whole machine. */
  drops: number;
  /** Why the step failed; undefined when it passed. */
  problem?: string;
}

/** Where a rate search stands: the highest passing step, and the lowest failing one, which bounds it. */
export interface Found<S> {
  best?: S;
  failed?: S;
}

/** Rounds a rate to two significant digits, so that bisected steps read well. */
const nice = (rate: number) => {
  const unit = 10 ** Math.max(0, Math.floor(Math.log10(rate)) - 1);
  return Math.round(rate / unit) * unit;
};

/**
 * The rates of a search, one a call, reading `found` as the script updates it: doubling from
 * `start` while steps pass (and `fits` the rate), then after the first failure up to `refine`
 * bisection steps between the best passing and the lowest failing rate; undefined once it is over.
 * `rateOf` reads a step's rate in the script's unit (calls/s, posts/s).
 */
export function rateSearch<S>(found: Found<S>, rateOf: (step: S) => number, start: number, fits: (rate: number) => boolean, refine: number): () => number | undefined {
  let refinements = 0;
  return () => {
    if (!found.failed) {
      const rate = found.best ? rateOf(found.best) * 2 : start;
      return fits(rate) ? rate : undefined;
    }
    if (refinements++ >= refine) return undefined;
    const low = found.best ? rateOf(found.best) : 0;
    const rate = nice((low + rateOf(found.failed)) / 2);
    return rate > low && rate < rateOf(found.failed) ? rate : undefined;
  };
}

/** The last line of a growing sipp statistics file, read from its end. */
export function lastStats(file: string): { count: number; atS: number } | undefined {
  if (!existsSync(file)) return undefined;
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 8192));
    readSync(fd, head, 0, head.length, 0);
    const tail = Buffer.alloc(Math.min(size, 8192));
    readSync(fd, tail, 0, tail.length, size - tail.length);
    const header = head.toString().split('\n')[0]!;
    const lines = tail.toString().split('\n').filter((l) => l.trim());
    const stats = parseStats(`${header}\n${lines[lines.length - 1] ?? ''}`);
    if (!stats || !Number.isFinite(stats.autoAnswered)) return undefined;
    return { count: stats.autoAnswered, atS: Number(stats.columns.CurrentTime?.split('\t')[2] ?? NaN) };
  } finally {
    closeSync(fd);
  }
}

/**
 * The times in a line of bench/sipp/member.xml's log, seconds and microseconds as sipp prints a
 * number ("%lf"): when the sender sent the copy (absent from a MESSAGE without one) and when the
 * receiver got it.
 */
const SEND_TIME = /sent=([0-9]+)\.([0-9]{6}) /;
const RECEIVE_TIME = /received=([0-9]+)\.([0-9]{6}) /;
export const LEG_LINE = new RegExp(SEND_TIME.source + RECEIVE_TIME.source);

/** What a timed receiver's log told of the MESSAGEs it received: the one-way latencies (ms) of the timed ones, the lines of the others. */
export interface LegLog {
  latencies: number[];
  /** Lines of MESSAGEs that could not be timed, as logged: no send time in the body, or no whole receive time. */
  untimed: string[];
}

/** The legs in some lines of bench/sipp/member.xml's log (each MESSAGE received logs one line with "received="). */
export function parseLegLines(lines: string[]): LegLog {
  const legs: LegLog = { latencies: [], untimed: [] };
  for (const line of lines) {
    const m = LEG_LINE.exec(line);
    if (m) legs.latencies.push(((Number(m[3]) - Number(m[1])) * 1e6 + Number(m[4]) - Number(m[2])) / 1000);
    else if (line.includes(' received=')) legs.untimed.push(line);
  }
  return legs;
}

/**
 * Reads a growing log from where the last call stopped: the legs logged since. A line sipp has
 * not finished writing is kept until its end comes, so a leg is read whole, once.
 */
export function legLog(file: string): () => LegLog {
  let offset = 0;
  let partial = '';
  return () => {
    if (!existsSync(file)) return { latencies: [], untimed: [] };
    const fd = openSync(file, 'r');
    let text: string;
    try {
      const chunk = Buffer.alloc(fstatSync(fd).size - offset);
      const read = readSync(fd, chunk, 0, chunk.length, offset);
      offset += read;
      text = partial + chunk.toString('latin1', 0, read);
    } finally {
      closeSync(fd);
    }
    const lines = text.split('\n');
    partial = lines.pop()!;
    return parseLegLines(lines);
  };
}

/** The legs a step's receivers logged, and how many of those they counted never reached the log. */
export interface LoggedLegs extends LegLog {
  unlogged: number;
}

/**
 * The legs `read` (a legLog reader) gives until `expected` (the MESSAGEs sipp counted) are in,
 * timed or not, or `waitMs` passed. sipp writes a MESSAGE's line before it counts it, but a line
 * may be read half-written: its leg waits for the rest. A leg whose line never came is told apart
 * from one that came without a send time.
 */
export async function loggedLegs(read: () => LegLog, expected: number, waitMs = 5_000): Promise<LoggedLegs> {
  const legs = read();
  const until = Date.now() + waitMs;
  while (legs.latencies.length + legs.untimed.length < expected && Date.now() < until) {
    await sleep(50);
    const more = read();
    legs.latencies.push(...more.latencies);
    legs.untimed.push(...more.untimed);
  }
  return { ...legs, unlogged: Math.max(0, expected - legs.latencies.length - legs.untimed.length) };
}

/**
 * What a fan-out step's legs say against the `expected` count, if it fails on them: a leg never
 * logged, one without a send time, or one whose receive time was logged incomplete, quoting a line.
 */
export function legsProblem(legs: LoggedLegs, expected: number): string | undefined {
  if (legs.unlogged > 0) return `${legs.unlogged} of ${expected} legs counted by sipp never reached its log`;
  const faults: Array<[string, string[]]> = [
    ['carried no send time', legs.untimed.filter((line) => !SEND_TIME.test(line))],
    ['were logged without a whole receive time', legs.untimed.filter((line) => SEND_TIME.test(line))],
  ];
  const found = faults.filter(([, lines]) => lines.length > 0).map(([what, lines]) => `${lines.length} of ${expected} legs ${what} (${JSON.stringify(lines[0]!.trim())})`);
  return found.length > 0 ? found.join('; ') : undefined;
}

/** What answers and times every MESSAGE of a fan-out bench's receivers (room members, a user's devices). */
const TIMED_UAS_SCENARIO = join(ROOT, 'bench', 'sipp', 'member.xml');

/** A sipp process that registered its users and answers each MESSAGE they get, logging when it came. */
export interface TimedUas {
  uas: SippProcess;
  /** The legs received since the last call. */
  legs(): LegLog;
  /** MESSAGEs received so far, and when sipp last counted (epoch seconds). */
  received(): { count: number; atS: number };
}

/**
 * Starts the receivers of a fan-out bench: `registration` registers `users` (rows of sipp's
 * injection file) for an hour, then the process answers and times what comes for `holdS` seconds.
 */
export async function startTimedUas(server: Server, registration: string, users: string[][], vars: Record<string, number>, holdS: number): Promise<TimedUas> {
  const uas = await SippProcess.start({
    scenario: registration,
    ooc: TIMED_UAS_SCENARIO,
    remote: { host: '127.0.0.1', port: server.port },
    users,
    keys: { expires: 3600 },
    vars: { ...vars, hold_ms: holdS * 1000 },
    calls: users.length,
    rate: 200,
    limit: users.length + 10,
    timeoutS: holdS + 60,
    traceErrors: false,
    logs: true,
    // Counted from its statistics every 200 ms (the later -fd wins over the one sipp.ts puts).
    // -deadcall_wait 0: a request answered before is answered again, as a UA's server transaction
    // answers a retransmission, rather than dropped for 33 s (sipp's "dead call"); else a lost 200
    // ends in a 408 at the server, and a device's queue (bench/devices.ts) waits on it. Received
    // again, it counts twice: the step fails, as it does for the loss.
    extraArgs: ['-fd', '200ms', '-buff_size', String(8 << 20), '-deadcall_wait', '0'],
  });
  peers.add(uas);
  const file = join(uas.dir, 'stats.csv');
  return { uas, legs: legLog(join(uas.dir, 'logs.log')), received: () => lastStats(file) ?? { count: 0, atS: 0 } };
}

// ---------------------------------------------------------------------------------------------
// XMPP side: @xmpp/client sessions recording arrival times as stanzas come

export interface Arrival {
  /** Send time (epoch ms) from the body, and arrival time (epoch ms). */
  sentMs: number;
  atMs: number;
}

/**
 * The time (epoch ms, with a fraction) a bench's own client stamps on what it sends or takes as an
 * arrival. Date.now() counts whole milliseconds: against sipp's microseconds each stamp would be up
 * to 1 ms early, a skew as large as the gap between a p99 and its 5 ms target.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export class XmppSession {
  /** Arrivals by the step tag at the start of each body. */
  readonly arrivals = new Map<string, Arrival[]>();
  errors = 0;
  lastError = '';

  private constructor(readonly session: Client) {}

  /**
   * What the client writes until the event loop's next turn goes in one TCP write: a sender paced in
   * batches writes them as a busy client does, rather than as one segment each (it writes without
   * Nagle's algorithm, for the latencies), which would cost Prosody a read per stanza.
   */
  writeTogether(): void {
    const socket = this.session.socket as Socket;
    socket.cork();
    setImmediate(() => socket.uncork());
  }

  static async connect(server: Prosody, username: string, password: string): Promise<XmppSession> {
    const session = client({
      service: server.service,
      domain: server.domain,
      resource: 'bench',
      // PLAIN over loopback: the client's SCRAM in JavaScript takes seconds.
      credentials: (authenticate) => authenticate({ username, password }, 'PLAIN'),
    });
    const self = new XmppSession(session);
    // @xmpp/connection decodes each TCP chunk on its own, garbling a character split between two.
    const onData = session._onData.bind(session);
    const decoder = new StringDecoder('utf8');
    // The <message/> stanzas are counted from the text rather than parsed into elements and
    // emitted: the receivers share the cores with the servers measured, and @xmpp/client's parsing
    // cost ~13 us of CPU per message (a receiver's ~25 us down to ~11). The rest of the stream
    // (negotiation, iq, presence) goes to the client as before.
    let held = '';
    session._onData = (data) => {
      const rest = self.takeMessages(held + decoder.write(data));
      held = rest.held;
      if (rest.text) onData(rest.text);
    };
    session.on('error', () => {});
    await session.start();
    // Neither side of the client's stream holds stanzas back, so latencies are those of the servers:
    // what it writes goes at once (no Nagle), and what Prosody writes, which keeps Nagle's algorithm,
    // is acknowledged at once by a whitespace (as Parley's XMPP link does), not after the delayed-ACK
    // timer, which would hold Prosody's next stanzas for up to 40 ms.
    const socket = session.socket as Socket;
    socket.setNoDelay(true);
    let acknowledging = false;
    socket.on('data', () => {
      if (acknowledging) return;
      acknowledging = true;
      setImmediate(() => {
        acknowledging = false;
        socket.write(' ');
      });
    });
    await session.send(xml('presence'));
    return self;
  }

  /**
   * Records the whole <message/> stanzas of `text` (Prosody's serialisation: no nested <message>);
   * returns the text around them, and the start of a stanza whose end is still to come.
   */
  private takeMessages(text: string): { text: string; held: string } {
    let rest = '';
    let at = 0;
    for (;;) {
      const start = text.indexOf('<message', at);
      if (start < 0) {
        // A chunk may end inside '<message': that much waits for the next one.
        const lastTag = text.lastIndexOf('<');
        const split = lastTag >= at && '<message'.startsWith(text.slice(lastTag)) ? lastTag : text.length;
        return { text: rest + text.slice(at, split), held: text.slice(split) };
      }
      rest += text.slice(at, start);
      const tagEnd = text.indexOf('>', start);
      if (tagEnd < 0) return { text: rest, held: text.slice(start) };
      // A self-closed <message/> carries no body.
      const end = text[tagEnd - 1] === '/' ? tagEnd + 1 : text.indexOf('</message>', tagEnd) + '</message>'.length;
      if (end < '</message>'.length) return { text: rest, held: text.slice(start) };
      this.record(text.slice(start, end), text.slice(start, tagEnd));
      at = end;
    }
  }

  private record(stanza: string, openingTag: string): void {
    if (/type=["']error["']/.test(openingTag)) {
      this.errors++;
      this.lastError = stanza.slice(0, 300);
      return;
    }
    const bodyStart = stanza.indexOf('>', stanza.indexOf('<body') + 1) + 1;
    const bodyEnd = stanza.indexOf('</body>', bodyStart);
    if (bodyStart === 0 || bodyEnd < 0) return;
    const fields = stanza.slice(bodyStart, bodyEnd).trim().split(/\s+/);
    // SIP -> XMPP bodies end with sipp's epoch seconds (with microseconds).
    const sentMs = Number(fields[fields.length - 1]) * 1000;
    const list = this.arrivals.get(fields[0]!) ?? [];
    list.push({ sentMs, atMs: epochMs() });
    this.arrivals.set(fields[0]!, list);
  }

  count(tag: string): number {
    return this.arrivals.get(tag)?.length ?? 0;
  }

  async stop(): Promise<void> {
    await this.session.stop().catch(() => {});
  }
}

/** Waits until `count()` has not moved for `quietMs` (at most until `deadline`); returns it. */
export async function quiet(count: () => number, quietMs: number, deadline: number): Promise<number> {
  let last = count();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const now = count();
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) break;
  }
  return last;
}

/** The latencies of a step's arrivals, sorted, and the rate `expected` messages came at, first send to last arrival. */
export function arrivalStats(arrivals: Arrival[], expected: number) {
  const latencies = arrivals.map((a) => a.atMs - a.sentMs).sort((a, b) => a - b);
  const first = Math.min(...arrivals.map((a) => a.sentMs));
  const last = Math.max(...arrivals.map((a) => a.atMs));
  const arrivedRate = arrivals.length > 1 && last > first ? expected / ((last - first) / 1000) : 0;
  return { latencies, arrivedRate };
}

/** What a delivery step measured, for deliveryProblem. */
export interface Delivery {
  rate: number;
  sent: number;
  /** The sender's own pace, and the arrivals' (first to last). */
  sentRate: number;
  arrivedRate: number;
  received: number;
}

/**
 * Why a delivery step failed (`extra`: the sender's own complaint first): a message lost or
 * duplicated, the sender below 95 % of the rate, or the arrivals below 90 % of it.
 */
export function deliveryProblem(step: Delivery, extra?: string): string | undefined {
  if (extra) return extra;
  if (step.received < step.sent) return `${step.sent - step.received} of ${step.sent} lost`;
  if (step.received > step.sent) return `${step.received - step.sent} more than ${step.sent} arrived`;
  if (step.sentRate < 0.95 * step.rate) return `sent only ${Math.round(step.sentRate)}/s`;
  if (step.arrivedRate < 0.9 * step.rate) return `arrived only at ${Math.round(step.arrivedRate)}/s`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Report

/** A Markdown table; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((v, c) => v.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
