// What the gateways tell the presence agent (the presence of their networks' users, by source) and
// who on their networks watches SIP users, kept so that a restart neither forgets an XMPP contact's
// "away" nor the XMPP watchers of a SIP user.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

export const presenceGateways: StoreMigration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('presence_gateway_states')
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('presentity', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('presence_gateway_states_pk', ['source', 'presentity'])
      .execute();
    await db.schema
      .createTable('presence_gateway_watchers')
      .addColumn('network', 'text', (c) => c.notNull())
      .addColumn('presentity', 'text', (c) => c.notNull())
      .addColumn('watcher', 'text', (c) => c.notNull())
      .addColumn('alias', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('presence_gateway_watchers_pk', ['network', 'presentity', 'watcher'])
      .execute();
  },
};
