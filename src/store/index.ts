export { openStore } from './open.js';
export { StoreError } from './types.js';
export type * from './types.js';
