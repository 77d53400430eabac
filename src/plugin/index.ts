// The plugin contract: what a feature of Parley declares (plugin.ts) and the RPC methods it may
// contribute (rpc.ts). Features, the server and the admin endpoint meet here; it imports none of them.
export * from './plugin.js';
export * from './rpc.js';
