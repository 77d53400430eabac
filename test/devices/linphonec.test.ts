// A real GRUU client against Parley: linphonec (Debian linphone-cli) registers over TCP with
// Supported: outbound, gruu and its +sip.instance, gets its public GRUU in the 200, and a MESSAGE
// sent to that GRUU reaches it over the connection it registered on (linphonec prints it).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer } from '../support/server.js';
import { udpAgents } from '../support/ua.js';
import { fillTemplate, tempDir } from '../support/process.js';
import { eventually } from '../support/eventually.js';

const LINPHONEC = '/usr/bin/linphonec';
const TEMPLATE = new URL('../fixtures/linphone/linphonerc', import.meta.url);
const agent = udpAgents();

test('linphonec gets its pub-gruu, and a MESSAGE to that GRUU reaches it', { skip: existsSync(LINPHONEC) ? undefined : `${LINPHONEC} not installed (Debian package linphone-cli)` }, async () => {
  const s = await startServer();
  after(() => s.stop());
  const dir = tempDir('parley-linphonec-');
  const config = join(dir, 'linphonerc');
  const log = join(dir, 'linphone.log');
  writeFileSync(config, fillTemplate(TEMPLATE, { PROXY: `sip:127.0.0.1:${s.tcp.port};transport=tcp`, USER: 'lina' }));
  // liblinphone keeps its databases under $HOME and does not start its SIP stack without them.
  mkdirSync(join(dir, '.local/share/linphone'), { recursive: true });
  const child = spawn(LINPHONEC, ['-c', config, '-d', '6', '-l', log], { env: { ...process.env, HOME: dir }, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.resume();
  after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  });

  // The 200 as linphonec received it (its log holds every SIP message).
  const ok = await eventually(() => (existsSync(log) && /^Contact: .*;pub-gruu="([^"]+)"/m.exec(readFileSync(log, 'utf8'))) || undefined, 'a 200 with pub-gruu in linphonec\'s log', 20_000);
  const gruu = ok[1]!;
  assert.match(readFileSync(log, 'utf8'), /^SIP\/2\.0 200 OK\r?\n(?:[^\r\n]+\r?\n)*?Supported: gruu, outbound\r?$/m);
  const [binding] = s.server.registrar.lookup('lina@localhost');
  assert.ok(binding?.instance, 'linphonec registered as a device');
  assert.equal(gruu, `sip:lina@localhost;gr=${binding.instance.replace(/^"<|>"$/g, '')}`);
  assert.equal(binding.source.proto, 'tcp');

  const bob = await agent('bob', s.udp);
  assert.equal((await bob.message(gruu, 'hello, device')).status, 200);
  await eventually(() => output.includes('Message received from sip:bob@localhost: hello, device'), 'linphonec printing the message', 10_000);

  process.kill(child.pid!, 'SIGTERM');
  await exited;
});
