export { openForeignDatabase, openStore } from './open.js';
export { readImcTables } from './rooms.js';
export { StoreError } from './types.js';
export type * from './types.js';
