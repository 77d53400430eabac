import { sql, type CompiledQuery, type Kysely } from 'kysely';
import { CompiledStatements } from './compiled.js';
import { GroupCommit, runAll, type DeferredSync } from './group-commit.js';
import type { StatementWriter } from './sqlite-writer.js';
import type { Database } from './schema.js';
import type { OutboxProgress, OutboxRecord, OutboxStore } from './types.js';

/** Rows per DELETE or upsert statement: far below SQLite's limit on bound variables. */
const CHUNK = 500;

export class OutboxRepository implements OutboxStore {
  /** Adds and progress share transactions (group commit, as registrations do), in the order asked for. */
  private readonly commits: GroupCommit;
  private readonly statements = new CompiledStatements();

  /** With `writer` (SQLite in a file), rows are added and progress written by it, off the event loop; else by a group commit of `db`'s. */
  constructor(
    private readonly db: Kysely<Database>,
    deferredSync?: DeferredSync,
    private readonly writer?: StatementWriter,
  ) {
    this.commits = new GroupCommit(db, deferredSync);
  }

  /**
   * Resolves with the row's id once it is durable; `committed` may be told it earlier (see
   * GroupCommit.run), not with a writer, which answers once the row is durable.
   */
  add(record: Omit<OutboxRecord, 'id'>, committed?: (id: number) => void): Promise<number> {
    const values = [record.kind, JSON.stringify(record.recipients), record.payload, record.createdAt];
    if (this.writer) {
      const insert = this.statements.compile('add by writer', values, this.insertRow);
      return this.writer.insert([insert]).then(insertedId);
    }
    return this.commits.run(async (trx) => {
      // Every message a gateway or room acknowledges goes through here: compiled once (see CompiledStatements).
      const insert = this.statements.compile('add', values, (v) => this.insertRow(v).returning('id'));
      const { rows } = await trx.executeQuery<{ id: number }>(insert);
      return rows[0]!.id;
    }, committed);
  }

  private readonly insertRow = ([kind, recipients, payload, createdAt]: readonly unknown[]) =>
    this.db.insertInto('outbox').values({ kind: kind as string, recipients: recipients as string, payload: payload as Buffer, created_at: createdAt as number });

  async record(progress: OutboxProgress): Promise<void> {
    const statements = progressStatements(this.db, progress);
    // On the writer too: two connections writing the file would wait for each other's lock.
    if (this.writer) await this.writer.write(statements);
    else await this.commits.run((trx) => runAll(trx, statements));
  }

  async pending(kind: string): Promise<{ records: OutboxRecord[]; cursors: Map<string, number> }> {
    const rows = await this.db.selectFrom('outbox').selectAll().where('kind', '=', kind).orderBy('id').execute();
    const cursorRows = await this.db.selectFrom('outbox_cursors').select(['recipient', 'done_id']).where('kind', '=', kind).execute();
    return {
      records: rows.map((row) => ({ id: row.id, kind: row.kind, recipients: JSON.parse(row.recipients) as string[], payload: row.payload, createdAt: row.created_at })),
      cursors: new Map(cursorRows.map((row) => [row.recipient, row.done_id])),
    };
  }
}

/** The id of a row a writer inserted: a plain INSERT always inserts one. */
function insertedId(id: number | undefined): number {
  if (id === undefined) throw new Error('outbox row not inserted');
  return id;
}

function progressStatements(db: Kysely<Database>, progress: OutboxProgress): CompiledQuery[] {
  const finished = progress.finished;
  const cursors = new Map<string, { kind: string; recipient: string; done_id: number }>();
  for (const { kind, recipient, doneId } of progress.cursors) {
    const key = `${kind}\n${recipient}`;
    if ((cursors.get(key)?.done_id ?? -1) < doneId) cursors.set(key, { kind, recipient, done_id: doneId });
  }
  const statements: CompiledQuery[] = [];
  for (let start = 0; start < finished.length; start += CHUNK) {
    statements.push(db.deleteFrom('outbox').where('id', 'in', finished.slice(start, start + CHUNK)).compile());
  }
  const values = [...cursors.values()];
  for (let start = 0; start < values.length; start += CHUNK) {
    statements.push(
      db
        .insertInto('outbox_cursors')
        .values(values.slice(start, start + CHUNK))
        .onConflict((conflict) => conflict.columns(['kind', 'recipient']).doUpdateSet((eb) => ({ done_id: eb.ref('excluded.done_id') })))
        .compile(),
    );
  }
  // A cursor below every pending row tells nothing any more.
  statements.push(
    db
      .deleteFrom('outbox_cursors')
      .where('done_id', '<', (eb) => eb.fn.coalesce(eb.selectFrom('outbox').select((eb) => eb.fn.min('id').as('id')), sql.lit(Number.MAX_SAFE_INTEGER)))
      .compile(),
  );
  return statements;
}
