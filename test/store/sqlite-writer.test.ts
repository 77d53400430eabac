// The SQLite writer thread: what it acknowledges is committed and seen by any connection reading
// after; writes asked for together share a transaction, yet one that fails fails only itself; a file
// locked by another process fails the writes with the driver's code, as the store tells outages
// apart by it; closing waits for the writes asked for before.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { CompiledQuery } from 'kysely';
import { fileURLToPath } from 'node:url';
import { SqliteWriter } from '../../src/store/sqlite-writer.js';
import { StatementGroup } from '../../src/store/compiled.js';
import type { Worker } from 'node:worker_threads';
import { WRITER_LOST, isSqliteUnavailableCode } from '../../src/store/availability.js';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A SQLite file in WAL mode with a table t (n unique), as the store leaves it, and a reader on it. */
function databaseFile(): { path: string; reader: SqliteDatabase.Database } {
  const dir = mkdtempSync(join(tmpdir(), 'parley-writer-'));
  dirs.push(dir);
  const path = join(dir, 'store.db');
  const reader = new SqliteDatabase(path);
  reader.pragma('journal_mode = WAL');
  reader.exec('create table t (n integer unique not null)');
  return { path, reader };
}

/** Runs `body` with a writer on a new databaseFile() and its reader, and closes both after. */
async function withWriter(busyTimeoutMs: number, body: (writer: SqliteWriter, reader: SqliteDatabase.Database) => Promise<void>): Promise<void> {
  const { path, reader } = databaseFile();
  const writer = await SqliteWriter.open(path, busyTimeoutMs);
  try {
    await body(writer, reader);
  } finally {
    await writer.close();
    reader.close();
  }
}

const insert = (n: unknown) => CompiledQuery.raw('insert into t (n) values (?)', [n]);
/** A group of two inserts taking values [a, b]: a, then a + b. */
const sums = new StatementGroup([
  { compiled: CompiledQuery.raw('insert into t (n) values (?)', [0]), sources: [0] },
  { compiled: CompiledQuery.raw('insert into t (n) values (? + ?)', [0, 0]), sources: [1, 0] },
], 2);
const rows = (reader: SqliteDatabase.Database) => (reader.prepare('select n from t order by n').all() as Array<{ n: number }>).map((row) => row.n);

test('a write resolves once committed, with the rows it changed: another connection sees it, and several writes asked for together all land', () => withWriter(200, async (writer, reader) => {
  assert.equal(await writer.write([insert(1), insert(2)]), 2, 'rows changed');
  assert.deepEqual(rows(reader), [1, 2]);
  await Promise.all([3, 4, 5, 6].map((n) => writer.write([insert(n)])));
  assert.deepEqual(rows(reader), [1, 2, 3, 4, 5, 6]);
}));

test('an insert resolves with the id of the row its first statement inserted, which its later statements reach; none when it inserted nothing', () => withWriter(200, async (writer, reader) => {
  reader.exec('create table message (id integer primary key autoincrement, body text not null); create table copy (message_id integer not null, n integer not null)');
  const message = (body: string) => CompiledQuery.raw('insert into message (body) select ? where ? not in (select body from message)', [body, body]);
  const copies = CompiledQuery.raw('with m (id) as materialized (select last_insert_rowid()) insert into copy (message_id, n) select m.id, json_each.value from m, json_each(?)', ['[1,2,3]']);
  const [first, second, again] = await Promise.all([writer.insert([message('a'), copies]), writer.insert([message('b'), copies]), writer.insert([message('a')])]);
  assert.deepEqual([first, second, again], [1, 2, undefined], 'ids in the order asked for; undefined for the insert whose condition did not hold');
  const copied = reader.prepare('select message_id, n from copy order by message_id, n').all();
  assert.deepEqual(copied, [1, 2].flatMap((id) => [1, 2, 3].map((n) => ({ message_id: id, n }))), 'each copy row has its message\'s id');
}));

test('a group\'s statements each take the values it names, asked for together with other writes, in their order; a failing one fails its whole group alone', () => withWriter(200, async (writer, reader) => {
  const written = await Promise.all([writer.writeGroup({ group: sums, values: [10, 5] }), writer.write([insert(1)]), writer.writeGroup({ group: sums, values: [20, 1] })]);
  assert.deepEqual(written, [2, 1, 2], 'rows changed by each');
  assert.deepEqual(rows(reader), [1, 10, 15, 20, 21]);
  const [duplicate, fresh] = await Promise.allSettled([writer.writeGroup({ group: sums, values: [30, -10] }), writer.writeGroup({ group: sums, values: [40, 1] })]);
  assert.equal(duplicate.status, 'rejected', 'its second statement inserts 20 again');
  assert.equal(fresh.status, 'fulfilled');
  assert.deepEqual(rows(reader), [1, 10, 15, 20, 21, 40, 41], 'nothing of the failed group');
}));

test('binary values asked for together land each with its own bytes: a small Buffer of the shared pool, a view into a larger array, an empty one', () => withWriter(200, async (writer, reader) => {
  reader.exec('create table blob (n integer not null, bytes blob not null)');
  const blob = (n: number, bytes: Uint8Array) => CompiledQuery.raw('insert into blob (n, bytes) values (?, ?)', [n, bytes]);
  const large = Uint8Array.from({ length: 64 }, (_, i) => i);
  const pooled = Buffer.from('hello');
  assert.notEqual(pooled.byteLength, pooled.buffer.byteLength, 'a view of the pool');
  await Promise.all([
    writer.write([blob(1, pooled), blob(2, large.subarray(10, 13))]),
    writer.write([blob(3, new Uint8Array(0))]),
    writer.write([blob(4, Buffer.from('world'))]),
  ]);
  const stored = (reader.prepare('select n, bytes from blob order by n').all() as Array<{ n: number; bytes: Buffer }>).map((row) => [row.n, [...row.bytes]]);
  assert.deepEqual(stored, [[1, [...Buffer.from('hello')]], [2, [10, 11, 12]], [3, []], [4, [...Buffer.from('world')]]]);
  assert.equal(pooled.toString(), 'hello', 'what was asked for is left as it was');
}));

test('a failing write among others asked for at the same time fails alone, leaving none of its statements; the others are committed', () => withWriter(200, async (writer, reader) => {
  const outcomes = await Promise.allSettled([
    writer.write([insert(1)]),
    // Its first statement is fine, its second breaks the unique constraint: neither is kept.
    writer.write([insert(2), insert(1)]),
    writer.write([insert(3)]),
  ]);
  assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'fulfilled']);
  const failure = (outcomes[1] as PromiseRejectedResult).reason as Error & { code?: string };
  assert.match(failure.message, /UNIQUE constraint failed: t\.n/);
  assert.equal(failure.code, 'SQLITE_CONSTRAINT_UNIQUE');
  assert.deepEqual(rows(reader), [1, 3]);
}));

test('writes asked for one by one, some while the log syncs, are each answered with their own outcome, in order; the thread counts what it did', () => withWriter(200, async (writer, reader) => {
  const answered: number[] = [];
  const asked: Array<Promise<number>> = [];
  for (const [i, n] of [1, 2, 3, 2, 4, 5].entries()) {
    const write = writer.write([insert(n)]);
    asked.push(write);
    write.then(() => answered.push(i), () => answered.push(i));
    // Each in a turn of its own: those asked while another is under way go together in the next message.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const settled = await Promise.allSettled(asked);
  assert.deepEqual(settled.map((outcome) => outcome.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  assert.match(String((settled[3] as PromiseRejectedResult).reason), /UNIQUE/);
  assert.deepEqual(answered, [0, 1, 2, 3, 4, 5], 'answered in the order asked');
  assert.deepEqual(rows(reader), [1, 2, 3, 4, 5]);
  const stats = (await writer.stats())!;
  assert.ok(stats.batches >= 1 && stats.batches <= 6, `${stats.batches} messages for 6 writes`);
  assert.ok(stats.syncs >= 1 && stats.syncs <= stats.transactions, `${stats.syncs} syncs for ${stats.transactions} transactions`);
  assert.ok(stats.statements >= 6 && stats.cpuMicros > 0);
}));

test('writes asked for while the thread commits one wait for its answer, then go to it together in one message and one transaction', () => withWriter(5000, async (writer, reader) => {
  // The thread waits for the lock with the first write until the reader lets it go.
  reader.exec('BEGIN EXCLUSIVE');
  const first = writer.write([insert(1)]);
  const later: Array<Promise<number>> = [];
  for (const n of [2, 3, 4]) {
    await new Promise((resolve) => setImmediate(resolve));
    later.push(writer.write([insert(n)]));
  }
  reader.exec('ROLLBACK');
  await Promise.all([first, ...later]);
  assert.deepEqual(rows(reader), [1, 2, 3, 4]);
  const stats = (await writer.stats())!;
  assert.deepEqual([stats.batches, stats.transactions, stats.writes], [2, 2, 4]);
}));

test('a write with a value that cannot be sent to the thread is refused; the writer goes on', () => withWriter(200, async (writer, reader) => {
  await assert.rejects(writer.write([insert(() => 1)]), /could not be cloned/);
  await writer.write([insert(1)]);
  assert.deepEqual(rows(reader), [1]);
}));

test('a file locked by another process fails the write with SQLITE_BUSY; once released, writes go through', () => withWriter(50, async (writer, reader) => {
  reader.exec('BEGIN EXCLUSIVE');
  try {
    await assert.rejects(writer.write([insert(1)]), (error: Error & { code?: string }) => error.code === 'SQLITE_BUSY' && /database is locked/.test(error.message));
  } finally {
    reader.exec('ROLLBACK');
  }
  await writer.write([insert(2)]);
  assert.deepEqual(rows(reader), [2]);
}));

test('close waits for the writes asked for before it; a write after it is refused', async () => {
  const { path, reader } = databaseFile();
  const writer = await SqliteWriter.open(path, 200);
  const before = writer.write([insert(1)]);
  await writer.close();
  await before;
  assert.deepEqual(rows(reader), [1]);
  await assert.rejects(writer.write([insert(2)]), /SQLite writer stopped/);
  reader.close();
});

test('close completes in a process that has nothing else to do, and the write before it is kept', () => {
  const { path, reader } = databaseFile();
  const writer = new URL('../../src/store/sqlite-writer.ts', import.meta.url).href;
  const script = `
    import { CompiledQuery } from 'kysely';
    import { SqliteWriter } from ${JSON.stringify(writer)};
    const writer = await SqliteWriter.open(${JSON.stringify(path)}, 200);
    await writer.write([CompiledQuery.raw('insert into t (n) values (?)', [7])]);
    await writer.close();
    console.log('closed');
  `;
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const output = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(output.trim(), 'closed');
  assert.deepEqual(rows(reader), [7]);
  reader.close();
});

test('a thread that stops unasked fails the writes it had not answered as an outage, and a new one takes the writes after it', () => withWriter(200, async (writer, reader) => {
  await writer.writeGroup({ group: sums, values: [1, 1] });
  // A fault inside the thread, as an uncaught error there would end it.
  const thread = (writer as unknown as { worker: Worker }).worker;
  const unanswered = writer.write([insert(3)]);
  await thread.terminate();
  const lost = (error: Error & { code?: string }) => error.code === WRITER_LOST && isSqliteUnavailableCode(error.code);
  await assert.rejects(unanswered, lost, 'the write the thread had not answered');
  await assert.rejects(writer.write([insert(6)]), lost, 'a write while no thread runs');
  // The next thread comes within its backoff (the first is 100 to 200 ms).
  let written = false;
  for (let attempt = 0; attempt < 100 && !written; attempt++) {
    // The group the last thread knew: the new one is told it anew.
    written = await writer.writeGroup({ group: sums, values: [4, 1] }).then(() => true, () => false);
    if (!written) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(written, 'a write after the new thread started is committed');
  assert.ok([[1, 2, 4, 5], [1, 2, 3, 4, 5]].some((expected) => JSON.stringify(rows(reader)) === JSON.stringify(expected)), `rows ${JSON.stringify(rows(reader))}`);
}));

test('a file the thread cannot open fails opening the writer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-writer-'));
  dirs.push(dir);
  await assert.rejects(SqliteWriter.open(join(dir, 'missing', 'store.db'), 200), /SQLite writer failed/);
});
