// The shape of one schema migration (listed in order in index.ts).
import type { Kysely } from 'kysely';
import type { StoreDriver } from '../types.js';

export interface StoreMigration {
  // Kysely<any>: a migration works on the schema as it was at its version, not on today's Database type.
  up(db: Kysely<any>, driver: StoreDriver): Promise<void>;
}
