import type { Insertable, Kysely, Selectable, Transaction } from 'kysely';
import { isStoreUnavailable } from './availability.js';
import { deleteExpired, nullsAbsent } from './rows.js';
import type { Database, LocationsTable } from './schema.js';
import type { Binding, LocationStore } from './types.js';
import { formatPeer, parsePeer } from '../sip/transport/types.js';

export class LocationRepository implements LocationStore {
  constructor(private readonly db: Kysely<Database>) {}

  private pending: PendingReplace[] = [];
  private flushing: Promise<void> | undefined;

  /**
   * Rows are stored under the aor argument, whatever the bindings' own aor field says.
   * Replacements asked for while a commit is under way are committed together in the next
   * transaction (group commit): each still resolves only once its rows are durable, but a burst of
   * REGISTERs shares one disk sync instead of waiting for one each.
   */
  replace(aor: string, bindings: Binding[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ aor, bindings, resolve, reject });
      if (!this.flushing) this.flushing = new Promise<void>((started) => setImmediate(started)).then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.db.transaction().execute(async (trx) => {
          for (const entry of batch) await writeBindings(trx, entry.aor, entry.bindings);
        });
        for (const entry of batch) entry.resolve();
      } catch (error) {
        // Nothing gets through while the store is unavailable: trying each entry would only wait longer.
        if (isStoreUnavailable(error)) {
          for (const entry of batch) entry.reject(error);
          continue;
        }
        // One failing entry must not fail the others: commit them one by one to find it.
        for (const entry of batch) {
          await this.db
            .transaction()
            .execute((trx) => writeBindings(trx, entry.aor, entry.bindings))
            .then(entry.resolve, entry.reject);
        }
      }
    }
    this.flushing = undefined;
  }

  async listAll(): Promise<Binding[]> {
    const rows = await this.db.selectFrom('locations').selectAll().orderBy('aor').orderBy('contact').execute();
    // A row whose source is no address (written by hand, or by another program) would reach no one.
    return rows.flatMap((row) => toBinding(row) ?? []);
  }

  removeExpired(now: number): Promise<number> {
    return deleteExpired(this.db, 'locations', now);
  }

  async isKnown(aor: string): Promise<boolean> {
    const row = await this.db.selectFrom('known_aors').select('aor').where('aor', '=', aor).executeTakeFirst();
    return row !== undefined;
  }
}

interface PendingReplace {
  aor: string;
  bindings: Binding[];
  resolve(): void;
  reject(error: unknown): void;
}

async function writeBindings(trx: Transaction<Database>, aor: string, bindings: Binding[]): Promise<void> {
  await trx.deleteFrom('locations').where('aor', '=', aor).execute();
  if (bindings.length > 0) {
    await trx
      .insertInto('locations')
      .values(bindings.map((binding) => toLocationRow(aor, binding)))
      .execute();
  }
  await trx
    .insertInto('known_aors')
    .values({ aor, first_seen: Date.now() })
    .onConflict((conflict) => conflict.column('aor').doNothing())
    .execute();
}

function toLocationRow(aor: string, binding: Binding): Insertable<LocationsTable> {
  return {
    aor,
    contact: binding.contact,
    expires_at: binding.expiresAt,
    q: binding.q,
    call_id: binding.callId,
    cseq: binding.cseq,
    source: formatPeer(binding.source),
    connection_id: binding.connectionId ?? null,
    instance: binding.instance ?? null,
    reg_id: binding.regId ?? null,
    user_agent: binding.userAgent ?? null,
    path: binding.path ?? null,
    updated_at: binding.updatedAt,
  };
}

function toBinding(row: Selectable<LocationsTable>): Binding | undefined {
  const source = parsePeer(row.source);
  if (!source) return undefined;
  return {
    aor: row.aor,
    contact: row.contact,
    expiresAt: row.expires_at,
    q: row.q,
    callId: row.call_id,
    cseq: row.cseq,
    source,
    updatedAt: row.updated_at,
    ...nullsAbsent({
      connectionId: row.connection_id,
      instance: row.instance,
      regId: row.reg_id,
      userAgent: row.user_agent,
      path: row.path,
    }),
  };
}
