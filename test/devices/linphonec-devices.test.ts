// Two linphonec (Debian linphone-cli) devices of one user and a sender: a MESSAGE reaches both; one
// device quits, a message is sent, the device starts again and gets exactly that message, once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, type TestServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { fillTemplate, tempDir } from '../support/process.js';
import { eventually } from '../support/eventually.js';

const LINPHONEC = '/usr/bin/linphonec';
const TEMPLATE = new URL('../fixtures/linphone/linphonerc', import.meta.url);
const agent = udpAgents();

/** A linphonec device with its own home (its instance is kept there across restarts). */
class Device {
  private child: ChildProcess | undefined;
  private exited: Promise<unknown> = Promise.resolve();
  output = '';
  readonly dir = tempDir('parley-linphonec-');

  constructor(s: TestServer, user: string) {
    writeFileSync(join(this.dir, 'linphonerc'), fillTemplate(TEMPLATE, { PROXY: `sip:127.0.0.1:${s.tcp.port};transport=tcp`, USER: user }));
    // liblinphone keeps its databases under $HOME and does not start its SIP stack without them.
    mkdirSync(join(this.dir, '.local/share/linphone'), { recursive: true });
  }

  start(): void {
    const child = spawn(LINPHONEC, ['-c', join(this.dir, 'linphonerc')], { env: { ...process.env, HOME: this.dir }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = once(child, 'exit');
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
    child.stderr!.resume();
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

  received(text: string): number {
    return this.output.split(`Message received from sip:bob@localhost: ${text}`).length - 1;
  }
}

test('two linphonec devices of one user: both get a message; one quits, and when it starts again it gets what came meanwhile, once', { skip: existsSync(LINPHONEC) ? undefined : `${LINPHONEC} not installed (Debian package linphone-cli)` }, async () => {
  const s = await startServer();
  const phone = new Device(s, 'lino');
  const desk = new Device(s, 'lino');
  after(async () => {
    await Promise.all([phone.kill(), desk.kill()]);
    await s.stop();
  });
  const devices = () => new Set(s.server.registrar.lookup('lino@localhost').map((b) => b.instance)).size;
  phone.start();
  desk.start();
  await eventually(() => devices() === 2 || undefined, 'both linphonec registered as devices', 20_000);

  const bob = await agent('bob', s.udp);
  assert.equal((await bob.message('sip:lino@localhost', 'to both')).status, 200);
  await eventually(() => (phone.received('to both') === 1 && desk.received('to both') === 1) || undefined, 'both printing the message', 10_000);

  await phone.quit();
  await eventually(() => devices() === 1 || undefined, 'the phone unregistered', 10_000);
  assert.equal((await bob.message('sip:lino@localhost', 'while the phone was off')).status, 200);
  await eventually(() => desk.received('while the phone was off') === 1 || undefined, 'the desk printing it', 10_000);

  phone.start();
  await eventually(() => phone.received('while the phone was off') === 1 || undefined, 'the phone printing what came while it was off', 20_000);
  assert.equal((await bob.message('sip:lino@localhost', 'both again')).status, 200);
  await eventually(() => (phone.received('both again') === 1 && desk.received('both again') === 1) || undefined, 'both printing the next message', 10_000);
  assert.equal(phone.received('while the phone was off'), 1, 'once');
  assert.equal(phone.received('to both'), 1, 'what it had taken before does not come again');
});
