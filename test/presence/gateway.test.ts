// The presence agent as a gateway sees it: the PresenceService plug-in interface.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { Watch, pidf, publish, stateIn } from '../support/presence.js';
import { CLOSED, OPEN, type PresenceService, type PresenceState } from '../../src/presence/index.js';

describe('presence plug-in interface', () => {
  let s: TestServer;
  let presence: PresenceService;
  const uas: TestUA[] = [];
  const ua = async (user: string) => {
    const agent = await TestUA.create({ user, server: s.udp });
    uas.push(agent);
    return agent;
  };

  before(async () => {
    // A gateway's addresses reach the presence agent through the routing table.
    s = await startServer({ routes: [{ method: ['SUBSCRIBE'], domain: 'xmpp\\.example', handler: 'presence' }, { handler: 'relay' }] });
    presence = s.server.presence!;
  });
  after(async () => {
    await s.stop();
    for (const agent of uas) agent.close();
  });

  test('state a non-SIP source publishes for an address reaches its SIP watchers', async () => {
    const watches: string[] = [];
    presence.on('watch', (presentity, watcher) => watches.push(`watch ${presentity} ${watcher}`));
    presence.on('unwatch', (presentity, watcher) => watches.push(`unwatch ${presentity} ${watcher}`));
    const alice = await ua('alice');
    const { response, watch } = await Watch.subscribe(alice, 'sip:juliet@xmpp.example');
    assert.equal(response.status, 200);
    assert.equal(stateIn(await watch!.nextNotify()).basic, 'closed');
    assert.deepEqual(watches, ['watch juliet@xmpp.example alice@localhost']);
    assert.deepEqual(presence.watchersOf('juliet@xmpp.example'), ['alice@localhost']);

    const fishing: PresenceState = { basic: 'open', notes: ['Gone fishing'], activities: ['away'] };
    presence.publishFrom('xmpp', 'juliet@xmpp.example', fishing);
    const notified = await watch!.nextNotify();
    assert.match(notified.body.toString(), /entity="sip:juliet@xmpp\.example"/);
    assert.deepEqual(stateIn(notified), fishing);
    assert.deepEqual(presence.stateOf('juliet@xmpp.example'), fishing);

    presence.publishFrom('xmpp', 'juliet@xmpp.example', null);
    assert.equal(stateIn(await watch!.nextNotify()).basic, 'closed');

    assert.equal((await watch!.refresh(0)).status, 200);
    await watch!.nextNotify();
    assert.deepEqual(watches, ['watch juliet@xmpp.example alice@localhost', 'unwatch juliet@xmpp.example alice@localhost']);
  });

  test('changes of a SIP user reach the plug-in, each with its source, once per change', async () => {
    const changes: string[] = [];
    presence.on('change', (aor, state, source) => {
      if (aor === 'bob@localhost') changes.push(`${source}: ${state.basic} [${state.notes.join(', ')}]`);
    });
    const bob = await ua('bob');
    await bob.register();
    await bob.register(); // a refresh changes nothing
    const published = await publish(bob, { body: pidf('sip:bob@localhost', 'open', { note: 'at my desk' }) });
    assert.equal(published.status, 200);
    presence.publishFrom('xmpp', 'bob@localhost', { basic: 'closed', notes: ['xmpp: away'], activities: [] });
    await bob.register(0); // still open: his publication says so
    assert.deepEqual(changes, ['registration: open []', 'sip: open [at my desk]', 'xmpp: open [at my desk, xmpp: away]']);
  });

  test('a plug-in listener that throws breaks neither the request nor the NOTIFYs', async () => {
    const failing = () => {
      throw new Error('gateway bug');
    };
    presence.on('change', failing);
    try {
      const carol = await ua('carol');
      const dave = await ua('dave');
      const { watch } = await Watch.subscribe(carol, 'sip:dave@localhost');
      await watch!.nextNotify();
      assert.equal((await publish(dave, { body: pidf('sip:dave@localhost', 'open') })).status, 200);
      assert.equal(stateIn(await watch!.nextNotify()).basic, 'open');
      await sleep(50);
      assert.ok(s.logs.some((line) => line.includes('presence listener failed')));
    } finally {
      presence.off('change', failing);
    }
  });
});

test('what gateways publish is bounded by presence.max_gateway_states: a further address is left out, with a warning', async () => {
  const s = await startServer({ presence: { max_gateway_states: 1 } });
  try {
    const presence = s.server.presence!;
    const away: PresenceState = { basic: 'open', notes: [], activities: ['away'] };
    presence.publishFrom('xmpp', 'romeo@xmpp.example', away);
    presence.publishFrom('xmpp', 'juliet@xmpp.example', away);
    assert.deepEqual(presence.stateOf('juliet@xmpp.example'), CLOSED, 'left out');
    assert.ok(s.logs.some((line) => line.includes('gateway presence left out: presence.max_gateway_states reached')));
    presence.publishFrom('xmpp', 'romeo@xmpp.example', OPEN);
    assert.deepEqual(presence.stateOf('romeo@xmpp.example'), OPEN, 'a known address changes');
    presence.publishFrom('xmpp', 'romeo@xmpp.example', null);
    presence.publishFrom('xmpp', 'juliet@xmpp.example', away);
    assert.deepEqual(presence.stateOf('juliet@xmpp.example'), away, 'room again once one is withdrawn');
  } finally {
    await s.stop();
  }
});
