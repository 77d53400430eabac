// Receipts across a restart of Parley (kill -9), against a real Prosody: which IMDN Message-ID is
// which stanza id is in the store, so an XMPP user's receipt for a message from SIP, and a SIP
// user's IMDN for a message from XMPP, that come after the restart still reach the sender.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import xml from '@xmpp/xml';
import { imdnRequestOf, parseCpim } from '../../src/bridge/index.js';
import { MARKERS_NS, RECEIPTS_NS } from '../../src/xmpp/receipts.js';
import { eventually } from '../support/eventually.js';
import { contentTypeOf, imdnIn, linphoneCpim, linphoneImdn } from '../support/linphone.js';
import { killAll, startParley, tempDir } from '../support/process.js';
import { Prosody } from '../support/prosody.js';
import { udpAgents } from '../support/ua.js';
import { gatewayJid, gatewaySipAddress, xmppUsers } from '../support/xmpp-gateway.js';
import type { XmppUser } from '../support/xmpp-user.js';

let prosody: Prosody;
let romeo: XmppUser;
let juliet: XmppUser;
const ua = udpAgents();

before(async () => {
  prosody = await Prosody.start();
  [romeo, juliet] = await xmppUsers(prosody, 'romeo', 'juliet');
});

after(async () => {
  killAll();
  await Promise.all([romeo?.stop(), juliet?.stop()]);
  await prosody?.stop();
});

test('kill -9 between a message and its receipt: the receipt still reaches the sender, both ways', async () => {
  const sipAddressOf = (user: string) => gatewaySipAddress(prosody, user);
  const aliceJid = gatewayJid(prosody, 'alice');
  const dir = tempDir();
  const config = join(dir, 'xmpp.yaml');
  writeFileSync(
    config,
    `auth:\n  policy: open\nxmpp:\n  enabled: true\n  xmpp_domain: ${prosody.componentDomain}\n  xmpp_password: ${prosody.componentSecret}\n  xmpp_port: ${prosody.componentPort}\n  reconnect_min: 0.1\n  reconnect_max: 0.2\n`,
  );
  const first = await startParley({ dir, args: ['--config', config] });
  await first.waitForLog('XMPP component link online');
  const alice = await ua('alice', first.udp);
  assert.equal((await alice.register()).status, 200);

  // SIP -> XMPP, asking for a delivery receipt and a display marker.
  const body = linphoneCpim('sip:alice@localhost', sipAddressOf('romeo'), [['imdn.Message-ID', 'before-the-kill'], ['imdn.Disposition-Notification', 'positive-delivery, display']], 'text/plain;charset=UTF-8', 'Wherefore art thou');
  assert.equal((await alice.message(sipAddressOf('romeo'), body, [], 'message/cpim')).status, 202);
  const toRomeo = await romeo.waitForMessage((m) => m.getChildText('body') === 'Wherefore art thou');
  assert.ok(toRomeo.getChild('request', RECEIPTS_NS), toRomeo.toString());

  // XMPP -> SIP, asking for a receipt and a marker.
  const arrived = alice.waitForRequest((m) => m.method === 'MESSAGE' && contentTypeOf(m).startsWith('message/cpim') && parseCpim(m.body).content.toString() === 'Good night');
  await juliet.send(aliceJid, 'Good night', { id: 'j-before' }, xml('request', { xmlns: RECEIPTS_NS }), xml('markable', { xmlns: MARKERS_NS }));
  const imdnAsked = imdnRequestOf(parseCpim((await arrived).body));
  assert.ok(imdnAsked, 'the MESSAGE asks for IMDNs');

  // Sent and done with: the restart does not send it again (which would remember it anew).
  const database = new SqliteDatabase(first.db.slice('sqlite:'.length), { readonly: true });
  try {
    await eventually(() => (database.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n === 0 || undefined, 'the message out of the outbox');
  } finally {
    database.close();
  }
  first.kill('SIGKILL');
  await first.exited;
  const second = await startParley({ db: first.db, dir, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', config] });
  try {
    await second.waitForLog('XMPP component link online');

    const delivered = alice.waitForRequest((m) => m.method === 'MESSAGE' && imdnIn(m)?.disposition === 'delivered', 10_000);
    await romeo.sendStanza(xml('message', { to: aliceJid, id: 'r-after' }, xml('received', { xmlns: RECEIPTS_NS, id: toRomeo.attrs.id })));
    assert.deepEqual(imdnIn(await delivered), { messageId: 'before-the-kill', disposition: 'delivered' });
    const displayed = alice.waitForRequest((m) => m.method === 'MESSAGE' && imdnIn(m)?.disposition === 'displayed', 10_000);
    await romeo.sendStanza(xml('message', { to: aliceJid, id: 'r-after-2' }, xml('displayed', { xmlns: MARKERS_NS, id: toRomeo.attrs.id })));
    assert.deepEqual(imdnIn(await displayed), { messageId: 'before-the-kill', disposition: 'displayed' });

    const receipt = juliet.waitForMessage((m) => m.getChild('received', RECEIPTS_NS) !== undefined);
    assert.equal((await alice.message(sipAddressOf('juliet'), linphoneImdn('sip:alice@localhost', sipAddressOf('juliet'), imdnAsked.messageId, 'delivered'), [], 'message/cpim')).status, 202);
    const received = await receipt;
    assert.equal(received.getChild('received', RECEIPTS_NS)!.attrs.id, 'j-before');
    assert.equal(received.attrs.from, aliceJid);
  } finally {
    await second.stop();
  }
});
