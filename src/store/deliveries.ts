import { CompiledQuery, sql, type Kysely, type Selectable } from 'kysely';
import { CompiledStatements } from './compiled.js';
import { GroupCommit, runAll, type DeferredSync } from './group-commit.js';
import type { StatementWriter } from './sqlite-writer.js';
import { nullsAbsent } from './rows.js';
import { WaitingUsers, insertStoredMessage, toStoredMessage, type StoredMessageWriter, type WaitingBounds } from './offline.js';
import type { Database, DevicesTable, MessageDeliveriesTable, OfflineMessagesTable } from './schema.js';
import type { DeliveryCursor, DeliveryStore, PendingDelivery, RememberedDevice, StoredMessage } from './types.js';

/**
 * The rows of a message for each device of a JSON array, after the message's own insert, whose id
 * they take: the id is read once, before the first of them changes `last_insert_rowid()`.
 */
const DELIVERIES_OF_LAST_MESSAGE = `with message (id) as materialized (select last_insert_rowid())
  insert into message_deliveries (message_id, aor, device, priority) select message.id, ?, json_each.value, ? from message, json_each(?)`;
/**
 * The row of a message for its one device (most often a device asleep while the others took it),
 * after the message's own insert: a plain insert costs the writer thread less than one through a
 * JSON array (bench/devices-cpu.ts).
 */
const DELIVERY_OF_LAST_MESSAGE = 'insert into message_deliveries (message_id, aor, device, priority) values (last_insert_rowid(), ?, ?, ?)';

/**
 * Messages stored and deliveries done are group-committed: a burst of them shares one disk sync.
 * With a writer (SQLite in a file), they are written by it, off the event loop.
 */
export class DeliveryRepository implements DeliveryStore {
  private readonly commits: GroupCommit;
  private readonly statements = new CompiledStatements();
  /** The highest id of a message the writer stored, as answered: see pendingFor. */
  private answeredUpTo = 0;
  /** The devices ("aor\ndevice") that may have deliveries waiting: a registration of the others costs no store read. */
  // Counting every AOR's deliveries reads the devices that have some (as at each sweep).
  private readonly waitingDevices = new WaitingUsers(() => this.pendingCounts());
  /**
   * By device: a takeover from or to it (takeOver) whose write waits for a message being counted,
   * settled once written. The deliveries it is done with wait for it: one asked for after the
   * takeover and committed before would leave a row the move then hands on (delivered twice) or not move one.
   */
  private readonly takingOver = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly waiting: WaitingBounds,
    deferredSync?: DeferredSync,
    private readonly writer?: { statements: StatementWriter; messages: StoredMessageWriter },
  ) {
    this.commits = new GroupCommit(db, deferredSync);
  }

  /** Run for a message to a user with a remembered device (not cached in DeviceDelivery): compiled once. */
  async devicesOf(aor: string, since: number): Promise<RememberedDevice[]> {
    const query = this.statements.compile('devices of', [aor, since], ([aor, since]) =>
      this.db.selectFrom('devices').selectAll().where('aor', '=', aor as string).where('last_seen', '>=', since as number).orderBy('device'),
    );
    const { rows } = await this.db.executeQuery<Selectable<DevicesTable>>(query);
    return rows.map((row) => ({ aor: row.aor, device: row.device, contact: row.contact, lastSeen: Number(row.last_seen), ...nullsAbsent({ userAgent: row.user_agent }) }));
  }

  async aorsWithDevices(since: number): Promise<string[]> {
    const rows = await this.db.selectFrom('devices').select('aor').distinct().where('last_seen', '>=', since).execute();
    return rows.map((row) => row.aor);
  }

  /**
   * Committed in the order writes were asked for (after the messages already on their way for the
   * devices taken over): their rows move to `device` (a message waiting for two of them waits once;
   * with `receivedBefore`, only those of messages received before then, the others go), and so
   * does the latest one's remembered row, unless `device` has one; they are no longer remembered.
   * With a writer, its statements are one write of it, asked once the messages for `aor` asked
   * for before are (StoredMessageWriter.asked): committed after them and the deliveries done asked
   * for before, and before those of its devices asked for after (done waits for it), on the writer's
   * connection, so never waiting for a lock the writer holds.
   */
  takeOver(aor: string, device: string, from: readonly string[], receivedBefore?: number, sharedUpTo?: number): Promise<void> {
    return this.writeForDevice(aor, device, from, this.takeOverStatements(aor, device, from, receivedBefore, sharedUpTo));
  }

  /**
   * The rows of `from` up to its latest one now are copied for `device`, written as takeOver is (after
   * the messages for `aor` asked for before), so that `device` reads them before anything stored after.
   */
  async share(aor: string, from: string, device: string): Promise<number> {
    const latest = await this.db
      .selectFrom('message_deliveries')
      .select((eb) => eb.fn.max('message_id').as('id'))
      .where('aor', '=', aor)
      .where('device', '=', from)
      .executeTakeFirst();
    const upTo = Number(latest?.id ?? 0);
    if (upTo === 0) return 0;
    const copy = this.db
      .insertInto('message_deliveries')
      .columns(['message_id', 'aor', 'device', 'priority'])
      .expression(
        this.db.selectFrom('message_deliveries').select(['message_id', 'aor', sql.val(device).as('device'), 'priority']).where('aor', '=', aor).where('device', '=', from).where('message_id', '<=', upTo),
      )
      .onConflict((conflict) => conflict.columns(['message_id', 'device']).doNothing())
      .compile();
    await this.writeForDevice(aor, device, [from], [copy]);
    return upTo;
  }

  /** Writes `statements` that give `device` rows of `from`, in the order writes of `aor` were asked for (see takeOver). */
  private writeForDevice(aor: string, device: string, from: readonly string[], statements: CompiledQuery[]): Promise<void> {
    const stored = this.waitingDevices.storing(waitingKey(aor, device));
    let written: Promise<unknown>;
    if (this.writer) {
      const { statements: writer, messages } = this.writer;
      // A message still being counted against its recipient's limit is asked of the writer later: its rows move too.
      const counting = messages.asked(aor);
      if (counting) {
        written = counting.then(() => writer.write(statements));
        this.laterTakeOver([device, ...from], written);
      } else written = writer.write(statements);
    } else written = this.commits.run((trx) => runAll(trx, statements));
    return written.then(() => {}).finally(stored);
  }

  /**
   * A takeover of `devices` asked of the writer later than it was asked for (`written`): what they
   * are done with is asked after it (done), so that it is committed after the move, as when asked at once.
   */
  private laterTakeOver(devices: readonly string[], written: Promise<unknown>): void {
    const settled = written.then(
      () => {},
      () => {},
    );
    for (const device of devices) this.takingOver.set(device, settled);
    void settled.then(() => {
      for (const device of devices) if (this.takingOver.get(device) === settled) this.takingOver.delete(device);
    });
  }

  private takeOverStatements(aor: string, device: string, from: readonly string[], receivedBefore: number | undefined, sharedUpTo = 0): CompiledQuery[] {
    const { db } = this;
    const statements = [
      db
        .insertInto('message_deliveries')
        .columns(['message_id', 'aor', 'device', 'priority'])
        .expression((eb) => {
          let rows = eb.selectFrom('message_deliveries').select(['message_id', 'aor', sql.val(device).as('device'), 'priority']).where('aor', '=', aor).where('device', 'in', from);
          // Shared before (share): `device` has them, or took them.
          if (sharedUpTo > 0) rows = rows.where('message_id', '>', sharedUpTo);
          if (receivedBefore === undefined) return rows;
          return rows.where('message_id', 'in', eb.selectFrom('offline_messages').select('id').where('aor', '=', aor).where('received_at', '<', receivedBefore));
        })
        .onConflict((conflict) => conflict.columns(['message_id', 'device']).doNothing())
        .compile(),
      db.deleteFrom('message_deliveries').where('aor', '=', aor).where('device', 'in', from).compile(),
    ];
    if (receivedBefore !== undefined || sharedUpTo > 0) {
      statements.push(
        db
          .deleteFrom('offline_messages')
          .where('aor', '=', aor)
          .where('per_device', '=', 1)
          .where((eb) => eb.not(eb.exists(eb.selectFrom('message_deliveries').select('device').whereRef('message_id', '=', 'offline_messages.id'))))
          .compile(),
      );
    }
    statements.push(
      // The select has a WHERE: SQLite would read an ON CONFLICT right after a bare FROM as a join's ON.
      db
        .insertInto('devices')
        .columns(['aor', 'device', 'contact', 'user_agent', 'last_seen'])
        .expression((eb) =>
          eb.selectFrom('devices').select(['aor', sql.val(device).as('device'), 'contact', 'user_agent', 'last_seen']).where('aor', '=', aor).where('device', 'in', from).orderBy('last_seen', 'desc').limit(1),
        )
        .onConflict((conflict) => conflict.columns(['aor', 'device']).doNothing())
        .compile(),
      db.deleteFrom('devices').where('aor', '=', aor).where('device', 'in', from).compile(),
    );
    return statements;
  }

  mayHaveWaiting(aor: string, device: string): boolean {
    return this.waitingDevices.mayHave(waitingKey(aor, device));
  }

  async setContact(aor: string, device: string, contact: string): Promise<void> {
    await this.db.updateTable('devices').set({ contact }).where('aor', '=', aor).where('device', '=', device).execute();
  }

  /** Run for every message kept per device: its statements compiled once per number of devices. */
  async add(message: Omit<StoredMessage, 'id'>, devices: string[], priority: number, maxPerUser: number, inserted?: (id: number) => void): Promise<number | 'full'> {
    const { statements, waiting } = this;
    const stored = devices.map((device) => this.waitingDevices.storing(waitingKey(message.aor, device)));
    try {
      if (this.writer) return await this.addByWriter(this.writer.messages, message, devices, priority, maxPerUser, inserted);
      return await this.commits.run(async (trx) => {
        const id = await insertStoredMessage(trx, statements, waiting, message, maxPerUser, true);
        if (id === 'full') return id;
        inserted?.(id);
        const values = devices.flatMap((device) => [id, message.aor, device, priority]);
        const rows = statements.compile(`deliveries ${devices.length}`, values, (v) =>
          trx.insertInto('message_deliveries').values(
            devices.map((_, i) => ({ message_id: v[4 * i] as number, aor: v[4 * i + 1] as string, device: v[4 * i + 2] as string, priority: v[4 * i + 3] as number })),
          ),
        );
        await trx.executeQuery(rows);
        return id;
      });
    } finally {
      for (const done of stored) done();
    }
  }

  /** The message and its rows in one write; the id is known to pendingFor before it is told `inserted`. */
  private addByWriter(
    messages: StoredMessageWriter, message: Omit<StoredMessage, 'id'>, devices: string[], priority: number, maxPerUser: number, inserted?: (id: number) => void,
  ): Promise<number | 'full'> {
    const rows =
      devices.length === 1
        ? CompiledQuery.raw(DELIVERY_OF_LAST_MESSAGE, [message.aor, devices[0], priority])
        : CompiledQuery.raw(DELIVERIES_OF_LAST_MESSAGE, [message.aor, priority, JSON.stringify(devices)]);
    return messages.add(message, maxPerUser, true, [rows], (id) => {
      this.answeredUpTo = Math.max(this.answeredUpTo, id);
      inserted?.(id);
    });
  }

  /**
   * Run for every page of a device's queue: compiled once per page size, with or without a cursor.
   * The page size is written into the SQL (see OfflineRepository.listFor).
   */
  async pendingFor(aor: string, device: string, now: number, cursor: DeliveryCursor | undefined, limit: number): Promise<PendingDelivery[]> {
    const size = Math.floor(limit);
    const values = cursor ? [aor, device, now, cursor.priority, cursor.priority, cursor.messageId] : [aor, device, now];
    const query = this.statements.compile(`pending ${size} ${cursor !== undefined}`, values, (v) => {
      let select = this.db
        .selectFrom('message_deliveries as d')
        .innerJoin('offline_messages as m', 'm.id', 'd.message_id')
        .selectAll('m')
        .select(['d.device', 'd.priority'])
        .where('d.aor', '=', v[0] as string)
        .where('d.device', '=', v[1] as string)
        .where('m.expires_at', '>', v[2] as number);
      if (v.length > 3) {
        select = select.where((eb) =>
          eb.or([eb('d.priority', '>', v[3] as number), eb.and([eb('d.priority', '=', v[4] as number), eb('d.message_id', '>', v[5] as number)])]),
        );
      }
      return select.orderBy('d.priority').orderBy('d.message_id').limit(sql.lit(size));
    });
    const read = this.waitingDevices.reading(waitingKey(aor, device));
    const { rows } = await this.db.executeQuery<Selectable<OfflineMessagesTable> & Pick<Selectable<MessageDeliveriesTable>, 'device' | 'priority'>>(query);
    if (cursor === undefined && rows.length === 0) this.waitingDevices.foundNone(waitingKey(aor, device), read);
    // A row the writer committed is read once its caller knows its id, as a transaction's, told before
    // its commit: while the device has a message on its way to the store, the newer rows are left.
    const storing = this.writer !== undefined && this.waitingDevices.reading(waitingKey(aor, device)).storesUnderWay;
    const answered = storing ? rows.filter((row) => row.id <= this.answeredUpTo) : rows;
    return answered.map((row) => ({ message: toStoredMessage(row), device: row.device, priority: row.priority }));
  }

  /**
   * Run for every delivery a device takes, a page of its queue at a time: two statements compiled
   * once per number of messages, committed together, the second removing each message whose last
   * row is gone.
   */
  async done(messageIds: readonly number[], device: string): Promise<void> {
    if (messageIds.length === 0) return;
    const { statements, db } = this;
    const count = messageIds.length;
    const rows = statements.compile(`done ${count}`, [device, ...messageIds], ([device, ...ids]) =>
      db.deleteFrom('message_deliveries').where('device', '=', device as string).where('message_id', 'in', ids as number[]),
    );
    const messages = statements.compile(`done messages ${count}`, messageIds, (ids) =>
      db
        .deleteFrom('offline_messages')
        .where('id', 'in', ids as number[])
        .where('per_device', '=', sql.lit(1))
        .where((eb) => eb.not(eb.exists(eb.selectFrom('message_deliveries').select('device').whereRef('message_id', '=', 'offline_messages.id')))),
    );
    // On the writer too: two connections writing the file would wait for each other's lock.
    if (this.writer) {
      const takingOver = this.takingOver.get(device);
      if (takingOver) await takingOver;
      await this.writer.statements.write([rows, messages]);
    }
    else await this.commits.run((trx) => runAll(trx, [rows, messages]));
  }

  async pendingCounts(aor?: string): Promise<Array<{ aor: string; device: string; pending: number }>> {
    let query = this.db
      .selectFrom('message_deliveries')
      .select(['aor', 'device'])
      .select((eb) => eb.fn.countAll<number>().as('pending'))
      .groupBy(['aor', 'device']);
    if (aor !== undefined) query = query.where('aor', '=', aor);
    const rows = await query.execute();
    if (aor === undefined) this.waitingDevices.loaded(rows.map((row) => waitingKey(row.aor, row.device)));
    return rows.map((row) => ({ aor: row.aor, device: row.device, pending: Number(row.pending) }));
  }

  removeStale(forgetBefore: number): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const forgotten = await trx.selectFrom('devices').select('aor').distinct().where('last_seen', '<', forgetBefore).execute();
      await trx
        .deleteFrom('message_deliveries')
        .where((eb) =>
          eb.or([
            eb.exists(
              eb
                .selectFrom('devices')
                .select('devices.device')
                .whereRef('devices.aor', '=', 'message_deliveries.aor')
                .whereRef('devices.device', '=', 'message_deliveries.device')
                .where('devices.last_seen', '<', forgetBefore),
            ),
            eb.not(eb.exists(eb.selectFrom('offline_messages').select('offline_messages.id').whereRef('offline_messages.id', '=', 'message_deliveries.message_id'))),
          ]),
        )
        .execute();
      await trx.deleteFrom('devices').where('last_seen', '<', forgetBefore).execute();
      await trx
        .deleteFrom('offline_messages')
        .where('per_device', '=', 1)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('message_deliveries').select('message_deliveries.device').whereRef('message_deliveries.message_id', '=', 'offline_messages.id'))))
        .execute();
      if (forgotten.length === 0) return [];
      const aors = forgotten.map((row) => row.aor);
      const left = await trx.selectFrom('devices').select('aor').distinct().where('aor', 'in', aors).execute();
      const kept = new Set(left.map((row) => row.aor));
      return aors.filter((aor) => !kept.has(aor));
    });
  }
}

/** The key of a device's deliveries in WaitingUsers. */
function waitingKey(aor: string, device: string): string {
  return `${aor}\n${device}`;
}
