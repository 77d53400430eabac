// Own-message sync with real clients: two linphonec devices and a JsSIP web client (over
// WebSocket) of one user. A message from bob reaches all three; what the user sends from one of
// them reaches bob, and the others as a copy marked sent (X-Parley-Copy: sent), From the user, To
// bob. linphonec prints only sender and text, so that the copy it got was marked is read from its
// SIP log; JsSIP hands the request itself to the application.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { udpAgents } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { JsSipClient } from '../support/jssip.js';
import { NO_LINPHONEC, twoLinphonecDevices } from './linphonec.js';

const agent = udpAgents();

/** Whether a SIP log holds a MESSAGE marked as a copy of a sent message whose body is `text`. */
const copyLogged = (log: string, text: string) =>
  new RegExp(`^MESSAGE [^\\r\\n]+\\r?\\n(?:[^\\r\\n]+\\r?\\n)*?X-Parley-Copy: sent\\r?\\n(?:[^\\r\\n]+\\r?\\n)*\\r?\\n${text}`, 'im').test(log);

test('two linphonec devices and a JsSIP device of one user: each sees what bob sent, and what the user sent from the others as sent', { skip: NO_LINPHONEC }, async () => {
  const { s, phone, desk, devices } = await twoLinphonecDevices('lino', { sipLog: true });
  const web = await JsSipClient.start({ url: `ws://127.0.0.1:${s.ws!.port}`, uri: 'sip:lino@localhost' });
  after(() => web.kill());
  assert.equal(devices(), 3, 'JsSIP is the third device');
  const bob = await agent('bob', s.udp);
  assert.equal((await bob.register()).status, 200);

  // Bob writes: every device shows it.
  const webGot = web.waitForMessage((m) => m.body === 'hello all');
  assert.equal((await bob.message('sip:lino@localhost', 'hello all')).status, 200);
  await eventually(() => (phone.received('hello all') === 1 && desk.received('hello all') === 1) || undefined, 'both linphonec printing bob\'s message', 10_000);
  const fromBob = await webGot;
  assert.equal(fromBob.from, 'sip:bob@localhost');
  assert.equal(fromBob.request.getHeader('X-Parley-Copy'), undefined);

  // The user writes from linphonec: bob gets it; the browser and the desk get the copy, the phone not.
  const toBob = bob.waitForRequest((m) => m.body.toString() === 'from the phone', 10_000);
  const copyOnWeb = web.waitForMessage((m) => m.body === 'from the phone', 10_000);
  phone.chat('sip:bob@localhost', 'from the phone');
  assert.match((await toBob).get('from')!, /^<sip:lino@localhost>/);
  const copy = await copyOnWeb;
  assert.equal(copy.from, 'sip:lino@localhost');
  assert.equal(copy.request.to.uri.toString(), 'sip:bob@localhost');
  assert.equal(copy.request.getHeader('X-Parley-Copy'), 'sent');
  await eventually(() => desk.received('from the phone', 'sip:lino@localhost') === 1 || undefined, 'the desk printing the copy', 10_000);
  assert.ok(copyLogged(desk.sipLog(), 'from the phone'), 'the desk got it marked X-Parley-Copy: sent');
  assert.equal(phone.received('from the phone', 'sip:lino@localhost'), 0, 'the phone that sent it gets no copy');

  // The user writes from the browser: bob gets it; both linphonec devices get the copy, the browser not.
  const toBobAgain = bob.waitForRequest((m) => m.body.toString() === 'from the browser', 10_000);
  assert.deepEqual(await web.sendMessage('sip:bob@localhost', 'from the browser'), { ok: true, status: 200 });
  assert.match((await toBobAgain).get('from')!, /^<?sip:lino@localhost/);
  await eventually(
    () => (phone.received('from the browser', 'sip:lino@localhost') === 1 && desk.received('from the browser', 'sip:lino@localhost') === 1) || undefined,
    'both linphonec printing the copy', 10_000,
  );
  assert.ok(copyLogged(phone.sipLog(), 'from the browser') && copyLogged(desk.sipLog(), 'from the browser'), 'marked X-Parley-Copy: sent');
  assert.deepEqual(web.received.map((m) => m.body), ['hello all', 'from the phone'], 'the browser gets no copy of its own message');
});
