import type { Insertable, Kysely, Selectable, Transaction } from 'kysely';
import { GroupCommit } from './group-commit.js';
import { deleteExpired, nullsAbsent } from './rows.js';
import type { Database, DevicesTable, LocationsTable } from './schema.js';
import type { Binding, LocationStore } from './types.js';
import { formatPeer, parsePeer } from '../sip/transport/types.js';
import { deviceKey } from '../registrar/gruu.js';

export class LocationRepository implements LocationStore {
  private readonly commits: GroupCommit;

  constructor(private readonly db: Kysely<Database>) {
    this.commits = new GroupCommit(db);
  }

  /**
   * Rows are stored under the aor argument, whatever the bindings' own aor field says. A burst of
   * REGISTERs is committed together (group commit), each resolving once its rows are durable.
   */
  replace(aor: string, bindings: Binding[]): Promise<void> {
    return this.commits.run((trx) => writeBindings(trx, aor, bindings));
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
  // Devices are remembered beyond their registration, for what is sent to them while away.
  if (bindings.length > 0) {
    await trx
      .insertInto('devices')
      .values(deviceRows(aor, bindings))
      .onConflict((conflict) =>
        conflict.columns(['aor', 'device']).doUpdateSet((eb) => ({
          contact: eb.ref('excluded.contact'),
          user_agent: eb.ref('excluded.user_agent'),
          last_seen: eb.ref('excluded.last_seen'),
        })),
      )
      .execute();
  }
}

/** One row per device (a device's flows are several bindings), as its latest registration left it. */
function deviceRows(aor: string, bindings: Binding[]): Array<Insertable<DevicesTable>> {
  const latest = new Map<string, Binding>();
  for (const binding of bindings) {
    const key = deviceKey(binding);
    const seen = latest.get(key);
    if (!seen || seen.updatedAt < binding.updatedAt) latest.set(key, binding);
  }
  return [...latest].map(([device, binding]) => ({ aor, device, contact: binding.contact, user_agent: binding.userAgent ?? null, last_seen: binding.updatedAt }));
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
