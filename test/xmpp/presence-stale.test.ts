// Stale presence of XMPP contacts, against a real Prosody stopped and started by its pid: when the
// component link stays down past xmpp.presence_grace, SIP watchers are told their XMPP contacts are
// unavailable (the server that would say so is gone); when Parley comes back after a kill -9, it
// probes the contacts whose presence it kept, so one that went offline meanwhile is told as such.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import xml from '@xmpp/xml';
import { killAll, startParley, tempDir } from '../support/process.js';
import { Watch, notified } from '../support/presence.js';
import { Prosody } from '../support/prosody.js';
import { startServer } from '../support/server.js';
import { TestUA, udpAgents } from '../support/ua.js';
import { componentConfig, gatewayJid, gatewaySipAddress } from '../support/xmpp-gateway.js';
import { XmppUser } from '../support/xmpp-user.js';

let prosody: Prosody;
const ua = udpAgents();

const sipAddressOf = (user: string) => gatewaySipAddress(prosody, user);
const jidOf = (sipUser: string) => gatewayJid(prosody, sipUser);

before(async () => {
  prosody = await Prosody.start();
  await Promise.all([prosody.register('mercutio', 'password'), prosody.register('romeo', 'password')]);
});

after(async () => {
  killAll();
  await prosody?.stop();
});

/** `user` approves `watch`'s subscription (asked for through the gateway by `sipUser`) and says it is away. */
async function approvedAndAway(user: XmppUser, sipUser: string, watch: Watch): Promise<void> {
  await user.waitForPresence((p) => p.attrs.from === jidOf(sipUser) && p.attrs.type === 'subscribe');
  await user.sendPresence({ to: jidOf(sipUser), type: 'subscribed' });
  await user.sendPresence({}, xml('show', {}, 'away'), xml('status', {}, 'in Verona'));
  await notified(watch, { basic: 'open', activities: ['away'], notes: ['in Verona'] });
}

test('the XMPP server killed: after the grace period the SIP watcher is told the contact is unavailable; once it is back, its presence is asked for again', async () => {
  const mercutio = await XmppUser.connect(prosody, 'mercutio');
  await mercutio.fetchRoster();
  const parley = await startServer({ xmpp: componentConfig(prosody, { reconnect_max: 0.3, presence_grace: 0.5 }) });
  const alice = await TestUA.create({ proto: 'tcp', user: 'alice', server: parley.tcp });
  try {
    assert.equal((await alice.register()).status, 200);
    const { response, watch } = await Watch.subscribe(alice, sipAddressOf('mercutio'), { expires: 600 });
    assert.equal(response.status, 200);
    await approvedAndAway(mercutio, 'alice', watch!);

    // kill -9: no server is left to say that mercutio is gone.
    process.kill(prosody.pid!, 'SIGKILL');
    await prosody.stop();
    assert.equal((await notified(watch!, { basic: 'closed' })).basic, 'closed');

    await prosody.start();
    // Mercutio's client comes back by itself, available with no <show/>: the probe or his own presence says so.
    await notified(watch!, { basic: 'open', activities: [] }, 20_000);
  } finally {
    alice.close();
    await mercutio.stop();
    await parley.stop();
  }
});

test('kill -9 of Parley, started again while the XMPP server is down: after the grace period the SIP watcher is told the contact is unavailable; once the server is back, its presence is asked for again', async () => {
  const romeo = await XmppUser.connect(prosody, 'romeo');
  await romeo.fetchRoster();
  const dir = tempDir();
  const config = join(dir, 'xmpp.yaml');
  writeFileSync(
    config,
    `auth:\n  policy: open\nxmpp:\n  enabled: true\n  xmpp_domain: ${prosody.componentDomain}\n  xmpp_password: ${prosody.componentSecret}\n  xmpp_port: ${prosody.componentPort}\n  reconnect_min: 0.1\n  reconnect_max: 0.2\n  presence_grace: 0.5\n`,
  );
  const first = await startParley({ dir, args: ['--config', config] });
  const alice = await ua('alice', first.udp);
  const { response, watch } = await Watch.subscribe(alice, sipAddressOf('romeo'), { expires: 600 });
  assert.equal(response.status, 200);
  await approvedAndAway(romeo, 'alice', watch!);

  first.kill('SIGKILL');
  await first.exited;
  process.kill(prosody.pid!, 'SIGKILL');
  await prosody.stop();
  const second = await startParley({ db: first.db, dir, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', config] });
  try {
    assert.deepEqual((await notified(watch!, {})).activities, ['away'], 'what romeo said before, kept in the store');
    assert.equal((await notified(watch!, { basic: 'closed' })).basic, 'closed');
    await prosody.start();
    await notified(watch!, { basic: 'open', activities: [] }, 20_000);
  } finally {
    await second.stop();
    await romeo.stop();
  }
});
