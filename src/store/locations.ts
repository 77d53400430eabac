import { randomBytes } from 'node:crypto';
import type { CompiledQuery, Insertable, Kysely, Selectable } from 'kysely';
import { CompiledStatements } from './compiled.js';
import { GroupCommit, runAll, type DeferredSync } from './group-commit.js';
import type { StatementWriter } from './sqlite-writer.js';
import { deleteExpired, expiredRows, nullsAbsent } from './rows.js';
import type { Database, DevicesTable, LocationsTable } from './schema.js';
import { deviceKey, type Binding, type LocationStore, type StoredBefore } from './types.js';
import { formatPeer, parsePeer } from '../sip/transport/types.js';

export class LocationRepository implements LocationStore {
  private readonly commits: GroupCommit;
  private readonly statements = new CompiledStatements();

  /** With `writer` (SQLite in a file), bindings are written by it, off the event loop; else by a group commit of `db`'s. */
  constructor(
    private readonly db: Kysely<Database>,
    deferredSync?: DeferredSync,
    private readonly writer?: StatementWriter,
  ) {
    this.commits = new GroupCommit(db, deferredSync);
  }

  /**
   * Rows are stored under the aor argument, whatever the bindings' own aor field says. A burst of
   * REGISTERs is committed together (group commit), each resolving once its rows are durable.
   */
  replace(aor: string, bindings: readonly Binding[], before?: StoredBefore): Promise<unknown> {
    const statements = this.bindingStatements(aor, bindings, before);
    // The writer's own promise (of the rows changed), rather than one more made of it for nothing.
    if (this.writer) return this.writer.write(statements);
    return this.commits.run((trx) => runAll(trx, statements));
  }

  async listAll(): Promise<Binding[]> {
    const rows = await this.db.selectFrom('locations').selectAll().orderBy('aor').orderBy('contact').execute();
    // A row whose source is no address (written by hand, or by another program) would reach no one.
    return rows.flatMap((row) => toBinding(row) ?? []);
  }

  removeExpired(now: number): Promise<number> {
    // On the writer's thread, the table scan does not hold up the event loop, nor its lock the writer.
    if (this.writer) return this.writer.write([expiredRows(this.db, 'locations', now).compile()]);
    return deleteExpired(this.db, 'locations', now);
  }

  async isKnown(aor: string): Promise<boolean> {
    const row = await this.db.selectFrom('known_aors').select('aor').where('aor', '=', aor).executeTakeFirst();
    return row !== undefined;
  }

  async serverKey(name: string): Promise<Buffer> {
    // Two processes drawing at once: the first insert wins, and both read the key it wrote.
    await this.db.insertInto('server_keys').values({ name, value: randomBytes(32) }).onConflict((oc) => oc.column('name').doNothing()).execute();
    const { value } = await this.db.selectFrom('server_keys').select('value').where('name', '=', name).executeTakeFirstOrThrow();
    return Buffer.from(value);
  }

  /**
   * The statements of every REGISTER, compiled once per number of bindings (see CompiledStatements):
   * the writer runs them as they are; kysely, through its executor, cost several promises more per
   * statement than running it.
   */
  private bindingStatements(aor: string, bindings: readonly Binding[], before: StoredBefore): CompiledQuery[] {
    const { statements, build } = this;
    const known = before === 'bound';
    if (bindings.length === 0) {
      const compiled = before === 'unbound' ? [] : [statements.compile('delete', [aor], build.delete)];
      if (!known) compiled.push(statements.compile('known', [aor, Date.now()], build.known));
      return compiled;
    }
    // Only the bindings gone are deleted (none when no row is stored: a new user's REGISTER), and
    // those kept are updated where they are: a refresh writes its row's page alone, where deleting
    // and inserting it again would also write the primary key's index (and, its row moving to a
    // new rowid, one more page of the table).
    const compiled: CompiledQuery[] = [];
    const values: unknown[] = [];
    for (const binding of bindings) pushLocationValues(values, aor, binding);
    if (before !== 'unbound') compiled.push(statements.compile(GONE_SHAPES.of(bindings.length), [aor, ...bindings.map((b) => b.contact)], build.gone));
    compiled.push(statements.compile(UPSERT_SHAPES.of(bindings.length), values, build.upsert));
    if (!known) compiled.push(statements.compile('known', [aor, Date.now()], build.known));
    // Devices are remembered beyond their registration, for what is sent to them while away.
    const deviceValues = deviceRowValues(aor, bindings);
    compiled.push(statements.compile(DEVICES_SHAPES.of(deviceValues.length / DEVICE_COLUMNS), deviceValues, build.devices));
    return compiled;
  }

  /**
   * The statements of bindingStatements, as kysely builds them from their values: made once, not
   * for each REGISTER, as they are called only for a shape's first statement.
   */
  private readonly build = {
    delete: ([aor]: readonly unknown[]) => this.db.deleteFrom('locations').where('aor', '=', aor as string),
    gone: ([aor, ...contacts]: readonly unknown[]) => this.db.deleteFrom('locations').where('aor', '=', aor as string).where('contact', 'not in', contacts as string[]),
    upsert: (values: readonly unknown[]) =>
      this.db
        .insertInto('locations')
        .values(rowsOf(values, LOCATION_COLUMNS, toLocationRow))
        .onConflict((conflict) =>
          conflict.columns(['aor', 'contact']).doUpdateSet((eb) => ({
            expires_at: eb.ref('excluded.expires_at'),
            q: eb.ref('excluded.q'),
            call_id: eb.ref('excluded.call_id'),
            cseq: eb.ref('excluded.cseq'),
            source: eb.ref('excluded.source'),
            connection_id: eb.ref('excluded.connection_id'),
            instance: eb.ref('excluded.instance'),
            reg_id: eb.ref('excluded.reg_id'),
            user_agent: eb.ref('excluded.user_agent'),
            path: eb.ref('excluded.path'),
            updated_at: eb.ref('excluded.updated_at'),
            // Every column but the key: one added to the table and not here is a compile error, not a stale value.
          }) satisfies Record<Exclude<keyof LocationsTable, 'aor' | 'contact'>, unknown>),
        ),
    known: ([aor, firstSeen]: readonly unknown[]) =>
      this.db
        .insertInto('known_aors')
        .values({ aor: aor as string, first_seen: firstSeen as number })
        .onConflict((conflict) => conflict.column('aor').doNothing()),
    devices: (values: readonly unknown[]) =>
      this.db
        .insertInto('devices')
        .values(rowsOf(values, DEVICE_COLUMNS, toDeviceRow))
        .onConflict((conflict) =>
          conflict.columns(['aor', 'device']).doUpdateSet((eb) => ({
            contact: eb.ref('excluded.contact'),
            user_agent: eb.ref('excluded.user_agent'),
            last_seen: eb.ref('excluded.last_seen'),
          })),
        ),
  };
}

/** The names of a statement's shapes by its number of rows, each made once rather than for every REGISTER. */
class ShapeNames {
  private readonly names: string[] = [];
  constructor(private readonly kind: string) {}
  of(rows: number): string {
    return (this.names[rows] ??= `${this.kind} ${rows}`);
  }
}

const GONE_SHAPES = new ShapeNames('gone');
const UPSERT_SHAPES = new ShapeNames('upsert');
const DEVICES_SHAPES = new ShapeNames('devices');

/** The rows `values` hold, `columns` values each, as `toRow` makes them. */
function rowsOf<Row>(values: readonly unknown[], columns: number, toRow: (values: readonly unknown[]) => Row): Row[] {
  return Array.from({ length: values.length / columns }, (_, row) => toRow(values.slice(row * columns, (row + 1) * columns)));
}

const DEVICE_COLUMNS = 5;

function toDeviceRow(values: readonly unknown[]): Insertable<DevicesTable> {
  const [aor, device, contact, userAgent, lastSeen] = values;
  return { aor: aor as string, device: device as string, contact: contact as string, user_agent: userAgent as string | null, last_seen: lastSeen as number };
}

/**
 * The values of one row per device (a device's flows are several bindings), as its latest
 * registration left it, in toDeviceRow's order.
 */
function deviceRowValues(aor: string, bindings: readonly Binding[]): unknown[] {
  const values: unknown[] = [];
  // One binding, as nearly always: one device, nothing to group.
  if (bindings.length === 1) {
    pushDeviceValues(values, aor, deviceKey(bindings[0]!), bindings[0]!);
    return values;
  }
  const latest = new Map<string, Binding>();
  for (const binding of bindings) {
    const key = deviceKey(binding);
    const seen = latest.get(key);
    if (!seen || seen.updatedAt < binding.updatedAt) latest.set(key, binding);
  }
  for (const [device, binding] of latest) pushDeviceValues(values, aor, device, binding);
  return values;
}

/** Appends the values of a device's row to `values`, in toDeviceRow's order. */
function pushDeviceValues(values: unknown[], aor: string, device: string, binding: Binding): void {
  values.push(aor, device, binding.contact, binding.userAgent ?? null, binding.updatedAt);
}

/** Appends the values of a binding's row to `values`, in the order of toLocationRow's columns. */
function pushLocationValues(values: unknown[], aor: string, binding: Binding): void {
  values.push(
    aor, binding.contact, binding.expiresAt, binding.q, binding.callId, binding.cseq, formatPeer(binding.source),
    binding.connectionId ?? null, binding.instance ?? null, binding.regId ?? null, binding.userAgent ?? null,
    binding.path ?? null, binding.updatedAt,
  );
}

const LOCATION_COLUMNS = 13;

function toLocationRow(values: readonly unknown[]): Insertable<LocationsTable> {
  const [aor, contact, expiresAt, q, callId, cseq, source, connectionId, instance, regId, userAgent, path, updatedAt] = values;
  return {
    aor: aor as string,
    contact: contact as string,
    expires_at: expiresAt as number,
    q: q as number,
    call_id: callId as string,
    cseq: cseq as number,
    source: source as string,
    connection_id: connectionId as string | null,
    instance: instance as string | null,
    reg_id: regId as number | null,
    user_agent: userAgent as string | null,
    path: path as string | null,
    updated_at: updatedAt as number,
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
