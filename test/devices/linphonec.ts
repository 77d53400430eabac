// A linphonec (Debian linphone-cli) device for the tests of several devices of one user: its own
// home (its +sip.instance is kept there across restarts), registered to Parley over TCP; what it
// prints is what its user sees.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { eventually } from '../support/eventually.js';
import { type TestServer, startServer } from '../support/server.js';
import { fillTemplate, tempDir } from '../support/process.js';

export const LINPHONEC = '/usr/bin/linphonec';
/** The `skip` of a test that needs linphonec. */
export const NO_LINPHONEC = existsSync(LINPHONEC) ? undefined : `${LINPHONEC} not installed (Debian package linphone-cli)`;
const TEMPLATE = new URL('../fixtures/linphone/linphonerc', import.meta.url);

export class LinphoneDevice {
  private child: ChildProcess | undefined;
  private exited: Promise<unknown> = Promise.resolve();
  output = '';
  readonly dir = tempDir('parley-linphonec-');

  /** `sipLog`: linphonec logs every SIP message it sends and receives (sipLog()). */
  constructor(s: TestServer, user: string, private readonly options: { sipLog?: boolean } = {}) {
    writeFileSync(join(this.dir, 'linphonerc'), fillTemplate(TEMPLATE, { PROXY: `sip:127.0.0.1:${s.tcp.port};transport=tcp`, USER: user }));
    // liblinphone keeps its databases under $HOME and does not start its SIP stack without them.
    mkdirSync(join(this.dir, '.local/share/linphone'), { recursive: true });
  }

  start(): void {
    const logging = this.options.sipLog ? ['-d', '6', '-l', join(this.dir, 'linphone.log')] : [];
    const child = spawn(LINPHONEC, ['-c', join(this.dir, 'linphonerc'), ...logging], { env: { ...process.env, HOME: this.dir }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = once(child, 'exit');
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
    child.stderr!.resume();
  }

  /** Sends a text MESSAGE as its user would, with linphonec's `chat` command. */
  chat(to: string, text: string): void {
    this.child!.stdin!.write(`chat ${to} ${text}\n`);
  }

  /** Quits as its user would: linphonec unregisters on the way out. */
  async quit(): Promise<void> {
    this.child!.stdin!.write('quit\n');
    await this.exited;
  }

  kill(): Promise<unknown> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) process.kill(this.child.pid!, 'SIGKILL');
    return this.exited;
  }

  /** linphonec's log, with every SIP message it sent and received (with `sipLog`). */
  sipLog(): string {
    const file = join(this.dir, 'linphone.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** How many times it printed `text` as received from `from`. */
  received(text: string, from = 'sip:bob@localhost'): number {
    return this.output.split(`Message received from ${from}: ${text}`).length - 1;
  }
}

/** A Parley and two linphonec devices of one user, phone and desk, both registered. */
export interface TwoLinphonecs {
  s: TestServer;
  phone: LinphoneDevice;
  desk: LinphoneDevice;
  /** How many devices (distinct +sip.instance) of the user the registrar holds now. */
  devices(): number;
}

/** Starts a Parley and two linphonec devices of `user` and waits until both are registered; killed and stopped after the test. */
export async function twoLinphonecDevices(user: string, options: { sipLog?: boolean } = {}): Promise<TwoLinphonecs> {
  const s = await startServer();
  const phone = new LinphoneDevice(s, user, options);
  const desk = new LinphoneDevice(s, user, options);
  after(async () => {
    await Promise.all([phone.kill(), desk.kill()]);
    await s.stop();
  });
  const devices = () => new Set(s.server.registrar.lookup(`${user}@localhost`).map((b) => b.instance)).size;
  phone.start();
  desk.start();
  await eventually(() => devices() === 2 || undefined, 'both linphonec registered as devices', 20_000);
  return { s, phone, desk, devices };
}
