// Runs Parley as a separate process, the way it is deployed (`parley start ...`), for tests that need
// to signal, kill -9 or restart it. Ports are found free beforehand; every process started here is
// killed by pid when the test process exits, whatever happened to the test.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'parley.js');
const HOST = '127.0.0.1';

export interface Endpoint {
  host: string;
  port: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ParleyProcess {
  udp: Endpoint;
  tcp: Endpoint;
  pid: number;
  /** Standard output, one entry per line (Parley logs one JSON object per line). */
  logs: string[];
  /** Standard error, one entry per line. */
  stderr: string[];
  /** The `--db` URL, to start another process on the same database. */
  db: string;
  /** Resolves when the process has exited. */
  exited: Promise<ExitStatus>;
  /** Whether the process is still running. */
  readonly alive: boolean;
  /** Sends a signal by pid; does nothing once the process is gone. */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`); resolves with how it ended. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
  /** Resolves with the first log line (already logged or to come) matching `pattern`. */
  waitForLog(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Log lines parsed as JSON (lines that are not JSON are left out). */
  entries(): Array<Record<string, unknown>>;
  /** Resident set size in kB, from /proc/PID/status; undefined when unavailable. */
  rssKb(): number | undefined;
}

export interface StartOptions {
  /** Database URL; default a fresh SQLite file in `dir`. */
  db?: string;
  /** Fixed ports (to restart on the ports of an earlier process); default free ones. */
  udpPort?: number;
  tcpPort?: number;
  /** Directory for the default database; default a new temporary one, removed at exit. */
  dir?: string;
  logLevel?: string;
  /** More arguments after `start`; without a `--config` among them, a config with auth.policy open is given. */
  args?: string[];
  /** Options for node, before Parley's script (e.g. `--import` a module into the process). */
  nodeArgs?: string[];
  /** The test provokes internal errors on purpose; otherwise each one logged fails the test running then. */
  expectInternalErrors?: boolean;
  /** How long to wait for 'parley started'. */
  startTimeoutMs?: number;
}

const running = new Set<number>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of running) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
  // Killed by a signal, the test process does not reach 'exit': the children go first, then the
  // signal does what it would have done (unless someone else handles it).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killAll();
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

/** Kills every Parley process this module started that is still running (for `after` hooks). */
export function killAll(): void {
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A port free on 127.0.0.1 for UDP (bound to port 0, then released). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, HOST, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** A port free on `host` (127.0.0.1 unless said) for TCP (listened on with port 0, then released). */
export function freeTcpPort(host = HOST): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (a server started in the background). */
export async function waitForPort(port: number, name: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, HOST);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return;
    if (Date.now() > deadline) throw new Error(`${name}: port ${port} not accepting within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A configuration template of test/fixtures with its {{PLACEHOLDERS}} filled in. */
export function fillTemplate(template: URL, values: Record<string, string | number>): string {
  return readFileSync(template, 'utf8').replace(/\{\{([A-Z_0-9]+)\}\}/g, (_, name: string) => String(values[name]));
}

/**
 * A real server (Prosody, ngIRCd...) for tests, spawned directly in the foreground: started until its
 * ports accept connections, stopped by its pid, killed by pid if the test process exits first.
 */
export class ForegroundServer {
  private child: ChildProcess | undefined;

  constructor(
    private readonly serverName: string,
    private readonly argv: readonly [string, ...string[]],
    private readonly ports: readonly number[],
  ) {}

  /** The server's own log, the end of which is shown when it exits while starting. */
  log(): string {
    return '';
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the server (again, after stop: same command, same ports). */
  async start(): Promise<void> {
    installExitHook();
    const [command, ...args] = this.argv;
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    const exit = once(child, 'exit');
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const spawned = await Promise.race([once(child, 'spawn').then(() => true), once(child, 'error').then(() => false)]);
    if (!spawned) throw new Error(`${this.serverName}: cannot run ${command} (not installed? scripts/setup.sh --test installs it)`);
    const pid = child.pid!;
    running.add(pid);
    void exit.then(() => running.delete(pid));
    const exited = exit.then(() => {
      throw new Error(`${this.serverName} exited while starting:\n${stderr}\n${this.log().slice(-2000)}`);
    });
    exited.catch(() => {}); // reported through the race below, when it happens then
    await Promise.race([Promise.all(this.ports.map((port) => waitForPort(port, this.serverName))), exited]);
  }

  /** SIGTERM by pid, SIGKILL if it does not exit in time; resolves once it has exited. */
  async stop(timeoutMs = 5_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exit = once(child, 'exit');
    process.kill(child.pid!, 'SIGTERM');
    const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), timeoutMs);
    await exit;
    clearTimeout(timer);
  }
}

/** A new temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'parley-proc-'): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** A config file that only opens authentication, as tests that send unauthenticated requests need. */
function openAuthConfig(dir: string): string {
  const file = join(dir, 'open-auth.yaml');
  writeFileSync(file, 'auth:\n  policy: open\n');
  return file;
}

/** Starts `parley start` and resolves once it logged 'parley started'. */
export async function startParley(options: StartOptions = {}): Promise<ParleyProcess> {
  const fixedPorts = options.udpPort !== undefined || options.tcpPort !== undefined;
  // Free ports can be taken between the probe and Parley's bind: try again with others, a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (fixedPorts || attempt >= 3 || !/EADDRINUSE/.test((error as Error).message)) throw error;
    }
  }
}

async function startOnce(options: StartOptions): Promise<ParleyProcess> {
  installExitHook();
  const udpPort = options.udpPort ?? (await freeUdpPort());
  const tcpPort = options.tcpPort ?? (await freeTcpPort());
  const dir = options.dir ?? tempDir();
  const db = options.db ?? `sqlite:${join(dir, 'parley.db')}`;
  const extra = options.args ?? [];
  const config = extra.includes('--config') ? [] : ['--config', openAuthConfig(dir)];
  const args = [
    ...(options.nodeArgs ?? []),
    BIN, 'start', ...config,
    '--listen', `udp:${HOST}:${udpPort}`,
    '--listen', `tcp:${HOST}:${tcpPort}`,
    '--db', db,
    '--domain', 'localhost',
    '--log-level', options.logLevel ?? 'info',
    '--admin-listen', `${HOST}:0`,
    ...extra,
  ];
  const child: ChildProcess = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('parley: spawn failed');
  running.add(pid);

  const logs: string[] = [];
  const stderr: string[] = [];
  const logWaiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  let status: ExitStatus | undefined;
  // 'close', not 'exit': the last log lines may still be in the pipe when the process has exited.
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(pid);
      status = { code, signal };
      resolve(status);
    });
  });
  const lines = (stream: NodeJS.ReadableStream, sink: string[], onLine?: (line: string) => void) => {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        sink.push(line);
        onLine?.(line);
      }
    });
    stream.on('end', () => {
      if (rest) {
        sink.push(rest);
        onLine?.(rest);
      }
    });
  };
  lines(child.stdout!, logs, (line) => {
    // Parley's last-resort handler logs an error nothing handled and serves on, so the test would not
    // notice: thrown here, node:test fails the test running at that moment, as for its own process.
    if (!options.expectInternalErrors && line.includes('"msg":"internal error: ')) {
      process.nextTick(() => {
        throw new Error(`parley (pid ${pid}) logged an internal error: ${line}`);
      });
    }
    for (let i = logWaiters.length - 1; i >= 0; i--) {
      if (logWaiters[i]!.test(line)) logWaiters.splice(i, 1)[0]!.resolve(line);
    }
  });
  lines(child.stderr!, stderr);

  const kill = (signal: NodeJS.Signals) => {
    if (status) return;
    try {
      process.kill(pid, signal);
    } catch {
      // exited in between
    }
  };

  const waitForLog = (pattern: RegExp | string, timeoutMs = 10_000): Promise<string> => {
    const test = (line: string) => (typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line));
    const already = logs.find(test);
    if (already !== undefined) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = logWaiters.indexOf(waiter);
        if (i >= 0) logWaiters.splice(i, 1);
        reject(new Error(`parley (pid ${pid}): no log line matching ${String(pattern)} within ${timeoutMs} ms\nstdout:\n${logs.slice(-20).join('\n')}\nstderr:\n${stderr.join('\n')}`));
      }, timeoutMs);
      const waiter = {
        test,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      logWaiters.push(waiter);
    });
  };

  const handle: ParleyProcess = {
    udp: { host: HOST, port: udpPort },
    tcp: { host: HOST, port: tcpPort },
    pid,
    logs,
    stderr,
    db,
    exited,
    get alive() {
      return status === undefined;
    },
    kill,
    async stop(timeoutMs = 10_000) {
      if (status) return status;
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
    waitForLog,
    entries() {
      const out: Array<Record<string, unknown>> = [];
      for (const line of logs) {
        try {
          out.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log event
        }
      }
      return out;
    },
    rssKb() {
      try {
        const m = /^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) : undefined;
      } catch {
        return undefined;
      }
    },
  };

  // As a JSON event, or a readable line with --log-format pretty.
  const started = waitForLog(/"parley started"|^\S+ INFO {2}parley started /, options.startTimeoutMs ?? 30_000);
  started.catch(() => {}); // reported through the race below
  const early = exited.then((s) => {
    throw new Error(`parley exited before it started (code ${s.code}, signal ${s.signal}):\n${stderr.join('\n')}\n${logs.slice(-10).join('\n')}`);
  });
  try {
    await Promise.race([started, early]);
  } catch (error) {
    kill('SIGKILL');
    await exited;
    throw error;
  }
  early.catch(() => {}); // the process exiting later is the test's business
  return handle;
}
