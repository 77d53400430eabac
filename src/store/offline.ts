import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { CompiledStatements } from './compiled.js';
import { deleteExpired, nullsAbsent } from './rows.js';
import type { Database, OfflineMessagesTable } from './schema.js';
import type { OfflineStore, StoredMessage } from './types.js';

export class OfflineRepository implements OfflineStore {
  private readonly statements = new CompiledStatements();

  constructor(private readonly db: Kysely<Database>) {}

  add(message: Omit<StoredMessage, 'id'>, maxPerUser: number): Promise<number | 'full'> {
    return this.db.transaction().execute((trx) => insertStoredMessage(trx, message, maxPerUser, false));
  }

  /**
   * Run on every REGISTER (to deliver what waits for the user): compiled once per page shape, see
   * CompiledStatements. The page size is written into the SQL: SQLite prepares a statement whose
   * LIMIT is a parameter anew each time another value is bound to it, which cost more than the query.
   * `anyDevice`: only the messages for whichever device registers next (not kept per device).
   */
  async listFor(aor: string, now: number, page: { afterId: number; limit: number; anyDevice?: boolean }): Promise<StoredMessage[]> {
    const limit = Math.floor(page.limit);
    const anyDevice = page.anyDevice === true;
    const query = this.statements.compile(`list ${limit} ${anyDevice}`, [aor, now, page.afterId], ([aor, now, afterId]) => {
      let select = this.db
        .selectFrom('offline_messages')
        .selectAll()
        .where('aor', '=', aor as string)
        .where('expires_at', '>', now as number)
        .where('id', '>', afterId as number);
      if (anyDevice) select = select.where('per_device', '=', 0);
      return select.orderBy('id').limit(sql.lit(limit));
    });
    const { rows } = await this.db.executeQuery<Selectable<OfflineMessagesTable>>(query);
    return rows.map(toStoredMessage);
  }

  async remove(id: number): Promise<void> {
    await this.db.deleteFrom('offline_messages').where('id', '=', id).execute();
  }

  removeExpired(now: number): Promise<number> {
    return deleteExpired(this.db, 'offline_messages', now);
  }

  /** Every stored message of the AOR, expired ones not yet removed included. */
  async count(aor: string): Promise<number> {
    const { stored } = await this.db
      .selectFrom('offline_messages')
      .select((eb) => eb.fn.countAll<number>().as('stored'))
      .where('aor', '=', aor)
      .executeTakeFirstOrThrow();
    return stored;
  }
}

/**
 * Inserts a stored message unless its recipient has maxPerUser waiting. Messages already expired
 * when this one arrives do not take up the recipient's quota, so a sweep that has not run yet
 * cannot make a mailbox look full. On PostgreSQL two concurrent adds for one recipient may both
 * pass the check (read committed). `perDevice`: delivered per device (message_deliveries) rather
 * than to whichever device registers next.
 */
export async function insertStoredMessage(trx: Transaction<Database>, message: Omit<StoredMessage, 'id'>, maxPerUser: number, perDevice: boolean): Promise<number | 'full'> {
  const { waiting } = await trx
    .selectFrom('offline_messages')
    .select((eb) => eb.fn.countAll<number>().as('waiting'))
    .where('aor', '=', message.aor)
    .where('expires_at', '>', message.receivedAt)
    .executeTakeFirstOrThrow();
  if (waiting >= maxPerUser) return 'full';
  const { id } = await trx
    .insertInto('offline_messages')
    .values({
      aor: message.aor,
      from_header: message.fromHeader,
      to_header: message.toHeader,
      content_type: message.contentType,
      body: message.body,
      received_at: message.receivedAt,
      sent_at: message.sentAt ?? null,
      expires_at: message.expiresAt,
      origin_call_id: message.origin?.callId ?? null,
      origin_from_tag: message.origin?.fromTag ?? null,
      origin_cseq: message.origin?.cseq ?? null,
      per_device: perDevice ? 1 : 0,
      sent_copy: message.sentCopy ? 1 : 0,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

export function toStoredMessage(row: Selectable<OfflineMessagesTable>): StoredMessage {
  return {
    id: row.id,
    aor: row.aor,
    fromHeader: row.from_header,
    toHeader: row.to_header,
    contentType: row.content_type,
    body: row.body,
    receivedAt: row.received_at,
    expiresAt: row.expires_at,
    ...nullsAbsent({ sentAt: row.sent_at }),
    ...(row.origin_call_id !== null && row.origin_from_tag !== null && row.origin_cseq !== null
      ? { origin: { callId: row.origin_call_id, fromTag: row.origin_from_tag, cseq: Number(row.origin_cseq) } }
      : {}),
    ...(row.sent_copy === 1 ? { sentCopy: true } : {}),
  };
}
