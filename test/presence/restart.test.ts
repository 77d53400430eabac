// Presence across restarts of a real process: what PUBLISH and SUBSCRIBE were answered with 200 for
// is in the store at that moment, so a process killed right after (or stopped), and started again
// on the same database and ports, still has the publications and the subscription dialogs.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { eventually } from '../support/eventually.js';
import { udpAgents } from '../support/ua.js';
import { killAll, startParley, tempDir, type ParleyProcess } from '../support/process.js';
import { Watch, pidf, publish, stateIn } from '../support/presence.js';

const ua = udpAgents();
after(() => killAll());

/** Ends the process with `signal` (SIGTERM: a graceful stop), then starts it again on the same database and ports. */
async function restart(parley: ParleyProcess, signal: 'SIGKILL' | 'SIGTERM'): Promise<ParleyProcess> {
  if (signal === 'SIGKILL') parley.kill('SIGKILL');
  else await parley.stop();
  const status = await parley.exited;
  if (signal === 'SIGKILL') assert.equal(status.signal, 'SIGKILL', 'the process did not die of the SIGKILL');
  return startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });
}

const AWAY = { basic: 'closed' as const, notes: ['gone fishing'], activities: ['away'] };

describe('presence across restarts', () => {
  test('a publication survives kill -9: a new watcher is told away, and a refresh with its entity tag gets 200', async () => {
    let parley = await startParley();
    try {
      const bob = await ua('bob', parley.udp);
      const alice = await ua('alice', parley.udp);
      assert.equal((await bob.register()).status, 200, 'registered, bob would be open without his publication');
      const published = await publish(bob, { body: pidf('sip:bob@localhost', 'closed', { note: 'gone fishing', activities: ['away'] }), expires: 600 });
      assert.equal(published.status, 200);
      const etag = published.get('sip-etag')!;

      parley = await restart(parley, 'SIGKILL');

      const { response, watch } = await Watch.subscribe(alice, 'sip:bob@localhost', { expires: 600 });
      assert.equal(response.status, 200);
      assert.deepEqual(stateIn(await watch!.nextNotify()), AWAY);
      const refreshed = await publish(bob, { etag, expires: 600 });
      assert.equal(refreshed.status, 200, `a refresh with the entity tag of before the crash: ${refreshed.status} ${refreshed.reason}`);
      assert.notEqual(refreshed.get('sip-etag'), etag);
      await watch!.noNotifyWithin(300); // the state did not change
    } finally {
      await parley.stop();
    }
  });

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    test(`a subscription survives ${signal === 'SIGKILL' ? 'kill -9' : 'a graceful stop'}: its watcher is notified in the same dialog, then of every change`, async () => {
      let parley = await startParley();
      try {
        const carol = await ua('carol', parley.udp);
        const dave = await ua('dave', parley.udp);
        const { response, watch } = await Watch.subscribe(carol, 'sip:dave@localhost', { expires: 600 });
        assert.equal(response.status, 200);
        const before = await watch!.nextNotify();
        assert.equal(stateIn(before).basic, 'closed');

        parley = await restart(parley, signal);

        const after = await watch!.nextNotify();
        assert.match(after.get('subscription-state')!, /^active;expires=(600|599|598|597|596|595)$/, 'the stop ended nothing');
        assert.equal(after.from.params.get('tag'), response.to.params.get('tag'), 'NOTIFY in the dialog of the SUBSCRIBE');
        assert.equal(after.get('to'), before.get('to'));
        assert.ok(after.cseq.seq > before.cseq.seq, `CSeq ${after.cseq.seq} goes on after ${before.cseq.seq}`);
        assert.equal(stateIn(after).basic, 'closed');

        assert.equal((await publish(dave, { body: pidf('sip:dave@localhost', 'open', { note: 'back' }) })).status, 200);
        const changed = await watch!.nextNotify();
        assert.deepEqual(stateIn(changed), { basic: 'open', notes: ['back'], activities: [] });
        assert.ok(changed.cseq.seq > after.cseq.seq);
        assert.equal((await watch!.refresh(600)).status, 200, 'the dialog is known after the restart');
        assert.match((await watch!.nextNotify()).get('subscription-state')!, /^active/);
      } finally {
        await parley.stop();
      }
    });
  }

  test('after a restart, the subscribers of the last run are notified presence.restart_notifies_at_once at a time', async () => {
    const dir = tempDir();
    const config = join(dir, 'parley.yaml');
    writeFileSync(config, 'auth:\n  policy: open\npresence:\n  restart_notifies_at_once: 5\n');
    const first = await startParley({ dir, args: ['--config', config] });
    const carol = await ua('carol', first.udp);
    const watches: Watch[] = [];
    for (let friend = 0; friend < 12; friend++) {
      const { response, watch } = await Watch.subscribe(carol, `sip:friend${friend}@localhost`, { expires: 600 });
      assert.equal(response.status, 200);
      await watch!.nextNotify();
      watches.push(watch!);
    }
    // Carol's phone does not answer for a while: the NOTIFYs sent wait for their answers, and are retransmitted.
    carol.answer = null;
    first.kill('SIGKILL');
    await first.exited;
    const notifiesBefore = carol.received.filter((m) => m.method === 'NOTIFY').length;
    const second = await startParley({ db: first.db, dir, udpPort: first.udp.port, tcpPort: first.tcp.port, args: ['--config', config] });
    try {
      await eventually(() => carol.retransmitted.some((m) => m.method === 'NOTIFY') || undefined, 'a NOTIFY retransmitted');
      const sent = carol.received.filter((m) => m.method === 'NOTIFY').length - notifiesBefore;
      assert.equal(sent, 5, `NOTIFYs sent before any was answered: ${sent}`);
      carol.answer = 200;
      for (const watch of watches) assert.match((await watch.nextNotify(10_000)).get('subscription-state')!, /^active;expires=/);
    } finally {
      await second.stop();
    }
  });
});
