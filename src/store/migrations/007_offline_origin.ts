// Offline messages: what names the request each came in (Call-ID, From tag, CSeq), from which the
// identity of its delivery is derived, so that a retransmission stored again after a restart reaches
// the recipient as the same request. Rows stored before have none and are delivered under their id.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

export const offlineOrigin: StoreMigration = {
  async up(db: Kysely<any>) {
    await db.schema.alterTable('offline_messages').addColumn('origin', 'text').execute();
  },
};
