// A throwaway PostgreSQL server for tests: its own cluster in a temp dir, loopback only, trust auth.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const POSTGRES_INSTALL_ROOT = '/usr/lib/postgresql';
const STARTUP_TIMEOUT_MS = 30_000;
const STDERR_TAIL_CHARS = 4_000;

export interface PostgresServer {
  /** URL of the empty database parley_test. */
  url: string;
  /** Creates another empty database and returns its URL, for tests that need a schema of their own. */
  createDatabase(name: string): Promise<string>;
  /** The postmaster's pid, while it runs. */
  readonly pid: number | undefined;
  /** Stops the server by its pid (fast shutdown: clients are disconnected), keeping its data. */
  halt(): Promise<void>;
  /** Starts the halted server again on the same port and data directory; resolves once it accepts connections. */
  resume(): Promise<void>;
  /** Stops the postmaster and every backend with SIGSTOP: connections stay open and nothing is answered (a hung server). */
  freeze(): void;
  /** Lets a frozen server go on with SIGCONT. */
  thaw(): void;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<PostgresServer> {
  const binDir = findPostgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresUser() : undefined;

  const baseDir = await mkdtemp(join(tmpdir(), 'parley-pg-'));
  const dataDir = join(baseDir, 'data');
  try {
    if (owner) await chown(baseDir, owner.uid, owner.gid);
    const initdb = [join(binDir, 'initdb'), '-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '--no-locale', '-E', 'UTF8'];
    const [command, ...args] = asRoot ? ['runuser', '-u', 'postgres', '--', ...initdb] : initdb;
    await promisify(execFile)(command!, args);
  } catch (error) {
    await rm(baseDir, { recursive: true, force: true });
    throw error;
  }

  const port = await freePort();
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let server: ChildProcess;
  let exited: Promise<unknown>;
  let stderrTail = '';
  const running = () => server.exitCode === null && server.signalCode === null;
  const launch = async () => {
    // Spawned directly rather than through runuser so the pid we hold is the postmaster's own.
    server = spawn(
      join(binDir, 'postgres'),
      ['-D', dataDir, '-p', String(port), '-k', baseDir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
      { cwd: baseDir, stdio: ['ignore', 'ignore', 'pipe'], ...owner },
    );
    server.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    exited = once(server, 'exit');
    await waitUntilAccepting(adminUrl, () => !running(), () => stderrTail);
  };
  const halt = async () => {
    if (!running()) return;
    process.kill(server.pid!, 'SIGINT'); // fast shutdown: disconnect clients, no waiting for them
    await exited;
  };

  // The postmaster first, so that it forks no backend the list misses.
  const signalAll = (signal: NodeJS.Signals) => {
    const postmaster = server.pid!;
    process.kill(postmaster, signal);
    const backends = execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' }).split('\n').filter((pid) => pid.trim() !== '');
    for (const pid of backends) {
      try {
        process.kill(Number(pid), signal);
      } catch {
        // A backend that ended since the list was made.
      }
    }
  };

  const stop = async () => {
    if (running()) signalAll('SIGCONT');
    await halt();
    await rm(baseDir, { recursive: true, force: true });
  };

  const createDatabase = async (name: string) => {
    await withClient(adminUrl, (client) => client.query(`create database ${pg.escapeIdentifier(name)}`));
    return `postgres://postgres@127.0.0.1:${port}/${name}`;
  };

  try {
    await launch();
    return {
      url: await createDatabase('parley_test'),
      createDatabase,
      get pid() {
        return running() ? server.pid : undefined;
      },
      halt,
      resume: launch,
      freeze: () => signalAll('SIGSTOP'),
      thaw: () => signalAll('SIGCONT'),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function findPostgresBinDir(): string {
  const versions = existsSync(POSTGRES_INSTALL_ROOT) ? readdirSync(POSTGRES_INSTALL_ROOT) : [];
  const newestFirst = versions.sort((a, b) => Number(b) - Number(a));
  const version = newestFirst.find((v) => existsSync(join(POSTGRES_INSTALL_ROOT, v, 'bin', 'initdb')));
  if (version === undefined) {
    throw new Error(
      `PostgreSQL server binaries not found (${POSTGRES_INSTALL_ROOT}/*/bin/initdb); run scripts/setup.sh --test to install them`,
    );
  }
  return join(POSTGRES_INSTALL_ROOT, version, 'bin');
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** A port the OS just handed out; tiny race with other processes, acceptable in tests. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const address = probe.address();
  probe.close();
  await once(probe, 'close');
  if (address === null || typeof address === 'string') throw new Error('Could not determine a free TCP port');
  return address.port;
}

async function waitUntilAccepting(url: string, hasExited: () => boolean, serverLog: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (hasExited()) throw new Error(`PostgreSQL exited during startup:\n${serverLog()}`);
    try {
      await withClient(url, (client) => client.query('select 1'));
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`PostgreSQL did not accept connections within ${STARTUP_TIMEOUT_MS} ms:\n${serverLog()}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}
