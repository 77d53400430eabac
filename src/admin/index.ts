// Management: the JSON-RPC, Prometheus and health endpoint, and where its token is kept.
export { AdminServer, type AdminContent } from './server.js';
export { ADMIN, adminPlugin } from './plugin.js';
export { RpcErrorCode } from '../plugin/index.js';
export { readTokenFile, tokenFilePath } from './token.js';
