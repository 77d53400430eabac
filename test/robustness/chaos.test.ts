// Chaos: a real Parley process under mixed traffic (relay between registered UAs, messages stored for
// an offline user, room posts, the XMPP gateway to a real Prosody, a per-user IRC account on a real
// ngIRCd) is killed with -9 at random moments (fixed seed) and started again on the same database
// and ports; Prosody and ngIRCd are restarted once meanwhile. Every message Parley acknowledged (200
// or 202) reaches its recipient in the end (over IRC, which stores nothing for a nick that is away:
// or its sender is told it was not delivered), and a message that arrives more than once comes each
// time under one identity (SIP: Call-ID, From tag and CSeq; XMPP: the stanza id), so the recipient
// can tell a copy from a new message. IRC has no message ids: copies there are only counted.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from '../support/eventually.js';
import { killAll, startParley, tempDir, type ParleyProcess } from '../support/process.js';
import { gatewayConfig } from '../support/gateway.js';
import { IrcUser } from '../support/irc-user.js';
import { Ngircd } from '../support/ngircd.js';
import { Prosody } from '../support/prosody.js';
import { TestUA } from '../support/ua.js';
import { XmppUser } from '../support/xmpp-user.js';
import { sleep } from './wire.js';

const SEED = 0x5eed_c4a0;
const IRC_PASSWORD = 'Irc-Server-Pass-4711';
const KILLS = 3;
/** A kill comes this long after the process started serving, at random within it. */
const KILL_AFTER_MS = { min: 300, max: 1500 };

let prosody: Prosody | undefined;
let juliet: XmppUser | undefined;
let ngircd: Ngircd | undefined;
/** The IRC user, and who it was before ngIRCd restarted. */
const hanks: IrcUser[] = [];
const agents: TestUA[] = [];
after(async () => {
  for (const agent of agents) agent.close();
  for (const hank of hanks) hank.close();
  killAll();
  await juliet?.stop();
  await prosody?.stop();
  await ngircd?.stop();
});

/** mulberry32: the same kill moments on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a SIP recipient can tell two requests apart by. */
const sipIdentity = (m: SipMessage) => `${m.callId} | ${m.from.params.get('tag') ?? ''} | ${m.get('cseq') ?? ''}`;

/** Bodies seen more than once, and those seen under more than one identity. */
function copies(deliveries: Array<{ body: string; identity: string }>): { repeated: number; identities: Map<string, Set<string>> } {
  const identities = new Map<string, Set<string>>();
  let repeated = 0;
  for (const { body, identity } of deliveries) {
    const seen = identities.get(body) ?? new Set<string>();
    if (identities.has(body)) repeated++;
    identities.set(body, seen.add(identity));
  }
  return { repeated, identities };
}

interface Stream {
  name: string;
  from: TestUA;
  to: string;
  /** The status that acknowledges the message. */
  ok: number;
  acknowledged: Set<string>;
  sent: number;
  /** Answers other than `ok`, by status, and requests never answered (Parley down). */
  refused: Map<number | 'none', number>;
}

test('kill -9 at random moments under mixed traffic, Prosody and ngIRCd restarted once: every message acknowledged arrives, copies under one identity', async () => {
  prosody = await Prosody.start();
  await prosody.register('juliet', 'password');
  juliet = await XmppUser.connect(prosody, 'juliet');
  ngircd = await Ngircd.start({ password: IRC_PASSWORD });
  hanks.push(await IrcUser.connect(ngircd, 'hank', IRC_PASSWORD));

  const dir = tempDir();
  const config = join(dir, 'parley.yaml');
  writeFileSync(
    config,
    'auth:\n  policy: open\noffline:\n  max_per_user: 100000\n' +
      `xmpp:\n  enabled: true\n  xmpp_domain: ${prosody.componentDomain}\n  xmpp_password: ${prosody.componentSecret}\n` +
      `  xmpp_port: ${prosody.componentPort}\n  reconnect_min: 0.1\n  reconnect_max: 0.5\n` +
      `gateway:\n${Object.entries({ ...gatewayConfig, allow_unauthenticated: true }).map(([key, value]) => `  ${key}: ${String(value)}\n`).join('')}`,
  );
  let parley: ParleyProcess = await startParley({ dir, args: ['--config', config] });
  const restart = async (killed: ParleyProcess) => {
    killed.kill('SIGKILL');
    assert.equal((await killed.exited).signal, 'SIGKILL');
    return startParley({ dir, db: killed.db, udpPort: killed.udp.port, tcpPort: killed.tcp.port, args: ['--config', config] });
  };

  const [alice, bob, carol, dave, erin, frank, gina] = await Promise.all(
    ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina'].map((user) => TestUA.create({ user, server: parley.udp })),
  );
  agents.push(alice!, bob!, carol!, dave!, erin!, frank!, gina!);
  assert.equal((await bob!.register()).status, 200);
  assert.equal((await carol!.register()).status, 200);
  assert.equal((await carol!.register(0)).status, 200);
  assert.equal((await erin!.register()).status, 200);
  const created = erin!.waitForRequest((m) => m.body.toString().startsWith('created room'));
  assert.equal((await erin!.message('sip:chat-manager@localhost', '#create chat-chaos')).status, 200);
  await created;
  const joined = erin!.waitForRequest((m) => m.body.toString().includes('has joined'));
  assert.equal((await dave!.message('sip:chat-chaos@localhost', '#join')).status, 200);
  await joined;
  await parley.waitForLog('XMPP component link online', 15_000);
  assert.equal((await gina!.register()).status, 200);
  const linked = gina!.waitForRequest((m) => m.body.toString().startsWith('Linked irc account'));
  assert.equal((await gina!.message('sip:gateway@localhost', `#link irc gina@127.0.0.1 ${IRC_PASSWORD} 127.0.0.1:${ngircd.port} tls=none`)).status, 200);
  await linked;

  const stream = (name: string, from: TestUA, to: string, ok: number): Stream => ({ name, from, to, ok, acknowledged: new Set(), sent: 0, refused: new Map() });
  const streams = [
    stream('relayed', alice!, 'sip:bob@localhost', 200),
    stream('stored', alice!, 'sip:carol@localhost', 202),
    stream('posted', dave!, 'sip:chat-chaos@localhost', 200),
    stream('xmpp', frank!, `sip:juliet*${prosody.domain}@${prosody.componentDomain}`, 202),
    stream('irc', gina!, 'sip:hank*127.0.0.1@irc.localhost', 202),
  ];
  // Who received what, and what an acknowledged message still lacks.
  const sipDeliveries = (ua: TestUA) =>
    ua.received.filter((m) => m.method === 'MESSAGE').map((m) => ({ body: m.body.toString().replace(/^<dave> /, ''), identity: sipIdentity(m) }));
  const xmppDeliveries = () => juliet!.messages.map((m) => ({ body: m.getChildText('body') ?? '', identity: m.attrs.id ?? '' }));
  // From whatever nick gina's session had: after a kill, the old connection may hold "gina" a moment longer.
  const ircDeliveries = () =>
    hanks.flatMap((hank) => hank.lines.filter((m) => m.command === 'PRIVMSG' && m.params[0] === 'hank')).map((m) => ({ body: m.params.at(-1)!, identity: '' }));
  const recipients = new Map([
    ['relayed', () => sipDeliveries(bob!)],
    ['stored', () => sipDeliveries(carol!)],
    ['posted', () => sipDeliveries(erin!)],
    ['xmpp', xmppDeliveries],
    ['irc', ircDeliveries],
  ]);
  const ircNotices = () => gina!.received.filter((m) => m.method === 'MESSAGE').map((m) => m.body.toString());
  const toldUndelivered = (body: string) => ircNotices().some((notice) => notice.includes('was not delivered') && notice.endsWith(`\n> ${body}`));
  const missing = (s: Stream) => {
    const bodies = new Set(recipients.get(s.name)!().map((delivery) => delivery.body));
    return [...s.acknowledged].filter((body) => !bodies.has(body) && !(s.name === 'irc' && toldUndelivered(body)));
  };
  let sending = true;
  const traffic = streams.map(async (s) => {
    while (sending) {
      const body = `${s.name} ${++s.sent}`;
      let status: number | 'none' = 'none';
      try {
        status = (await s.from.message(s.to, body)).status;
      } catch {
        // No answer within the UA's patience: Parley was down all that time; not acknowledged.
      }
      if (status === s.ok) s.acknowledged.add(body);
      else s.refused.set(status, (s.refused.get(status) ?? 0) + 1);
    }
  });

  const random = seededRandom(SEED);
  try {
    for (let kill = 1; kill <= KILLS; kill++) {
      await sleep(KILL_AFTER_MS.min + random() * (KILL_AFTER_MS.max - KILL_AFTER_MS.min));
      parley = await restart(parley);
      if (kill === 1) {
        await sleep(random() * KILL_AFTER_MS.max);
        await prosody.stop();
        await prosody.start();
      }
      if (kill === 2) {
        await sleep(random() * KILL_AFTER_MS.max);
        // The IRC sender goes on: what gina's session wrote as the server went, unconfirmed, is sent again.
        await ngircd.stop();
        await ngircd.start();
        hanks.push(await IrcUser.connect(ngircd, 'hank', IRC_PASSWORD));
      }
    }
    await sleep(KILL_AFTER_MS.max);
  } finally {
    sending = false;
    await Promise.all(traffic);
  }
  for (const s of streams) assert.ok(s.acknowledged.size > 0, `no ${s.name} message acknowledged`);

  // Every acknowledged message arrives: carol registers to get what was stored for her.
  assert.equal((await carol!.register()).status, 200);
  try {
    await eventually(() => streams.every((s) => missing(s).length === 0), 'every acknowledged message delivered', 30_000);
  } catch {
    // Named below, stream by stream.
  }
  for (const s of streams) assert.deepEqual(missing(s), [], `${s.name}: acknowledged (${s.ok}) and never delivered`);

  const summary: string[] = [];
  for (const s of streams) {
    const { repeated, identities } = copies(recipients.get(s.name)!());
    const ambiguous = [...identities].filter(([, seen]) => seen.size > 1).map(([body, seen]) => `${body}: ${[...seen].join(' / ')}`);
    assert.deepEqual(ambiguous, [], `${s.name}: a message delivered more than once under different identities`);
    const refused = [...s.refused].map(([status, count]) => `${count}×${status}`).join(' ');
    const told = s.name === 'irc' ? `, ${[...s.acknowledged].filter(toldUndelivered).length} told undelivered` : '';
    summary.push(`${s.name} ${s.sent} sent${told}, ${s.acknowledged.size} acknowledged${refused ? ` (not: ${refused})` : ''}, ${repeated} copies`);
  }
  console.log(`# chaos (seed ${SEED.toString(16)}, ${KILLS} kills): ${summary.join('; ')}`);
  assert.ok(parley.alive);
  await parley.stop();
});
