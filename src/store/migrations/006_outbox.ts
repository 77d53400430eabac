// The outbox: messages Parley acknowledged (a room post answered 200, a gateway MESSAGE answered
// 202) and has not delivered to every recipient yet, so that a restart, even after kill -9, still
// delivers them. One row per message with its recipients; outbox_cursors holds, per recipient of a
// row still pending for others, the last row delivered to it (each recipient gets rows in id order).
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';
import type { StoreDriver } from '../types.js';
import { blobType, withIdColumn } from './columns.js';

export const outbox: StoreMigration = {
  async up(db: Kysely<any>, driver: StoreDriver) {
    await withIdColumn(db.schema.createTable('outbox'), driver)
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('recipients', 'text', (c) => c.notNull())
      .addColumn('payload', blobType(driver), (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('outbox_kind_id').on('outbox').columns(['kind', 'id']).execute();
    await db.schema
      .createTable('outbox_cursors')
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('recipient', 'text', (c) => c.notNull())
      .addColumn('done_id', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('outbox_cursors_pk', ['kind', 'recipient'])
      .execute();
  },
};
