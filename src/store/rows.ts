// Row-level helpers shared by the repositories.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

type NullableKeys<T> = { [K in keyof T]: null extends T[K] ? K : never }[keyof T];

/** Nullable columns become absent optional fields rather than fields holding null. */
export type NullsAbsent<T> = Omit<T, NullableKeys<T>> & { [K in NullableKeys<T>]?: Exclude<T[K], null> };

export function nullsAbsent<T extends object>(values: T): NullsAbsent<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== null)) as NullsAbsent<T>;
}

type ExpiringTable = { [T in keyof Database]: Database[T] extends { expires_at: number } ? T : never }[keyof Database];

/** The statement deleting the rows of a table whose expires_at <= now. */
export function expiredRows(db: Kysely<Database>, table: ExpiringTable, now: number) {
  return db.deleteFrom(table).where('expires_at', '<=', now);
}

/** Deletes the rows of a table whose expires_at <= now; returns how many. */
export async function deleteExpired(db: Kysely<Database>, table: ExpiringTable, now: number): Promise<number> {
  const result = await expiredRows(db, table, now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
