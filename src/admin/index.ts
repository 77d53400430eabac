// Management: the JSON-RPC and Prometheus endpoint, and where its token is kept.
export { AdminServer, type ManagedServer } from './server.js';
export { RpcErrorCode } from './rpc.js';
export { readTokenFile, tokenFilePath } from './token.js';
