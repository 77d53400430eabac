import type { Kysely } from 'kysely';
import { loadConfig, type Config } from '../config/index.js';
import type { Store } from '../store/index.js';
import { CONFIG_OPTION, DB_OPTION, HELP_OPTION } from './args.js';

/** The options of the commands that work on the database: --config, --db and --help. */
export const STORE_OPTIONS = { ...HELP_OPTION, ...CONFIG_OPTION, ...DB_OPTION } as const;

/** The configuration, with --db in place of its database when given. */
export function loadStoreConfig(values: { config?: string; db?: string }): Config {
  return loadConfig(values.config, { database: values.db });
}

/** Runs `use` with the configured store open, and closes it whatever happens. */
export async function withStore<T>(config: Config, use: (store: Store) => Promise<T>): Promise<T> {
  // Loaded only here so that the other commands do not load the database drivers.
  const { openStore } = await import('../store/index.js');
  // A command serves no REGISTER: its bindings writes, if any, need no thread of their own.
  const store = await openStore(config.database, { queryTimeout: config.database_timeout, writerThread: false });
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** Runs `read` on another program's database (Kamailio's, to import from), and closes it whatever happens. */
export async function withForeignDatabase<T>(url: string, read: (db: Kysely<any>) => Promise<T>): Promise<T> {
  // Loaded only here so that the other commands do not load the database drivers.
  const { openForeignDatabase } = await import('../store/index.js');
  const db = await openForeignDatabase(url);
  try {
    return await read(db);
  } finally {
    await db.destroy();
  }
}
