// Runs sipp (Debian `sip-tester`) as a real SIP peer: scenarios from test/sipp/, users from an
// injection file, and what it did read back from its own statistics, error, log and rtt files.
// Shared by test/sipp/ and bench/, so nothing here depends on the test runner.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SIPP = process.env.SIPP ?? '/usr/bin/sipp';
export const SCENARIOS = join(dirname(fileURLToPath(import.meta.url)), '..', 'sipp');

export interface SippOptions {
  /** Scenario file: a name in test/sipp/ (e.g. `register.xml`) or a path. */
  scenario: string;
  /** Out-of-call scenario (-oocsf): takes requests whose Call-ID no call of the main one has. */
  ooc?: string;
  /** Where the scenario sends its requests. */
  remote: { host: string; port: number };
  /** Rows of the injection file (-inf), used in order: row i feeds call i (wrapping around). */
  users?: Array<Array<string | number>>;
  /** Keywords (-key), put into messages as [name]. */
  keys?: Record<string, string | number>;
  /** Global variables (-set) the scenario declares with <Global variables="...">. */
  vars?: Record<string, string | number>;
  /** Calls to run before exiting (-m). */
  calls?: number;
  /** Calls started per `ratePeriodMs` (-r, -rp; sipp's default period is 1 s). */
  rate?: number;
  ratePeriodMs?: number;
  /** Most calls open at once (-l). */
  limit?: number;
  /** Global timeout in seconds (-timeout, -timeout_error); the process is killed 5 s after it. */
  timeoutS: number;
  /** Local UDP port (-p); a free one when absent. */
  port?: number;
  /** Record response times (-trace_rtt), written every `rttFreq` calls; a last partial batch is lost. */
  rttFreq?: number;
  /** Record <log> actions (-trace_logs). */
  logs?: boolean;
  /**
   * Keep the error file (-trace_err; default true). sipp also writes a warning there for every
   * request its out-of-call scenario takes, which costs a loaded UAS a write per request.
   */
  traceErrors?: boolean;
  /** Statistics dump period in seconds (-fd); a last line is also written when sipp exits normally. */
  statsPeriodS?: number;
  extraArgs?: string[];
}

/** Cumulative counters from sipp's statistics file, plus every column by name. */
export interface SippStats {
  successful: number;
  failed: number;
  retransmissions: number;
  outgoing: number;
  /** Calls that ended on an unexpected message (a wrong status, a request out of place). */
  unexpected: number;
  /** Calls failed by a <test check_it="true"> (e.g. a final status other than the expected one). */
  testFailed: number;
  timeouts: number;
  /** Requests answered by the out-of-call scenario (or by sipp itself). */
  autoAnswered: number;
  /** From start to the last dump (at exit: once the last call ended). */
  elapsedS: number;
  columns: Record<string, string>;
}

export interface RttSample {
  /** When the response came, in ms since sipp started. */
  atMs: number;
  /** Its response time, in ms. */
  ms: number;
}

export interface SippResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stats: SippStats | undefined;
  /** The error file (-trace_err): unexpected messages, failed checks, warnings. */
  errors: string;
  /** Lines written by <log> actions, when `logs` was set. */
  logLines: string[];
  /** Responses timed (rtd="1" pairs), in order, when `rttFreq` was set; whole milliseconds. */
  rtts: RttSample[];
  stdout: string;
  stderr: string;
}

/** A port nobody uses on 127.0.0.1 right now: bind port 0 and ask which one it got. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** A running sipp: `done` settles when it exits; `stop()` ends it early. */
export class SippProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
    readonly done: Promise<SippResult>,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts sipp; resolves once it is spawned, not once its scenario has done anything. */
  static async start(options: SippOptions): Promise<SippProcess> {
    const port = options.port ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'parley-sipp-'));
    const args = buildArgs(options, port, dir);
    // cwd is the run's own directory: sipp names the rtt file itself and writes it there.
    const child = spawn(SIPP, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    // sipp repaints its screen; the last one is what matters, so keep a tail only.
    child.stdout.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(-20_000)));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    if (child.pid === undefined) {
      await exited; // rejects with the spawn error
      throw new Error(`cannot start ${SIPP}`);
    }
    // sipp's own -timeout should end it; this guards against it hanging anyway.
    const guard = setTimeout(() => child.kill('SIGKILL'), (options.timeoutS + 5) * 1000);
    const done = exited
      .then(({ code, signal: sig }) => ({ exitCode: code, signal: sig, ...readOutputs(dir, options), stdout, stderr }))
      .finally(() => {
        clearTimeout(guard);
        if (!process.env.SIPP_KEEP) rmSync(dir, { recursive: true, force: true });
      });
    return new SippProcess(child, port, dir, done);
  }

  /** The <log> lines written so far (sipp flushes each one), for waiting on a background peer. */
  logLines(): string[] {
    return readLogLines(this.dir);
  }

  /** Resolves once a <log> line satisfies `test`, or rejects after `timeoutMs`. */
  async waitForLog(test: (line: string) => boolean, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logLines().find(test);
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`sipp ${this.pid}: no matching log line within ${timeoutMs} ms; got ${JSON.stringify(this.logLines())}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Ends sipp. SIGUSR1 is its "finish the calls in progress, then exit" (with final statistics);
   * a peer held open by a long pause never finishes, and with -m set sipp re-arms its quitting
   * state so that a second SIGUSR1 does not abort it either: after `graceMs` it is killed. Its
   * log and error files are written as it goes, so nothing a test reads is lost; statistics are
   * then those of the last periodic dump.
   */
  async stop(graceMs = 500): Promise<SippResult> {
    // ChildProcess.kill signals the pid only while the process has not been reaped, so a stop
    // after exit cannot hit another process that has been given the same pid since.
    this.child.kill('SIGUSR1');
    const kill = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.done;
    } finally {
      clearTimeout(kill);
    }
  }
}

/** Runs sipp to completion (its calls done, or its timeout). */
export async function runSipp(options: SippOptions): Promise<SippResult> {
  return (await SippProcess.start(options)).done;
}

function buildArgs(options: SippOptions, port: number, dir: string): string[] {
  const scenario = (name: string) => (isAbsolute(name) ? name : join(SCENARIOS, name));
  const args = [
    '-sf', scenario(options.scenario),
    `${options.remote.host}:${options.remote.port}`,
    '-i', '127.0.0.1',
    '-p', String(port),
    '-nostdin',
    // A call fails at once on an unexpected message (rather than waiting for the timeout), and
    // no BYE or CANCEL follows: these scenarios have no dialog to end.
    '-default_behaviors', 'abortunexp',
    '-timeout', `${options.timeoutS}s`, '-timeout_error',
    '-trace_stat', '-stf', join(dir, 'stats.csv'), '-fd', `${options.statsPeriodS ?? 1}s`,
  ];
  if (options.traceErrors ?? true) args.push('-trace_err', '-error_file', join(dir, 'errors.log'));
  if (options.ooc) args.push('-oocsf', scenario(options.ooc));
  if (options.users) {
    const file = join(dir, 'users.csv');
    writeFileSync(file, ['SEQUENTIAL', ...options.users.map((row) => row.join(';'))].join('\n') + '\n');
    args.push('-inf', file);
  }
  for (const [name, value] of Object.entries(options.keys ?? {})) args.push('-key', name, String(value));
  for (const [name, value] of Object.entries(options.vars ?? {})) args.push('-set', name, String(value));
  if (options.calls !== undefined) args.push('-m', String(options.calls));
  if (options.rate !== undefined) args.push('-r', String(options.rate));
  if (options.ratePeriodMs !== undefined) args.push('-rp', String(options.ratePeriodMs));
  if (options.limit !== undefined) args.push('-l', String(options.limit));
  if (options.rttFreq !== undefined) args.push('-trace_rtt', '-rtt_freq', String(options.rttFreq));
  if (options.logs) args.push('-trace_logs', '-log_file', join(dir, 'logs.log'));
  args.push(...(options.extraArgs ?? []));
  return args;
}

function readOutputs(dir: string, options: SippOptions): Pick<SippResult, 'stats' | 'errors' | 'logLines' | 'rtts'> {
  const rttFile = options.rttFreq !== undefined ? readdirSync(dir).find((f) => f.endsWith('_rtt.csv')) : undefined;
  return {
    stats: parseStats(readIfExists(join(dir, 'stats.csv'))),
    errors: readIfExists(join(dir, 'errors.log')),
    logLines: readLogLines(dir),
    rtts: rttFile ? parseRtt(readIfExists(join(dir, rttFile))) : [],
  };
}

function readIfExists(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** <log> lines, without the CR a logged SIP body line keeps. */
function readLogLines(dir: string): string[] {
  return readIfExists(join(dir, 'logs.log'))
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.trim());
}

/** sipp's statistics file: a header line, then one line per dump; the last holds the totals. */
export function parseStats(text: string): SippStats | undefined {
  const lines = text.split('\n').filter((l) => l.trim());
  if (lines.length < 2) return undefined;
  const names = lines[0]!.split(';');
  const values = lines[lines.length - 1]!.split(';');
  const columns: Record<string, string> = {};
  names.forEach((name, i) => {
    if (name) columns[name] = values[i] ?? '';
  });
  const count = (name: string) => Number(columns[`${name}(C)`] ?? NaN);
  return {
    successful: count('SuccessfulCall'),
    failed: count('FailedCall'),
    retransmissions: count('Retransmissions'),
    outgoing: count('OutgoingCall'),
    unexpected: count('FailedUnexpectedMessage'),
    testFailed: count('FailedTestDoesntMatch'),
    timeouts: count('FailedTimeoutOnRecv') + count('FailedMaxUDPRetrans'),
    autoAnswered: count('AutoAnswered'),
    elapsedS: epochS(columns.CurrentTime) - epochS(columns.StartTime),
    columns,
  };
}

/**
 * A sipp date column, `YYYY-MM-DD<tab>HH:MM:SS.uuuuuu<tab>EPOCH.uuuuuu`, in seconds since the epoch.
 * (ElapsedTime has whole seconds only, too coarse to tell the achieved rate of a short run.)
 */
function epochS(text = ''): number {
  return Number(text.split('\t')[2] ?? NaN);
}

/** The rtt file: a `Date_ms;response_time_ms;rtd_no` header, then one line per response. */
export function parseRtt(text: string): RttSample[] {
  const [header = '', ...lines] = text.split('\n').filter((l) => l.trim());
  const names = header.split(';');
  const at = names.indexOf('Date_ms');
  const ms = names.indexOf('response_time_ms');
  return lines
    .map((l) => l.split(';'))
    .map((f) => ({ atMs: Number(f[at]), ms: Number(f[ms]) }))
    .filter((r) => Number.isFinite(r.atMs) && Number.isFinite(r.ms));
}

/** The p-th percentile (0-100) of `values`, nearest-rank; NaN when there are none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

/** A short account of a run for assertion messages: exit status, counts, first errors. */
export function summarize(result: SippResult): string {
  const s = result.stats;
  const counts = s
    ? `successful ${s.successful}, failed ${s.failed} (unexpected ${s.unexpected}, check ${s.testFailed}, timeout ${s.timeouts}), retransmissions ${s.retransmissions}`
    : 'no statistics';
  const errors = result.errors.trim().split('\n').slice(0, 20).join('\n');
  const stderr = result.stderr.replace(/Resolving remote host[^\n]*\n?/g, '').trim();
  return [`sipp exit ${result.exitCode ?? result.signal}; ${counts}`, errors, stderr && `stderr: ${stderr.slice(-2000)}`]
    .filter(Boolean)
    .join('\n');
}
