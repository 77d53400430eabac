import type { Kysely, Transaction } from 'kysely';
import { isStoreUnavailable } from './availability.js';
import type { Database } from './schema.js';
import type { OutboxProgress, OutboxRecord, OutboxStore } from './types.js';

/** Rows per INSERT or DELETE statement: far below SQLite's limit on bound variables. */
const CHUNK = 500;

interface PendingAdd {
  record: Omit<OutboxRecord, 'id'>;
  resolve(id: number): void;
  reject(error: unknown): void;
}

interface PendingProgress {
  progress: OutboxProgress;
  resolve(): void;
  reject(error: unknown): void;
}

export class OutboxRepository implements OutboxStore {
  private adds: PendingAdd[] = [];
  private progress: PendingProgress[] = [];
  private flushing: Promise<void> | undefined;

  constructor(private readonly db: Kysely<Database>) {}

  add(record: Omit<OutboxRecord, 'id'>): Promise<number> {
    return new Promise((resolve, reject) => {
      this.adds.push({ record, resolve, reject });
      this.schedule();
    });
  }

  record(progress: OutboxProgress): Promise<void> {
    return new Promise((resolve, reject) => {
      this.progress.push({ progress, resolve, reject });
      this.schedule();
    });
  }

  async pending(kind: string): Promise<{ records: OutboxRecord[]; cursors: Map<string, number> }> {
    const rows = await this.db.selectFrom('outbox').selectAll().where('kind', '=', kind).orderBy('id').execute();
    const cursorRows = await this.db.selectFrom('outbox_cursors').select(['recipient', 'done_id']).where('kind', '=', kind).execute();
    return {
      records: rows.map((row) => ({ id: row.id, kind: row.kind, recipients: JSON.parse(row.recipients) as string[], payload: row.payload, createdAt: row.created_at })),
      cursors: new Map(cursorRows.map((row) => [row.recipient, row.done_id])),
    };
  }

  /** Commits what was asked for while the previous commit ran, together (group commit, as LocationRepository.replace). */
  private schedule(): void {
    if (!this.flushing) this.flushing = new Promise<void>((started) => setImmediate(started)).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    while (this.adds.length > 0 || this.progress.length > 0) {
      const adds = this.adds;
      const progress = this.progress;
      this.adds = [];
      this.progress = [];
      try {
        const ids = await this.db.transaction().execute(async (trx) => {
          const inserted = await insertRecords(trx, adds);
          await writeProgress(trx, progress);
          return inserted;
        });
        adds.forEach((entry, index) => entry.resolve(ids[index]!));
        for (const entry of progress) entry.resolve();
      } catch (error) {
        if (isStoreUnavailable(error)) {
          for (const entry of [...adds, ...progress]) entry.reject(error);
          continue;
        }
        // Something in the batch is wrong: each part alone, so the rest is not failed with it.
        for (const entry of adds) {
          await this.db
            .transaction()
            .execute((trx) => insertRecords(trx, [entry]))
            .then(([id]) => entry.resolve(id!), entry.reject);
        }
        for (const entry of progress) {
          await this.db
            .transaction()
            .execute((trx) => writeProgress(trx, [entry]))
            .then(entry.resolve, entry.reject);
        }
      }
    }
    this.flushing = undefined;
  }
}

async function insertRecords(trx: Transaction<Database>, adds: PendingAdd[]): Promise<number[]> {
  const ids: number[] = [];
  for (let start = 0; start < adds.length; start += CHUNK) {
    const chunk = adds.slice(start, start + CHUNK);
    const rows = await trx
      .insertInto('outbox')
      .values(chunk.map(({ record }) => ({ kind: record.kind, recipients: JSON.stringify(record.recipients), payload: record.payload, created_at: record.createdAt })))
      .returning('id')
      .execute();
    // Ids of one multi-row INSERT are given in VALUES order; RETURNING need not list them so.
    ids.push(...rows.map((row) => row.id).sort((a, b) => a - b));
  }
  return ids;
}

async function writeProgress(trx: Transaction<Database>, progress: PendingProgress[]): Promise<void> {
  if (progress.length === 0) return;
  const finished = progress.flatMap((entry) => entry.progress.finished);
  const cursors = new Map<string, { kind: string; recipient: string; done_id: number }>();
  for (const { kind, recipient, doneId } of progress.flatMap((entry) => entry.progress.cursors)) {
    const key = `${kind}\n${recipient}`;
    if ((cursors.get(key)?.done_id ?? -1) < doneId) cursors.set(key, { kind, recipient, done_id: doneId });
  }
  for (let start = 0; start < finished.length; start += CHUNK) {
    await trx.deleteFrom('outbox').where('id', 'in', finished.slice(start, start + CHUNK)).execute();
  }
  const values = [...cursors.values()];
  for (let start = 0; start < values.length; start += CHUNK) {
    await trx
      .insertInto('outbox_cursors')
      .values(values.slice(start, start + CHUNK))
      .onConflict((conflict) => conflict.columns(['kind', 'recipient']).doUpdateSet((eb) => ({ done_id: eb.ref('excluded.done_id') })))
      .execute();
  }
  // A cursor below every pending row tells nothing any more.
  const oldest = await trx.selectFrom('outbox').select((eb) => eb.fn.min('id').as('id')).executeTakeFirst();
  await trx.deleteFrom('outbox_cursors').where('done_id', '<', oldest?.id ?? Number.MAX_SAFE_INTEGER).execute();
}
