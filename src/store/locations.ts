import { randomBytes } from 'node:crypto';
import type { CompiledQuery, Insertable, Kysely, Selectable } from 'kysely';
import { CompiledGroups, type GroupWrite, type StatementGroup } from './compiled.js';
import { GroupCommit, runAll, type DeferredSync } from './group-commit.js';
import type { StatementWriter } from './sqlite-writer.js';
import { deleteExpired, expiredRows, nullsAbsent } from './rows.js';
import type { Database, DevicesTable, LocationsTable } from './schema.js';
import { deviceKey, type Binding, type LocationStore, type StoredBefore } from './types.js';
import { formatPeer, parsePeer } from '../sip/transport/types.js';

export class LocationRepository implements LocationStore {
  private readonly commits: GroupCommit;
  private readonly groups = new CompiledGroups();

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
    const write = this.bindingStatements(aor, bindings, before);
    // The writer's own promise (of the rows changed), rather than one more made of it for nothing.
    if (this.writer) return this.writer.writeGroup(write);
    return this.commits.run((trx) => runAll(trx, write.group.expand(write.values)));
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
   * The statements of every REGISTER, as one group compiled once per shape (see CompiledGroups): a
   * value several of them take (the AOR; a binding's contact, User-Agent and time; a device's key
   * when it is its contact) is in the group's values once. The writer runs them as they are; kysely,
   * through its executor, cost several promises more per statement than running it.
   */
  private bindingStatements(aor: string, bindings: readonly Binding[], before: StoredBefore): GroupWrite {
    // The values: the AOR, each binding's (see pushBindingValues), the key of each device that is
    // not its contact, and the time the AOR is first known when it may not be and no binding tells it.
    const values: unknown[] = [aor];
    for (const binding of bindings) pushBindingValues(values, binding);
    // Devices are remembered beyond their registration, for what is sent to them while away: each
    // row is of the binding its latest registration left.
    const devices = latestOfEachDevice(bindings);
    for (const { key } of devices) if (key !== undefined) values.push(key);
    if (before !== 'bound' && bindings.length === 0) values.push(Date.now());
    const shape =
      bindings.length === 1
        ? ONE_BINDING_SHAPES[before ?? 'maybe'][devices[0]!.key === undefined ? 'contact' : 'key']
        : `${before ?? 'maybe'} ${bindings.length}: ${devices.map(({ binding, key }) => (key === undefined ? binding : `${binding} keyed`)).join()}`;
    return { group: this.groups.get(shape) ?? this.compileBindingStatements(shape, values, bindings.length, devices, before), values };
  }

  /** The group of bindingStatements' shape, compiled: apart, so that a REGISTER of a shape compiled before makes no callback for it. */
  private compileBindingStatements(shape: string, values: readonly unknown[], count: number, devices: readonly Device[], before: StoredBefore): StatementGroup {
    return this.groups.group(shape, values, (markers) => this.buildBindingStatements(markers, count, devices, before));
  }

  /**
   * The statements of bindingStatements, from `values` in its order. Only the bindings gone are
   * deleted (none when no row is stored: a new user's REGISTER), and those kept are updated where
   * they are: a refresh writes its row's page alone, where deleting and inserting it again would
   * also write the primary key's index (and, its row moving to a new rowid, one more page of the table).
   */
  private buildBindingStatements(values: readonly unknown[], count: number, devices: readonly Device[], before: StoredBefore) {
    const { build } = this;
    const aor = values[0];
    const bindings = Array.from({ length: count }, (_, index) => values.slice(1 + index * BINDING_VALUES, 1 + (index + 1) * BINDING_VALUES));
    const keys = values.slice(1 + count * BINDING_VALUES);
    const statements: Array<{ compile(): CompiledQuery }> = [];
    if (before !== 'unbound') statements.push(count === 0 ? build.delete([aor]) : build.gone([aor, ...bindings.map(([contact]) => contact)]));
    if (count > 0) statements.push(build.upsert(bindings.flatMap((binding) => [aor, ...binding])));
    // First known when its first binding was updated: now.
    if (before !== 'bound') statements.push(build.known([aor, count === 0 ? keys.shift() : bindings[0]![BINDING_VALUES - 1]]));
    if (count > 0) {
      statements.push(
        build.devices(
          devices.flatMap(({ binding, key }) => {
            const [contact, , , , , , , , , userAgent, , updatedAt] = bindings[binding]!;
            return [aor, key === undefined ? contact : keys.shift(), contact, userAgent, updatedAt];
          }),
        ),
      );
    }
    return statements;
  }

  /**
   * The statements of buildBindingStatements, as kysely builds them from their values: made once,
   * not for each REGISTER, as they are called only for a shape's first group.
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

/** The rows `values` hold, `columns` values each, as `toRow` makes them. */
function rowsOf<Row>(values: readonly unknown[], columns: number, toRow: (values: readonly unknown[]) => Row): Row[] {
  return Array.from({ length: values.length / columns }, (_, row) => toRow(values.slice(row * columns, (row + 1) * columns)));
}

const DEVICE_COLUMNS = 5;

function toDeviceRow(values: readonly unknown[]): Insertable<DevicesTable> {
  const [aor, device, contact, userAgent, lastSeen] = values;
  return { aor: aor as string, device: device as string, contact: contact as string, user_agent: userAgent as string | null, last_seen: lastSeen as number };
}

/** A device of a REGISTER's bindings: the binding its latest registration left, and its key unless that is the binding's contact. */
interface Device {
  binding: number;
  key: string | undefined;
}

/** Each device of `bindings` (a device's flows are several bindings), in the order first seen. */
function latestOfEachDevice(bindings: readonly Binding[]): Device[] {
  // One binding, as nearly always: one device, nothing to group.
  if (bindings.length === 1) return [deviceOf(bindings, 0)];
  const latest = new Map<string, number>();
  bindings.forEach((binding, index) => {
    const key = deviceKey(binding);
    const seen = latest.get(key);
    if (seen === undefined || bindings[seen]!.updatedAt < binding.updatedAt) latest.set(key, index);
  });
  return Array.from(latest.values(), (index) => deviceOf(bindings, index));
}

function deviceOf(bindings: readonly Binding[], index: number): Device {
  const key = deviceKey(bindings[index]!);
  return { binding: index, key: key === bindings[index]!.contact ? undefined : key };
}

/** Appends the values of a binding's row but its AOR to `values`, in the order of toLocationRow's columns. */
function pushBindingValues(values: unknown[], binding: Binding): void {
  values.push(
    binding.contact, binding.expiresAt, binding.q, binding.callId, binding.cseq, formatPeer(binding.source),
    binding.connectionId ?? null, binding.instance ?? null, binding.regId ?? null, binding.userAgent ?? null,
    binding.path ?? null, binding.updatedAt,
  );
}

/** The shapes of a REGISTER of one binding, as they nearly all are: named once, not for each. */
const ONE_BINDING_SHAPES = {
  bound: { contact: 'bound 1', key: 'bound 1 keyed' },
  unbound: { contact: 'unbound 1', key: 'unbound 1 keyed' },
  maybe: { contact: 'maybe 1', key: 'maybe 1 keyed' },
};

/** A binding's values in a REGISTER's group (see pushBindingValues). */
const BINDING_VALUES = 12;

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
