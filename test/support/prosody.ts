// Runs a real Prosody (the Debian package) for the XMPP tests: the configuration is
// test/fixtures/prosody/prosody.cfg.lua filled in, data, pid and log live in a temporary directory,
// c2s and component ports are free loopback ports. The process is spawned directly in the
// foreground, stopped by its pid, and killed by pid if the test process exits first.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freeTcpPort, tempDir } from './process.js';

const TEMPLATE = new URL('../fixtures/prosody/prosody.cfg.lua', import.meta.url);
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface ProsodyOptions {
  domain?: string;
  componentDomain?: string;
  componentSecret?: string;
  /** Another configuration template (default test/fixtures/prosody/prosody.cfg.lua). */
  template?: URL;
  /** Further {{PLACEHOLDERS}} of the template. */
  values?: Record<string, string | number>;
  /** Runs before Prosody starts, with its directory (certificates go there). */
  setup?: (dir: string) => void;
}

export class Prosody {
  readonly domain: string;
  readonly componentDomain: string;
  readonly componentSecret: string;
  readonly dir = tempDir('parley-prosody-');
  readonly config = join(this.dir, 'prosody.cfg.lua');
  private child: ChildProcess | undefined;

  private constructor(
    options: ProsodyOptions,
    readonly c2sPort: number,
    readonly componentPort: number,
  ) {
    this.domain = options.domain ?? 'xmpp.test';
    this.componentDomain = options.componentDomain ?? `sip.${this.domain}`;
    this.componentSecret = options.componentSecret ?? 'component-secret-for-tests';
    const values: Record<string, string | number> = {
      DIR: this.dir,
      LOG_LEVEL: process.env.PROSODY_TEST_LOG ?? 'info',
      C2S_PORT: c2sPort,
      COMPONENT_PORT: componentPort,
      DOMAIN: this.domain,
      COMPONENT_DOMAIN: this.componentDomain,
      COMPONENT_SECRET: this.componentSecret,
      ...options.values,
    };
    options.setup?.(this.dir);
    const template = readFileSync(options.template ?? TEMPLATE, 'utf8');
    writeFileSync(this.config, template.replace(/\{\{([A-Z_0-9]+)\}\}/g, (_, name: string) => String(values[name])));
  }

  /** Starts a Prosody and resolves once its c2s and component ports accept connections. */
  static async start(options: ProsodyOptions = {}): Promise<Prosody> {
    const prosody = new Prosody(options, await freeTcpPort(), await freeTcpPort());
    await prosody.start();
    return prosody;
  }

  get service(): string {
    return `xmpp://${HOST}:${this.c2sPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the server again (after stop) on the same ports, with the same data. */
  async start(): Promise<void> {
    const child = spawn('prosody', ['--config', this.config, '-F'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    running.add(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = once(child, 'exit').then(() => {
      running.delete(child);
      throw new Error(`prosody exited while starting:\n${stderr}\n${this.log().slice(-2000)}`);
    });
    exited.catch(() => {}); // reported through the race below, when it happens then
    await Promise.race([Promise.all([waitForPort(this.c2sPort), waitForPort(this.componentPort)]), exited]);
  }

  /** SIGTERM by pid, SIGKILL if it does not exit in time; resolves once it has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exit = once(child, 'exit');
    process.kill(child.pid!, 'SIGTERM');
    const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), STOP_TIMEOUT_MS);
    await exit;
    clearTimeout(timer);
    running.delete(child);
  }

  /** Creates an account (prosodyctl writes it to the data directory). */
  async register(user: string, password: string): Promise<void> {
    await promisify(execFile)('prosodyctl', ['--config', this.config, 'register', user, this.domain, password]);
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'prosody.log'), 'utf8');
    } catch {
      return '';
    }
  }
}

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
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
    if (Date.now() > deadline) throw new Error(`prosody: port ${port} not accepting within ${START_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
