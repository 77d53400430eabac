// Which message is which across a gateway, for the receipts still to come (IMDN on SIP, XEP-0184
// receipts and XEP-0333 markers on XMPP), kept so that a receipt arriving after a restart (kill -9
// too) still reaches the sender of the message it is about. `seq` orders a user's rows, oldest
// first, for the per-user bound; rows expire with created_at.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';
import { withIdColumn } from './columns.js';

export const receiptIds: StoreMigration = {
  async up(db: Kysely<any>, driver) {
    await withIdColumn(db.schema.createTable('receipt_ids'), driver)
      .addColumn('direction', 'text', (c) => c.notNull())
      .addColumn('message_id', 'text', (c) => c.notNull())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('entry', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('receipt_ids_message', ['direction', 'message_id'])
      .execute();
    await db.schema.createIndex('receipt_ids_owner').on('receipt_ids').columns(['owner', 'id']).execute();
    await db.schema.createIndex('receipt_ids_created').on('receipt_ids').column('created_at').execute();
  },
};
