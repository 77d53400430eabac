// Group chats joined through the per-user gateway are stored: after a restart of Parley (SIGTERM,
// or kill -9) the user's session joins its IRC channel or XMPP room (MUC, on a real Prosody) again,
// and what is said there still reaches the SIP user.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import xml from '@xmpp/xml';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from '../support/eventually.js';
import { GATEWAY, bodyOf, gatewayConfigDir, ircLinkCommand, xmppLinkCommand } from '../support/gateway.js';
import { IrcUser } from '../support/irc-user.js';
import { Ngircd } from '../support/ngircd.js';
import { killAll, startParley } from '../support/process.js';
import { Prosody } from '../support/prosody.js';
import { TestUA } from '../support/ua.js';
import { XmppUser } from '../support/xmpp-user.js';

const IRC_PASSWORD = 'Irc-Server-Pass-4711';
const ROOM = 'sip:%23parley*127.0.0.1@irc.localhost';

let ngircd: Ngircd | undefined;
let bob: IrcUser | undefined;
let alice: TestUA | undefined;
let prosody: Prosody | undefined;
let juliet: XmppUser | undefined;
let carol: TestUA | undefined;
after(async () => {
  alice?.close();
  bob?.close();
  carol?.close();
  await juliet?.stop();
  await ngircd?.stop();
  await prosody?.stop();
  killAll();
});

const fromRoom = (ua: TestUA, text: (body: string) => boolean, what: string, room = ROOM) =>
  eventually(() => ua.received.find((m: SipMessage) => m.method === 'MESSAGE' && m.from.uri === room && text(bodyOf(m))), what, 20_000);

test('an IRC channel joined with #join is joined again after a restart, and its messages reach the SIP user', async () => {
  ngircd = await Ngircd.start({ password: IRC_PASSWORD });
  bob = await IrcUser.connect(ngircd, 'bob', IRC_PASSWORD);
  await bob.join('#parley');

  const { dir, config } = gatewayConfigDir();
  const first = await startParley({ dir, args: ['--config', config] });
  alice = await TestUA.create({ user: 'alice', server: first.udp });
  assert.equal((await alice.register()).status, 200);
  assert.equal((await alice.message(GATEWAY, ircLinkCommand('alice', IRC_PASSWORD, ngircd.port))).status, 200);
  await first.waitForLog('IRC session online', 20_000);
  const joined = bob.waitFor((m) => m.command === 'JOIN' && m.nick === 'alice' && m.params[0] === '#parley', 'alice joins #parley');
  assert.equal((await alice.message(ROOM, '#join')).status, 202);
  await joined;
  await fromRoom(alice, (body) => body.startsWith('You are in #parley'), 'the joined notice');
  await first.stop();

  const since = bob.lines.length;
  const rejoined = eventually(() => bob!.lines.slice(since).find((m) => m.command === 'JOIN' && m.nick === 'alice' && m.params[0] === '#parley'), 'alice joins #parley again', 30_000);
  const second = await startParley({ dir, db: first.db, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', config] });
  try {
    await rejoined;
    bob.say('#parley', 'still there after the restart?');
    const heard = await fromRoom(alice, (body) => body.includes('still there after the restart?'), 'the channel message after the restart');
    assert.equal(bodyOf(heard), '<bob> still there after the restart?');
    assert.equal(alice.received.filter((m) => m.from.uri === ROOM && bodyOf(m).startsWith('You are in #parley')).length, 1, 'the user is told of the channel once, not again at the restart');
  } finally {
    await second.stop();
  }
});

test('an XMPP room joined with #join is joined again after a restart and after kill -9, and its messages reach the SIP user', async () => {
  prosody = await Prosody.start();
  await Promise.all([prosody.register('carol', 'carol-xmpp'), prosody.register('juliet', 'password')]);
  const room = `lobby@conference.${prosody.domain}`;
  const roomAddress = `sip:lobby*conference.${prosody.domain}@xmpp.localhost`;
  juliet = await XmppUser.connect(prosody, 'juliet');
  await juliet.sendPresence({ to: `${room}/Juliet` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' }));
  await juliet.waitForPresence((p) => p.attrs.from === `${room}/Juliet`);

  const { dir, config } = gatewayConfigDir();
  const first = await startParley({ dir, args: ['--config', config] });
  carol = await TestUA.create({ user: 'carol', server: first.udp });
  assert.equal((await carol.register()).status, 200);
  assert.equal((await carol.message(GATEWAY, xmppLinkCommand(prosody, 'carol', 'carol-xmpp'))).status, 200);
  await first.waitForLog('XMPP session online', 20_000);
  let mark = juliet.presences.length;
  assert.equal((await carol.message(`sip:Carol*lobby*conference.${prosody.domain}@xmpp.localhost`, '#join')).status, 202);
  await juliet.waitForPresence((p) => p.attrs.from === `${room}/Carol` && p.attrs.type === undefined, mark);
  await fromRoom(carol, (body) => body.startsWith(`You are in ${room} as Carol`), 'the joined notice', roomAddress);

  let parley = first;
  try {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      mark = juliet.presences.length;
      parley.kill(signal);
      await parley.exited;
      await juliet.waitForPresence((p) => p.attrs.from === `${room}/Carol` && p.attrs.type === 'unavailable', mark);
      parley = await startParley({ dir, db: first.db, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', config] });
      await juliet.waitForPresence((p) => p.attrs.from === `${room}/Carol` && p.attrs.type === undefined, mark, 30_000);
      const text = `Carol, still with us after ${signal}?`;
      await juliet.send(room, text, { type: 'groupchat' });
      const heard = await fromRoom(carol, (body) => body.includes(text), `the room message after ${signal}`, roomAddress);
      assert.equal(bodyOf(heard), `<Juliet> ${text}`);
    }
    assert.equal(carol.received.filter((m) => m.from.uri === roomAddress && bodyOf(m).startsWith('You are in')).length, 1, 'the user is told of the room once, not again at the restarts');
  } finally {
    await parley.stop();
  }
});
