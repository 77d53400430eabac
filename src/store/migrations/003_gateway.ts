// The per-user gateway's account map: Kamailio purple's `purplemap` table (id, sip_user, ext_user,
// ext_prot, ext_pass) with Parley's own columns beside the seed's. ext_pass holds the password
// sealed with AES-256-GCM (src/gateway/secrets.ts), never the password itself.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';
import type { StoreDriver } from '../types.js';
import { withIdColumn } from './columns.js';

/**
 * The account map under the name `table`: the migration makes the default `purplemap`, and
 * gateway.db_table names another, made the same way (ifNotExists) the first time it is used.
 */
export async function createAccountMapTable(db: Kysely<any>, driver: StoreDriver, table: string, ifNotExists = false): Promise<void> {
  const create = db.schema.createTable(table);
  await withIdColumn(ifNotExists ? create.ifNotExists() : create, driver)
    .addColumn('sip_user', 'text', (c) => c.notNull())
    .addColumn('ext_user', 'text', (c) => c.notNull())
    .addColumn('ext_prot', 'text', (c) => c.notNull())
    .addColumn('ext_pass', 'text')
    .addColumn('server', 'text')
    .addColumn('port', 'integer')
    .addColumn('tls', 'text', (c) => c.notNull().defaultTo('starttls'))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  const index = db.schema.createIndex(`${table}_account`);
  await (ifNotExists ? index.ifNotExists() : index).on(table).columns(['sip_user', 'ext_prot', 'ext_user']).unique().execute();
}

export const gateway: StoreMigration = {
  async up(db: Kysely<any>, driver: StoreDriver) {
    await createAccountMapTable(db, driver, 'purplemap');
  },
};
