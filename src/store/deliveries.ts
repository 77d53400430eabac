import { sql, type Kysely, type Selectable } from 'kysely';
import { CompiledStatements } from './compiled.js';
import { GroupCommit } from './group-commit.js';
import { nullsAbsent } from './rows.js';
import { insertStoredMessage, toStoredMessage } from './offline.js';
import type { Database, DevicesTable } from './schema.js';
import type { DeliveryCursor, DeliveryStore, PendingDelivery, RememberedDevice, StoredMessage } from './types.js';

/** Messages stored and deliveries done are group-committed: a burst of them shares one disk sync. */
export class DeliveryRepository implements DeliveryStore {
  private readonly commits: GroupCommit;
  private readonly statements = new CompiledStatements();

  constructor(private readonly db: Kysely<Database>) {
    this.commits = new GroupCommit(db);
  }

  /** Run for every message to a user with a device known by +sip.instance: compiled once. */
  async devicesOf(aor: string, since: number): Promise<RememberedDevice[]> {
    const query = this.statements.compile('devices of', [aor, since], ([aor, since]) =>
      this.db.selectFrom('devices').selectAll().where('aor', '=', aor as string).where('last_seen', '>=', since as number).orderBy('device'),
    );
    const { rows } = await this.db.executeQuery<Selectable<DevicesTable>>(query);
    return rows.map((row) => ({ aor: row.aor, device: row.device, contact: row.contact, lastSeen: Number(row.last_seen), ...nullsAbsent({ userAgent: row.user_agent }) }));
  }

  async aorsWithInstanceDevices(since: number): Promise<string[]> {
    const rows = await this.db.selectFrom('devices').select('aor').distinct().where('device', 'like', 'urn:%').where('last_seen', '>=', since).execute();
    return rows.map((row) => row.aor);
  }

  async setContact(aor: string, device: string, contact: string): Promise<void> {
    await this.db.updateTable('devices').set({ contact }).where('aor', '=', aor).where('device', '=', device).execute();
  }

  add(message: Omit<StoredMessage, 'id'>, devices: string[], priority: number, maxPerUser: number): Promise<number | 'full'> {
    return this.commits.run(async (trx) => {
      const id = await insertStoredMessage(trx, message, maxPerUser, true);
      if (id === 'full') return id;
      await trx
        .insertInto('message_deliveries')
        .values(devices.map((device) => ({ message_id: id, aor: message.aor, device, priority })))
        .execute();
      return id;
    });
  }

  async pendingFor(aor: string, device: string, now: number, cursor: DeliveryCursor | undefined, limit: number): Promise<PendingDelivery[]> {
    let query = this.db
      .selectFrom('message_deliveries as d')
      .innerJoin('offline_messages as m', 'm.id', 'd.message_id')
      .selectAll('m')
      .select(['d.device', 'd.priority'])
      .where('d.aor', '=', aor)
      .where('d.device', '=', device)
      .where('m.expires_at', '>', now);
    if (cursor) {
      query = query.where((eb) =>
        eb.or([eb('d.priority', '>', cursor.priority), eb.and([eb('d.priority', '=', cursor.priority), eb('d.message_id', '>', cursor.messageId)])]),
      );
    }
    const rows = await query.orderBy('d.priority').orderBy('d.message_id').limit(limit).execute();
    return rows.map((row) => ({ message: toStoredMessage(row), device: row.device, priority: row.priority }));
  }

  /**
   * Run for every delivery a device takes: two statements compiled once (see CompiledStatements) on
   * the transaction's own connection, the second removing the message once its last row is gone.
   */
  done(messageId: number, device: string): Promise<void> {
    const statements = this.statements;
    return this.commits.run(async (trx) => {
      const row = statements.compile('done', [messageId, device], ([id, device]) =>
        trx.deleteFrom('message_deliveries').where('message_id', '=', id as number).where('device', '=', device as string),
      );
      const message = statements.compile('done message', [messageId, messageId], ([id, rowsOf]) =>
        trx
          .deleteFrom('offline_messages')
          .where('id', '=', id as number)
          .where('per_device', '=', sql.lit(1))
          .where((eb) => eb.not(eb.exists(eb.selectFrom('message_deliveries').select('device').where('message_id', '=', rowsOf as number)))),
      );
      await trx.getExecutor().provideConnection(async (connection) => {
        await connection.executeQuery(row);
        await connection.executeQuery(message);
      });
    });
  }

  async pendingCounts(aor?: string): Promise<Array<{ aor: string; device: string; pending: number }>> {
    let query = this.db
      .selectFrom('message_deliveries')
      .select(['aor', 'device'])
      .select((eb) => eb.fn.countAll<number>().as('pending'))
      .groupBy(['aor', 'device']);
    if (aor !== undefined) query = query.where('aor', '=', aor);
    const rows = await query.execute();
    return rows.map((row) => ({ aor: row.aor, device: row.device, pending: Number(row.pending) }));
  }

  removeStale(forgetBefore: number): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const forgotten = await trx.selectFrom('devices').select('aor').distinct()
        .where('device', 'like', 'urn:%').where('last_seen', '<', forgetBefore).execute();
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
      const left = await trx.selectFrom('devices').select('aor').distinct().where('device', 'like', 'urn:%').where('aor', 'in', aors).execute();
      const kept = new Set(left.map((row) => row.aor));
      return aors.filter((aor) => !kept.has(aor));
    });
  }
}
