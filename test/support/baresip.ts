// Runs a real baresip (Debian baresip-core) as a SIP peer for tests: a throwaway config directory,
// SIP on a free loopback port, no audio or video, the stdio UI so that incoming MESSAGEs are
// printed and commands can be typed on standard input. Stopped by its own pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BARESIP_BIN = '/usr/bin/baresip';
export const BARESIP_MODULES = '/usr/lib/baresip/modules';

/** Why baresip cannot run here, or undefined when it can (for `test(..., { skip })`). */
export function baresipMissing(): string | undefined {
  if (!existsSync(BARESIP_BIN)) return `${BARESIP_BIN} not installed (Debian package baresip-core)`;
  for (const module of ['stdio.so', 'account.so', 'contact.so', 'menu.so']) {
    if (!existsSync(join(BARESIP_MODULES, module))) return `baresip module ${module} missing in ${BARESIP_MODULES}`;
  }
  return undefined;
}

export interface BaresipOptions {
  user: string;
  domain?: string;
  password: string;
  transport: 'udp' | 'tcp';
  /** Parley's listener for that transport: baresip's outbound proxy. */
  proxy: { host: string; port: number };
  /** The one entry of baresip's contact list: where `/message` sends. */
  peer?: string;
  regint?: number;
}

export interface Baresip {
  readonly pid: number;
  /** SIP port baresip listens on (UDP and TCP), 127.0.0.1. */
  readonly port: number;
  readonly dir: string;
  /** Everything baresip wrote so far, stdout and stderr interleaved. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output, waiting for it if needed. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Types a line on baresip's standard input, e.g. `/message hello`. */
  type(line: string): void;
  /** SIGTERM (baresip then unregisters), SIGKILL if it lingers; removes the config directory. */
  stop(): Promise<void>;
}

/**
 * A port free for both UDP and TCP on 127.0.0.1 (baresip's sip_listen opens both), with the next
 * port free for TCP too: baresip's SIP/TLS transport binds there and fails the start when taken.
 */
async function freeSipPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const held = [await holdTcp(port), await holdTcp(port + 1)];
    udp.close();
    await Promise.all(held.map((server) => server && new Promise<void>((resolve) => server.close(() => resolve()))));
    if (held.every(Boolean)) return port;
  }
  throw new Error('no port free for both UDP and TCP on 127.0.0.1');
}

/** Listens on a TCP port of 127.0.0.1, or gives undefined when it is taken. */
function holdTcp(port: number): Promise<Server | undefined> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

export async function startBaresip(options: BaresipOptions): Promise<Baresip> {
  const domain = options.domain ?? 'localhost';
  const port = await freeSipPort();
  const dir = mkdtempSync(join(tmpdir(), 'parley-baresip-'));
  writeFileSync(
    join(dir, 'config'),
    [
      'poll_method\t\tpoll',
      `sip_listen\t\t127.0.0.1:${port}`,
      `module_path\t\t${BARESIP_MODULES}`,
      // stdio: the UI that prints incoming messages ("sip:bob@localhost: "text"") and reads commands.
      'module\t\t\tstdio.so',
      'module_app\t\taccount.so',
      'module_app\t\tcontact.so',
      'module_app\t\tmenu.so',
      'audio_player\t\tnone',
      'audio_source\t\tnone',
      'audio_alert\t\tnone',
      '',
    ].join('\n'),
  );
  const transport = options.transport;
  const outbound = `sip:${options.proxy.host}:${options.proxy.port};transport=${transport}`;
  writeFileSync(
    join(dir, 'accounts'),
    `<sip:${options.user}@${domain};transport=${transport}>;auth_pass=${options.password};outbound="${outbound}";regint=${options.regint ?? 600}\n`,
  );
  writeFileSync(join(dir, 'contacts'), options.peer ? `"peer" <${options.peer}>\n` : '');

  const child: ChildProcess = spawn(BARESIP_BIN, ['-f', dir], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  let text = '';
  const listeners = new Set<() => void>();
  const onChunk = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const listener of [...listeners]) listener();
  };
  child.stdout!.on('data', onChunk);
  child.stderr!.on('data', onChunk);
  child.stdin!.on('error', () => {});
  if (child.pid === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot start ${BARESIP_BIN}`);
  }
  const pid = child.pid;
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
    for (const listener of [...listeners]) listener();
  });

  const waitFor = (pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const match = text.match(pattern);
        if (!match) {
          if (!exitedEarly) return false;
          listeners.delete(onOutput);
          clearTimeout(timer);
          reject(new Error(`baresip exited before printing ${pattern}; output:\n${text}`));
          return true;
        }
        listeners.delete(onOutput);
        clearTimeout(timer);
        resolve(match);
        return true;
      };
      const onOutput = () => void check();
      const timer = setTimeout(() => {
        listeners.delete(onOutput);
        reject(new Error(`baresip: no output matching ${pattern} within ${timeoutMs} ms; output so far:\n${text}`));
      }, timeoutMs);
      if (!check()) listeners.add(onOutput);
    });

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(pid, 'SIGTERM');
        const killer = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
        }, 3000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    })());

  return {
    pid,
    port,
    dir,
    output: () => text,
    waitFor,
    type(line: string) {
      child.stdin!.write(`${line}\n`);
    },
    stop,
  };
}
