// What Parley originates (command replies, history, room fan-out, NOTIFYs) follows the policy of
// forwarded requests: a foreign domain only through relay.outbound_proxy, else nothing is sent. So
// a forged From naming some host, with auth.policy open, cannot make Parley send anything there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { eventually } from '../support/eventually.js';
import { Watch } from '../support/presence.js';
import { type Victim, victimSocket } from '../support/victim.js';
import { GATEWAY, gatewayConfig } from '../support/gateway.js';
import { computeHa1 } from '../../src/registrar/index.js';
import { command } from '../imc/room-helpers.js';

describe('nothing of Parley\'s own goes to a host an unauthenticated From names (auth.policy open)', () => {
  let s: TestServer;
  let victim: Victim;
  const agents: TestUA[] = [];
  let alice: TestUA;
  /** Sends with From sip:x@VICTIM, from a socket of its own (the responses come back to it, as to any sender). */
  let forger: TestUA;
  const manager = 'sip:chat-manager@localhost';
  const notSent = () => s.logs.filter((line) => line.includes('request for a foreign domain not sent') && line.includes(victim.host)).length;

  before(async () => {
    victim = await victimSocket();
    s = await startServer({ auth: { policy: 'open' } });
    alice = await TestUA.create({ user: 'alice', server: s.udp });
    forger = await TestUA.create({ user: 'x', domain: victim.host, server: s.udp });
    agents.push(alice, forger);
    assert.equal((await alice.register()).status, 200);
  });
  after(async () => {
    for (const agent of agents) agent.close();
    victim.close();
    await s.stop();
  });

  test('#help from a forged foreign From gets its 200 but no reply; a registered local user gets the help', async () => {
    const before = notSent();
    assert.equal((await forger.message(manager, '#help')).status, 200);
    assert.match(await command(alice, manager, '#help'), /#create/);
    // The command was answered and its reply dropped before reaching the relay: nothing was even tried.
    assert.equal(notSent(), before);
    assert.deepEqual(victim.received, []);
  });

  test('#join from a forged foreign From sends neither reply nor history, and room posts do not go there', async () => {
    assert.match(await command(alice, manager, '#create chat-reflect'), /created room/);
    const room = 'sip:chat-reflect@localhost';
    assert.equal((await alice.message(room, 'in the history')).status, 200);
    // A command is answered 200 at once and run after: the room's notice to alice says it was.
    const joined = alice.waitForRequest((m) => m.body.toString().includes('has joined the room'));
    assert.equal((await forger.message(room, '#join')).status, 200);
    await joined;
    assert.equal((await alice.message(room, 'after the join')).status, 200);
    // The forged member is in the room (auth is open), but what the room sends it is refused by the relay's policy.
    await eventually(() => s.logs.some((line) => line.includes('room delivery failed') && line.includes(`x@${victim.host}`) && line.includes('"status":403')), 'the fan-out to the foreign member refused');
    assert.ok(notSent() > 0);
    assert.deepEqual(victim.received, []);
  });

  test('a SUBSCRIBE from a foreign watcher is refused with the foreign-domain status: no NOTIFY can follow', async () => {
    const { response } = await Watch.subscribe(forger, 'sip:alice@localhost');
    assert.equal(response.status, 403);
    assert.equal(response.reason, 'Forbidden (domain not served here)');
    assert.deepEqual(victim.received, []);
  });
});

describe('with relay.outbound_proxy, what Parley originates for a foreign domain goes through the proxy', () => {
  let s: TestServer;
  let proxy: TestUA;
  let watcher: TestUA;
  let alice: TestUA;

  before(async () => {
    // The proxy is a UA of its own: it answers 200 to whatever it gets, as a proxy passing it on would.
    proxy = await TestUA.create({ user: 'proxy', server: { host: '127.0.0.1', port: 9 } });
    s = await startServer({ auth: { policy: 'open' }, relay: { outbound_proxy: `sip:127.0.0.1:${proxy.localPort}` } });
    watcher = await TestUA.create({ user: 'w', domain: 'example.org', server: s.udp });
    alice = await TestUA.create({ user: 'alice', server: s.udp });
    assert.equal((await alice.register()).status, 200);
  });
  after(async () => {
    for (const agent of [proxy, watcher, alice]) agent.close();
    await s.stop();
  });

  test('a foreign watcher\'s NOTIFYs go to the proxy, routed on to the watcher\'s Contact', async () => {
    const notify = proxy.waitForRequest((m) => m.method === 'NOTIFY');
    const { response } = await Watch.subscribe(watcher, 'sip:alice@localhost');
    assert.equal(response.status, 200);
    const received = await notify;
    assert.equal(received.uri, watcher.contact);
    assert.equal(received.getAll('route')[0], `<sip:127.0.0.1:${proxy.localPort};lr>`);
    assert.equal(watcher.received.filter((m) => m.method === 'NOTIFY').length, 0);
  });
});

describe('the per-user gateway answers an unauthenticated command only on the contacts its user registered', () => {
  let s: TestServer;
  let bob: TestUA;
  /** Writes as carol@localhost, a provisioned user who is not registered. */
  let forger: TestUA;

  before(async () => {
    s = await startServer({ auth: { policy: 'open' }, gateway: gatewayConfig });
    await s.server.store.users.put({ username: 'carol', domain: 'localhost', ...computeHa1('carol', 'localhost', 'carol-secret') });
    forger = await TestUA.create({ user: 'carol', server: s.udp });
    bob = await TestUA.create({ user: 'bob', server: s.udp });
    assert.equal((await bob.register()).status, 200);
  });
  after(async () => {
    forger.close();
    bob.close();
    await s.stop();
  });

  test('a forged From of an unregistered user gets 403 and nothing in that user\'s offline store; a registered one hears why', async () => {
    assert.equal((await forger.message(GATEWAY, '#accounts')).status, 403);
    const refused = bob.waitForRequest((m) => m.method === 'MESSAGE' && m.from.uri === GATEWAY);
    assert.equal((await bob.message(GATEWAY, '#accounts')).status, 403);
    assert.match((await refused).body.toString(), /^Refused: the gateway takes commands only from a sender who passed digest authentication/);
    assert.deepEqual(await s.server.store.offline.listFor('carol@localhost', Date.now(), { afterId: 0, limit: 10 }), []);
  });
});
