// A takeover (a device recognised as one that registered from a new address) and the deliveries
// a device is done with, on the SQLite writer thread: a takeover whose write waits for a message
// of its user still being counted against the user's limit is committed before a delivery done
// that was asked for after it, so a message the device took is not handed back to it by the move.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import type { StatementWriter } from '../../src/store/sqlite-writer.js';
import type { StoredMessage } from '../../src/store/types.js';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const aor = 'ada@localhost';
const OLD = 'sip:ada@127.0.0.1:5070';
const NEW = 'sip:ada@127.0.0.1:5072';

function record(body: string): Omit<StoredMessage, 'id'> {
  const now = Date.now();
  return { aor, fromHeader: '<sip:bob@localhost>', toHeader: '<sip:ada@localhost>', contentType: 'text/plain', body: Buffer.from(body), receivedAt: now, expiresAt: now + 3_600_000 };
}

test('a delivery done by the device a takeover moves rows to, asked for while the takeover waits for a message being counted, is committed after the move: the device does not get that message again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-takeover-'));
  dirs.push(dir);
  const store = await openStore(`sqlite:${join(dir, 'parley.db')}`);
  try {
    const deliveries = store.deliveries;
    const limit = 3;
    // Both addresses of the device had the message waiting (the old one before it was known to be the new one).
    const taken = await deliveries.add(record('taken at the new address'), [OLD, NEW], 0, limit);
    assert.equal(typeof taken, 'number');
    // One more taken already: as far as Parley knows without counting, the user is at the limit after the next one.
    const gone = await deliveries.add(record('gone'), [OLD], 0, limit);
    await deliveries.done([gone as number], OLD);

    // The writer's answer to the next stored message is held: the one after it, to be counted, waits for it.
    const writer = (deliveries as unknown as { writer: { statements: StatementWriter } }).writer.statements;
    const insert = writer.insert.bind(writer);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    writer.insert = (statements) => {
      writer.insert = insert;
      const written = insert(statements);
      return held.then(() => written);
    };
    const first = deliveries.add(record('first'), [OLD], 0, limit);
    const second = deliveries.add(record('second'), [OLD], 0, limit);

    const moved = deliveries.takeOver(aor, NEW, [OLD]);
    // The new address takes the message it had waiting while the move waits.
    const done = deliveries.done([taken as number], NEW);
    release();
    await Promise.all([first, second, moved, done]);

    const waiting = await deliveries.pendingFor(aor, NEW, Date.now(), undefined, 100);
    assert.deepEqual(waiting.map((d) => d.message.body.toString()), ['first', 'second'], 'what the old address had waiting, once, in order; not what the device took');
    assert.deepEqual(await deliveries.pendingFor(aor, OLD, Date.now(), undefined, 100), []);
  } finally {
    await store.close();
  }
});

test('what the old address had waiting, shared with the new one when it came, is not moved to it again by a later takeover: only what the old address got since, from before the new one came, is', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-share-'));
  dirs.push(dir);
  const store = await openStore(`sqlite:${join(dir, 'parley.db')}`);
  try {
    const deliveries = store.deliveries;
    await deliveries.add(record('shared, taken'), [OLD], 0, 100);
    await deliveries.add(record('shared, left'), [OLD], 0, 100);
    const upTo = await deliveries.share(aor, OLD, NEW);
    const shared = await deliveries.pendingFor(aor, NEW, Date.now(), undefined, 100);
    assert.deepEqual(shared.map((d) => d.message.body.toString()), ['shared, taken', 'shared, left'], 'a copy, in order');
    assert.equal(upTo, shared[1]!.message.id);
    await deliveries.done([shared[0]!.message.id], NEW);
    // Sent to the old address before the new one came, stored after the copy (its answer came late).
    await deliveries.add(record('late'), [OLD], 0, 100);
    const since = Date.now() + 1;
    assert.equal((await deliveries.pendingFor(aor, OLD, Date.now(), undefined, 100)).length, 3, 'the old address keeps its own');

    await deliveries.takeOver(aor, NEW, [OLD], since, upTo);
    const waiting = await deliveries.pendingFor(aor, NEW, Date.now(), undefined, 100);
    assert.deepEqual(waiting.map((d) => d.message.body.toString()), ['shared, left', 'late'], 'what it took not again');
    assert.deepEqual(await deliveries.pendingFor(aor, OLD, Date.now(), undefined, 100), []);
    assert.equal(await deliveries.share(aor, OLD, NEW), 0, 'nothing waits at the old address');
  } finally {
    await store.close();
  }
});
