// kill -9 with deliveries pending: a message one device took and another was away for is on disk
// before the sender's 200, so the away device still gets it from a restarted Parley.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { udpAgents } from '../support/ua.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, startParley, tempDir } from '../support/process.js';
import { newInstance, registerDevice } from './devices.js';

const agent = udpAgents();
after(() => killAll());

test('kill -9 of Parley with a delivery pending for a device: the device gets it after the restart, the other device not again', async () => {
  let parley = await startParley();
  try {
    const phone = await agent('ida', parley.udp);
    const laptop = await agent('ida', parley.udp);
    const sender = await agent('jon', parley.udp);
    const phoneInstance = newInstance();
    const laptopInstance = newInstance();
    assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
    assert.equal((await registerDevice(phone, { instance: phoneInstance, expires: 0 })).status, 200);
    assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
    const toLaptop = laptop.waitForRequest((m) => m.method === 'MESSAGE');
    assert.equal((await sender.message('sip:ida@localhost', 'before the crash')).status, 200);
    await toLaptop;

    parley.kill('SIGKILL');
    assert.equal((await parley.exited).signal, 'SIGKILL');
    parley = await startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });

    const toPhone = phone.waitForRequest((m) => m.method === 'MESSAGE', 10_000);
    assert.equal((await registerDevice(phone, { instance: phoneInstance })).status, 200);
    assert.equal((await toPhone).body.toString(), 'before the crash');
    // The laptop registers again: it took the message before the crash, so nothing comes; a new one does.
    assert.equal((await registerDevice(laptop, { instance: laptopInstance })).status, 200);
    const next = laptop.waitForRequest((m) => m.body.toString() === 'after the restart');
    assert.equal((await sender.message('sip:ida@localhost', 'after the restart')).status, 200);
    await next;
    assert.deepEqual(laptop.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString()), ['before the crash', 'after the restart']);
  } finally {
    await parley.stop();
  }
});

test('after kill -9, a device still registered gets what it has waiting at start, without registering again', async () => {
  let parley = await startParley();
  try {
    const phone = await agent('kai', parley.udp);
    const sender = await agent('lou', parley.udp);
    assert.equal((await registerDevice(phone, { instance: newInstance() })).status, 200);
    phone.answer = 503;
    assert.equal((await sender.message('sip:kai@localhost', 'busy then')).status, 202);

    parley.kill('SIGKILL');
    assert.equal((await parley.exited).signal, 'SIGKILL');
    phone.answer = 200;
    const again = phone.waitForRequest((m) => m.body.toString() === 'busy then' && m.has('date'), 10_000);
    parley = await startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });
    await again;
  } finally {
    await parley.stop();
  }
});

test('kill -9 after the sender\'s 200 while a device had not answered yet: that device gets the message after the restart', async () => {
  const dir = tempDir();
  const config = join(dir, 'parley.yaml');
  writeFileSync(config, 'auth:\n  policy: open\nrelay:\n  accept_timeout: 1\n');
  let parley = await startParley({ dir, args: ['--config', config] });
  try {
    const phone = await agent('max', parley.udp);
    const laptop = await agent('max', parley.udp);
    const sender = await agent('ned', parley.udp);
    assert.equal((await registerDevice(phone, { instance: newInstance() })).status, 200);
    assert.equal((await registerDevice(laptop, { instance: newInstance() })).status, 200);
    phone.answer = null;
    const toPhone = phone.waitForRequest((m) => m.method === 'MESSAGE');
    assert.equal((await sender.message('sip:max@localhost', 'phone slow')).status, 200, 'the laptop took it');
    await toPhone;

    parley.kill('SIGKILL');
    assert.equal((await parley.exited).signal, 'SIGKILL');
    phone.answer = 200;
    const again = phone.waitForRequest((m) => m.body.toString() === 'phone slow', 10_000);
    parley = await startParley({ dir, db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port, args: ['--config', config] });
    await again;
    assert.deepEqual(laptop.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString()), ['phone slow'], 'the laptop not again');
  } finally {
    await parley.stop();
  }
});
