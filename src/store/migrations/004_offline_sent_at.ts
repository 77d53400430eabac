// Offline messages: received_at becomes Parley's own receive time, which the per-user limit and the
// expiry count from; the sender's Date, shown to the recipient, moves to sent_at. Rows stored before
// kept the sender's Date in received_at, so it is copied over to keep what recipients are shown.
// The (aor, id) index serves delivery page by page.
import { sql, type Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

export const offlineSentAt: StoreMigration = {
  async up(db: Kysely<any>) {
    await db.schema.alterTable('offline_messages').addColumn('sent_at', 'bigint').execute();
    await db.updateTable('offline_messages').set({ sent_at: sql`received_at` }).execute();
    await db.schema.createIndex('offline_messages_aor_id').on('offline_messages').columns(['aor', 'id']).execute();
    await db.schema.dropIndex('offline_messages_aor').execute();
  },
};
