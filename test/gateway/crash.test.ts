// kill -9 safety of the per-user gateway: a MESSAGE answered 202 while the user's XMPP session could
// not come online (its server down) is in the outbox, and the restarted Parley sends it from the
// user's account once the server is back.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GATEWAY, gatewayConfigDir, xmppLinkCommand } from '../support/gateway.js';
import { killAll, startParley } from '../support/process.js';
import { Prosody } from '../support/prosody.js';
import { TestUA } from '../support/ua.js';
import { XmppUser } from '../support/xmpp-user.js';

const XMPP_PASSWORD = 'Xmpp-Secret-4711';

let prosody: Prosody | undefined;
let juliet: XmppUser | undefined;
const agents: TestUA[] = [];
after(async () => {
  for (const agent of agents) agent.close();
  killAll();
  await juliet?.stop();
  await prosody?.stop();
});

test('MESSAGEs answered 202 before the kill, their session not online, reach the XMPP contact after the restart, in order; max_queue bounds them', async () => {
  prosody = await Prosody.start();
  await Promise.all([prosody.register('alice', XMPP_PASSWORD), prosody.register('juliet', 'password')]);
  await prosody.stop();

  const { dir, config } = gatewayConfigDir({ delay_time: 120, max_queue: 3 });
  const first = await startParley({ dir, args: ['--config', config] });
  const alice = await TestUA.create({ user: 'alice', server: first.udp });
  agents.push(alice);
  const link = xmppLinkCommand(prosody, 'alice', XMPP_PASSWORD);
  assert.equal((await alice.message(GATEWAY, link)).status, 200);
  const texts = ['one', 'two', 'three'];
  const julietAddress = `sip:juliet*${prosody.domain}@xmpp.localhost`;
  for (const text of texts) assert.equal((await alice.message(julietAddress, text)).status, 202);
  // max_queue messages wait for the session: the next is refused, not queued without bound.
  const refused = await alice.message(julietAddress, 'four');
  assert.equal(refused.status, 503);
  assert.equal(refused.reason, 'Service Unavailable (too many messages waiting for your session)');
  assert.equal(refused.get('retry-after'), '5');
  first.kill('SIGKILL');
  assert.equal((await first.exited).signal, 'SIGKILL');

  await prosody.start();
  juliet = await XmppUser.connect(prosody, 'juliet');
  const second = await startParley({ dir, db: first.db, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', config] });
  try {
    await juliet.waitForMessage((m) => m.getChildText('body') === 'three', 30_000);
    const received = juliet.messages.map((m) => m.getChildText('body')).filter((body) => texts.includes(body ?? ''));
    assert.ok(!juliet.messages.some((m) => m.getChildText('body') === 'four'), 'the refused message went nowhere');
    assert.deepEqual([...new Set(received)], texts, 'each one, in order (one sent again after the restart is a tolerated duplicate)');
  } finally {
    await second.stop();
  }
});
