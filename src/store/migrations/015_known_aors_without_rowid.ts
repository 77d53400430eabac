// known_aors becomes WITHOUT ROWID on SQLite: each row is stored once, in its primary key's B-tree,
// rather than in the table's rowid B-tree and again in the index SQLite keeps for a text primary
// key, so a new user's first REGISTER writes one B-tree less. Its rows are small and never updated.
// locations and devices stay rowid tables: a refresh updates their rows, and SQLite overwrites a
// rowid table's row where it is, where it deletes and inserts again a WITHOUT ROWID table's (pages
// split and merged, more of them written). SQLite has no ALTER for it: the table is copied into a
// new one, dropped, and the new one renamed, every row kept, in one transaction. PostgreSQL has no
// rowid: its table stays as it is.
import { sql, type Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

export const knownAorsWithoutRowid: StoreMigration = {
  async up(db: Kysely<any>, driver) {
    if (driver !== 'sqlite') return;
    // The migrator runs SQLite migrations outside a transaction: stopped half-way (kill -9), the
    // file keeps the table as it was, and the migration runs again.
    await db.transaction().execute(async (trx) => {
      await trx.schema
        .createTable('known_aors_without_rowid')
        .addColumn('aor', 'text', (c) => c.primaryKey())
        .addColumn('first_seen', 'bigint', (c) => c.notNull())
        .modifyEnd(sql`without rowid`)
        .execute();
      await sql`insert into known_aors_without_rowid (aor, first_seen) select aor, first_seen from known_aors`.execute(trx);
      await trx.schema.dropTable('known_aors').execute();
      await trx.schema.alterTable('known_aors_without_rowid').renameTo('known_aors').execute();
    });
  },
};
