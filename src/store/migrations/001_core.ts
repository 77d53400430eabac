// Users, registrations and offline messages.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';
import type { StoreDriver } from '../types.js';
import { blobType, withIdColumn } from './columns.js';

export const core: StoreMigration = {
  async up(db: Kysely<any>, driver: StoreDriver) {
    await db.schema
      .createTable('users')
      .addColumn('username', 'text', (c) => c.notNull())
      .addColumn('domain', 'text', (c) => c.notNull())
      .addColumn('ha1_md5', 'text', (c) => c.notNull())
      .addColumn('ha1_sha256', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('users_pk', ['username', 'domain'])
      .execute();

    await db.schema
      .createTable('locations')
      .addColumn('aor', 'text', (c) => c.notNull())
      .addColumn('contact', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('q', 'real', (c) => c.notNull())
      .addColumn('call_id', 'text', (c) => c.notNull())
      .addColumn('cseq', 'integer', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('connection_id', 'text')
      .addColumn('instance', 'text')
      .addColumn('reg_id', 'integer')
      .addColumn('user_agent', 'text')
      .addColumn('path', 'text')
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('locations_pk', ['aor', 'contact'])
      .execute();

    await db.schema
      .createTable('known_aors')
      .addColumn('aor', 'text', (c) => c.primaryKey())
      .addColumn('first_seen', 'bigint', (c) => c.notNull())
      .execute();

    await withIdColumn(db.schema.createTable('offline_messages'), driver)
      .addColumn('aor', 'text', (c) => c.notNull())
      .addColumn('from_header', 'text', (c) => c.notNull())
      .addColumn('to_header', 'text', (c) => c.notNull())
      .addColumn('content_type', 'text', (c) => c.notNull())
      .addColumn('body', blobType(driver), (c) => c.notNull())
      .addColumn('received_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema.createIndex('offline_messages_aor').on('offline_messages').column('aor').execute();
  },
};
