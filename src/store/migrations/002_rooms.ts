// Parley's own room tables: topics, nicknames, history. The Kamailio-compatible imc_rooms and
// imc_members tables are created by the room repository under their configured names.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';
import type { StoreDriver } from '../types.js';
import { blobType, withIdColumn } from './columns.js';

export const rooms: StoreMigration = {
  async up(db: Kysely<any>, driver: StoreDriver) {
    await db.schema
      .createTable('parley_imc_rooms')
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('domain', 'text', (c) => c.notNull())
      .addColumn('topic', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('parley_imc_rooms_pk', ['name', 'domain'])
      .execute();
    await db.schema
      .createTable('parley_imc_members')
      .addColumn('room', 'text', (c) => c.notNull())
      .addColumn('username', 'text', (c) => c.notNull())
      .addColumn('domain', 'text', (c) => c.notNull())
      .addColumn('nick', 'text')
      .addPrimaryKeyConstraint('parley_imc_members_pk', ['room', 'username', 'domain'])
      .execute();
    await withIdColumn(db.schema.createTable('parley_imc_history'), driver)
      .addColumn('room', 'text', (c) => c.notNull())
      .addColumn('sender', 'text', (c) => c.notNull())
      .addColumn('nick', 'text', (c) => c.notNull())
      .addColumn('content_type', 'text', (c) => c.notNull())
      .addColumn('body', blobType(driver), (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('parley_imc_history_room').on('parley_imc_history').columns(['room', 'id']).execute();
  },
};
