// The group chats (XMPP rooms, IRC channels) SIP users joined through their linked accounts, so
// that the gateway joins them again after a restart. Keyed by the account's id in the account map.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

export const gatewayRooms: StoreMigration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('gateway_rooms')
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('room', 'text', (c) => c.notNull())
      .addColumn('nick', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('gateway_rooms_pk', ['account_id', 'room'])
      .execute();
  },
};
