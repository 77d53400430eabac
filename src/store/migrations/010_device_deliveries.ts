// Durable per-device delivery: the devices an AOR was seen registering from (its +sip.instance, or
// its contact without one), remembered after they unregister; and per stored message one row per
// device that has still to take it. A message with per_device = 0 (every row stored before this
// migration, and those for users without a remembered device) goes, as before, to whichever device
// of the AOR registers next.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

export const deviceDeliveries: StoreMigration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('devices')
      .addColumn('aor', 'text', (c) => c.notNull())
      .addColumn('device', 'text', (c) => c.notNull())
      .addColumn('contact', 'text', (c) => c.notNull())
      .addColumn('user_agent', 'text')
      .addColumn('last_seen', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('devices_pk', ['aor', 'device'])
      .execute();
    await db.schema.createIndex('devices_last_seen').on('devices').column('last_seen').execute();
    await db.schema.alterTable('offline_messages').addColumn('per_device', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema
      .createTable('message_deliveries')
      .addColumn('message_id', 'bigint', (c) => c.notNull())
      .addColumn('aor', 'text', (c) => c.notNull())
      .addColumn('device', 'text', (c) => c.notNull())
      .addColumn('priority', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('message_deliveries_pk', ['message_id', 'device'])
      .execute();
    await db.schema
      .createIndex('message_deliveries_queue')
      .on('message_deliveries')
      .columns(['aor', 'device', 'priority', 'message_id'])
      .execute();
  },
};
