// Offline messages: a row that is a copy of what its AOR sent from another device (own-message
// sync, relay/sync.ts), delivered with X-Parley-Copy: sent so the device shows it as sent.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

export const offlineSentCopy: StoreMigration = {
  async up(db: Kysely<any>) {
    await db.schema.alterTable('offline_messages').addColumn('sent_copy', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  },
};
