// Two linphonec (Debian linphone-cli) devices of one user and a sender: a MESSAGE reaches both; one
// device quits, a message is sent, the device starts again and gets exactly that message, once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { udpAgents } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { NO_LINPHONEC, twoLinphonecDevices } from './linphonec.js';

const agent = udpAgents();

test('two linphonec devices of one user: both get a message; one quits, and when it starts again it gets what came meanwhile, once', { skip: NO_LINPHONEC }, async () => {
  const { s, phone, desk, devices } = await twoLinphonecDevices('lino');

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
