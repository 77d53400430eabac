import type { Kysely } from 'kysely';
import { GroupCommit, type DeferredSync } from './group-commit.js';
import type { Database } from './schema.js';
import type { ReceiptIdStore, StoredReceiptId } from './types.js';

export class ReceiptIdRepository implements ReceiptIdStore {
  /** A burst of messages asking for receipts shares a commit. */
  private readonly commits: GroupCommit;

  constructor(private readonly db: Kysely<Database>, deferredSync?: DeferredSync) {
    this.commits = new GroupCommit(db, deferredSync);
  }

  put(receipt: StoredReceiptId, maxPerOwner: number, committed?: () => void): Promise<void> {
    const { direction, messageId, owner, entry, createdAt } = receipt;
    return this.commits.run(async (trx) => {
      await trx.deleteFrom('receipt_ids').where('direction', '=', direction).where('message_id', '=', messageId).execute();
      const { id } = await trx
        .insertInto('receipt_ids')
        .values({ direction, message_id: messageId, owner, entry, created_at: createdAt })
        .returning('id')
        .executeTakeFirstOrThrow();
      // The owner's oldest beyond the bound: everything at or below the id `maxPerOwner` rows back.
      const oldestKept = await trx
        .selectFrom('receipt_ids')
        .select('id')
        .where('owner', '=', owner)
        .where('id', '<=', id)
        .orderBy('id', 'desc')
        .offset(maxPerOwner - 1)
        .limit(1)
        .executeTakeFirst();
      if (oldestKept) await trx.deleteFrom('receipt_ids').where('owner', '=', owner).where('id', '<', oldestKept.id).execute();
    }, committed);
  }

  async get(direction: string, messageId: string, notBefore: number): Promise<StoredReceiptId | undefined> {
    const row = await this.db
      .selectFrom('receipt_ids')
      .select(['owner', 'entry', 'created_at'])
      .where('direction', '=', direction)
      .where('message_id', '=', messageId)
      .where('created_at', '>=', notBefore)
      .executeTakeFirst();
    return row && { direction, messageId, owner: row.owner, entry: row.entry, createdAt: row.created_at };
  }

  update(direction: string, messageId: string, entry: string): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx.updateTable('receipt_ids').set({ entry }).where('direction', '=', direction).where('message_id', '=', messageId).execute();
    });
  }

  remove(direction: string, messageId: string): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx.deleteFrom('receipt_ids').where('direction', '=', direction).where('message_id', '=', messageId).execute();
    });
  }

  async expire(before: number): Promise<number> {
    const result = await this.db.deleteFrom('receipt_ids').where('created_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
