// Offline messages: the request each came in as (Call-ID, From tag, CSeq) in three typed columns,
// copied from the "callId|tag|cseq" string 007 kept (a row whose string does not read keeps none
// and is delivered under its id, as before). And server_keys: keys Parley draws once and keeps
// across restarts, such as the one sealing temporary GRUUs, so that what it handed out before a
// restart (even kill -9) still opens after it.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';
import type { StoreDriver } from '../types.js';
import { blobType } from './columns.js';

export const originColumnsServerKeys: StoreMigration = {
  async up(db: Kysely<any>, driver: StoreDriver) {
    await db.schema.alterTable('offline_messages').addColumn('origin_call_id', 'text').execute();
    await db.schema.alterTable('offline_messages').addColumn('origin_from_tag', 'text').execute();
    await db.schema.alterTable('offline_messages').addColumn('origin_cseq', 'integer').execute();
    const rows = await db.selectFrom('offline_messages').select(['id', 'origin']).where('origin', 'is not', null).execute();
    for (const { id, origin } of rows as Array<{ id: number; origin: string }>) {
      const request = requestOfOriginString(origin);
      if (!request) continue;
      await db.updateTable('offline_messages')
        .set({ origin_call_id: request.callId, origin_from_tag: request.fromTag, origin_cseq: request.cseq })
        .where('id', '=', id)
        .execute();
    }
    await db.schema.alterTable('offline_messages').dropColumn('origin').execute();

    await db.schema
      .createTable('server_keys')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('value', blobType(driver), (c) => c.notNull())
      .execute();
  },
};

/** The Call-ID, From tag and CSeq of a "callId|tag|cseq" string (neither a tag nor a number holds "|", nor does a Call-ID). */
function requestOfOriginString(origin: string): { callId: string; fromTag: string; cseq: number } | undefined {
  const seqAt = origin.lastIndexOf('|');
  const tagAt = origin.lastIndexOf('|', seqAt - 1);
  const cseq = Number(origin.slice(seqAt + 1));
  if (tagAt <= 0 || !Number.isSafeInteger(cseq) || cseq < 0 || cseq >= 2 ** 31) return undefined;
  return { callId: origin.slice(0, tagAt), fromTag: origin.slice(tagAt + 1, seqAt), cseq };
}
