// Column shapes that differ between the two drivers.
import type { ColumnDefinitionBuilder, CreateTableBuilder } from 'kysely';
import type { StoreDriver } from '../types.js';

/**
 * An auto-increment primary key "id". SQLite's AUTOINCREMENT never reuses the id of a deleted
 * row, as a sequence never does on PostgreSQL.
 */
export function withIdColumn<T extends string>(table: CreateTableBuilder<T, never>, driver: StoreDriver): CreateTableBuilder<T, 'id'> {
  return table.addColumn('id', driver === 'postgres' ? 'bigserial' : 'integer', (c: ColumnDefinitionBuilder) =>
    driver === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
  );
}

export function blobType(driver: StoreDriver): 'bytea' | 'blob' {
  return driver === 'postgres' ? 'bytea' : 'blob';
}
