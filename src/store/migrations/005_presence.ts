// The presence agent's publications (RFC 3903) and subscription dialogs (RFC 6665), kept so that a
// restart neither forgets what users published nor leaves their watchers without NOTIFYs.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';
import type { StoreDriver } from '../types.js';
import { withIdColumn } from './columns.js';

export const presence: StoreMigration = {
  async up(db: Kysely<any>, driver: StoreDriver) {
    // The id is the order publications were first made in, which is the order their notes compose in.
    await withIdColumn(db.schema.createTable('presence_publications'), driver)
      .addColumn('presentity', 'text', (c) => c.notNull())
      .addColumn('etag', 'text', (c) => c.notNull())
      .addColumn('document', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('presence_subscriptions')
      .addColumn('call_id', 'text', (c) => c.notNull())
      .addColumn('local_tag', 'text', (c) => c.notNull())
      .addColumn('remote_tag', 'text', (c) => c.notNull())
      .addColumn('presentity', 'text', (c) => c.notNull())
      .addColumn('watcher', 'text', (c) => c.notNull())
      .addColumn('local_header', 'text', (c) => c.notNull())
      .addColumn('remote_header', 'text', (c) => c.notNull())
      .addColumn('event', 'text', (c) => c.notNull())
      .addColumn('route_set', 'text', (c) => c.notNull())
      .addColumn('contact', 'text', (c) => c.notNull())
      .addColumn('remote_target', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('remote_cseq', 'bigint', (c) => c.notNull())
      .addColumn('local_cseq', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('presence_subscriptions_pk', ['call_id', 'local_tag', 'remote_tag'])
      .execute();
  },
};
