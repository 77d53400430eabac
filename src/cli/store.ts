import type { Config } from '../config/index.js';
import type { Store } from '../store/index.js';

/** Runs `use` with the configured store open, and closes it whatever happens. */
export async function withStore<T>(config: Config, use: (store: Store) => Promise<T>): Promise<T> {
  // Loaded only here so that the other commands do not load the database drivers.
  const { openStore } = await import('../store/index.js');
  const store = await openStore(config.database);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}
