export { openForeignDatabase, openStore, type OpenStoreOptions } from './open.js';
export { STORE_RETRY_AFTER_SECONDS, isStoreUnavailable, logBackgroundFailure } from './availability.js';
export { readImcTables } from './rooms.js';
export { readPurplemapTable } from './accounts.js';
export { readPurplemapDump } from './mysql-dump.js';
export { StoreError, deviceKey, instanceUrn, isContactOfDevice, isInstanceDevice } from './types.js';
export type * from './types.js';
