// The tables every REGISTER writes (locations, known_aors, devices) become WITHOUT ROWID on SQLite:
// each row is stored once, in its primary key's B-tree, rather than in the table's rowid B-tree and
// again in the index SQLite keeps for a primary key that is not an integer. A new user's REGISTER
// then writes four B-trees rather than seven (devices keeps its last_seen index, which the sweeps of
// remembered devices read), and with each the pages its commit writes to the log. SQLite has no
// ALTER for it: each table is copied into a new one, dropped, and the new one renamed, every row
// kept, in one transaction. PostgreSQL has no rowid: its tables stay as they are.
import { sql, type CreateTableBuilder, type Kysely } from 'kysely';
import type { StoreMigration } from './index.js';

interface RebuiltTable {
  name: string;
  columns: readonly string[];
  /** The table as 001_core and 010_device_deliveries made it, under `name`, without its rowid. */
  create(table: CreateTableBuilder<string, never>): CreateTableBuilder<string, string>;
  indexes?: (db: Kysely<any>) => Promise<void>;
}

const TABLES: readonly RebuiltTable[] = [
  {
    name: 'locations',
    columns: ['aor', 'contact', 'expires_at', 'q', 'call_id', 'cseq', 'source', 'connection_id', 'instance', 'reg_id', 'user_agent', 'path', 'updated_at'],
    create: (table) =>
      table
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
        .addPrimaryKeyConstraint('locations_pk', ['aor', 'contact']),
  },
  {
    name: 'known_aors',
    columns: ['aor', 'first_seen'],
    create: (table) => table.addColumn('aor', 'text', (c) => c.primaryKey()).addColumn('first_seen', 'bigint', (c) => c.notNull()),
  },
  {
    name: 'devices',
    columns: ['aor', 'device', 'contact', 'user_agent', 'last_seen'],
    create: (table) =>
      table
        .addColumn('aor', 'text', (c) => c.notNull())
        .addColumn('device', 'text', (c) => c.notNull())
        .addColumn('contact', 'text', (c) => c.notNull())
        .addColumn('user_agent', 'text')
        .addColumn('last_seen', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('devices_pk', ['aor', 'device']),
    indexes: async (db) => {
      await db.schema.createIndex('devices_last_seen').on('devices').column('last_seen').execute();
    },
  },
];

export const registrationTablesWithoutRowid: StoreMigration = {
  async up(db: Kysely<any>, driver) {
    if (driver !== 'sqlite') return;
    // SQLite DDL is transactional, but the migrator runs SQLite migrations outside a transaction:
    // stopped half-way (kill -9), the file keeps every table as it was, and the migration runs again.
    await db.transaction().execute(async (trx) => {
      for (const { name, columns, create, indexes } of TABLES) {
        const rebuilt = `${name}_without_rowid`;
        await create(trx.schema.createTable(rebuilt)).modifyEnd(sql`without rowid`).execute();
        const list = sql.join(columns.map((column) => sql.ref(column)));
        await sql`insert into ${sql.table(rebuilt)} (${list}) select ${list} from ${sql.table(name)}`.execute(trx);
        // Its indexes go with it; they are made again on the new table.
        await trx.schema.dropTable(name).execute();
        await trx.schema.alterTable(rebuilt).renameTo(name).execute();
        await indexes?.(trx);
      }
    });
  },
};
