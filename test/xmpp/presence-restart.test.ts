// Presence across the XMPP gateway through kill -9 and a graceful stop: what an XMPP contact said (published into the
// agent by the gateway) and who on XMPP watches a SIP user are in the store, so the process started
// again on the same database tells a SIP watcher the contact's "away" without asking XMPP, and goes
// on sending a SIP user's changes to its XMPP watcher without a new subscription.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { eventually } from '../support/eventually.js';
import { killAll, startParley, tempDir } from '../support/process.js';
import { Watch, pidf, publish, stateIn } from '../support/presence.js';
import { udpAgents } from '../support/ua.js';
import { xmppComponentServer } from '../support/xmpp-peer.js';

const COMPONENT_DOMAIN = 'sip.xmpp.example';
const ROMEO = `sip:romeo*xmpp.example@${COMPONENT_DOMAIN}`;
const BOB_JID = `bob*localhost@${COMPONENT_DOMAIN}`;

const AWAY = { basic: 'open', notes: ['gone fishing'], activities: ['away'] };

const ua = udpAgents();
after(() => killAll());

/** A config file for Parley as a component of the XMPP server on `port`. */
function componentConfig(dir: string, port: number): string {
  const file = join(dir, 'xmpp.yaml');
  writeFileSync(file, `auth:\n  policy: open\nxmpp:\n  enabled: true\n  xmpp_domain: ${COMPONENT_DOMAIN}\n  xmpp_password: secret\n  xmpp_port: ${port}\n  reconnect_min: 0.1\n  reconnect_max: 0.2\n`);
  return file;
}

for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  test(`${signal === 'SIGKILL' ? 'kill -9' : 'a graceful stop'}: a SIP watcher is still told the XMPP contact is away, and an XMPP watcher still gets the SIP user's changes`, async () => {
    let romeoAnswers = true;
    const xmppServer = xmppComponentServer(COMPONENT_DOMAIN, ({ socket }, chunk) => {
      // Romeo's server approves the subscription and sends his presence, in the first run only.
      if (romeoAnswers && /<presence [^>]*to="romeo@xmpp\.example" type="subscribe"/.test(chunk)) {
        socket.write(`<presence from='romeo@xmpp.example/balcony' to='alice*localhost@${COMPONENT_DOMAIN}'><show>away</show><status>gone fishing</status></presence>`);
      }
    });
    const dir = tempDir();
    const config = componentConfig(dir, await xmppServer.listen());
    const first = await startParley({ dir, args: ['--config', config] });
    try {
      const alice = await ua('alice', first.udp);
      const bob = await ua('bob', first.udp);
      assert.equal((await bob.register()).status, 200);
      await eventually(() => xmppServer.latest?.input.includes('<handshake>') || undefined, 'the link up');

      const { response, watch } = await Watch.subscribe(alice, ROMEO, { expires: 600 });
      assert.equal(response.status, 200);
      assert.equal(stateIn(await watch!.nextNotify()).basic, 'closed', 'nothing known of romeo yet');
      assert.deepEqual(stateIn(await watch!.nextNotify()), AWAY, 'what romeo\'s server said');

      xmppServer.latest!.socket.write(`<presence from='juliet@xmpp.example/phone' to='${BOB_JID}' type='subscribe'/>`);
      await eventually(() => xmppServer.latest!.input.includes(`<presence from="${BOB_JID}" to="juliet@xmpp.example" type="subscribed"/>`) || undefined, 'juliet approved');

      if (signal === 'SIGKILL') first.kill('SIGKILL');
      // A graceful stop withdraws what XMPP contacts said, but only after the presence agent stopped: the store keeps it.
      else await first.stop();
      assert.equal((await first.exited).signal, signal === 'SIGKILL' ? 'SIGKILL' : null);
      romeoAnswers = false;
      const connections = xmppServer.connections.length;
      const second = await startParley({ db: first.db, dir, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', config] });
      try {
        const restored = await watch!.nextNotify();
        assert.deepEqual(stateIn(restored), AWAY, 'what romeo said before the kill, though his server said nothing since');

        await eventually(() => xmppServer.connections.length > connections || undefined, 'the link up again');
        const link = xmppServer.latest!;
        // Bob is registered (open): juliet is told so once the link is up, without asking.
        await eventually(() => link.input.includes(`<presence from="${BOB_JID}" to="juliet@xmpp.example"/>`) || undefined, 'juliet told bob\'s state');
        assert.equal((await publish(bob, { body: pidf('sip:bob@localhost', 'open', { activities: ['away'] }) })).status, 200);
        await eventually(() => link.input.includes(`<presence from="${BOB_JID}" to="juliet@xmpp.example"><show>away</show></presence>`) || undefined, 'juliet told bob is away');
      } finally {
        await second.stop();
      }
    } finally {
      xmppServer.close();
    }
  });
}
