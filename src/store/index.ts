export { openForeignDatabase, openStore } from './open.js';
export { readImcTables } from './rooms.js';
export { readPurplemapTable } from './accounts.js';
export { readPurplemapDump } from './mysql-dump.js';
export { StoreError } from './types.js';
export type * from './types.js';
