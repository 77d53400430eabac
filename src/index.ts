// Parley as a library: build a server from a config, add handlers, start it.
export { createServer, ParleyServer, type ServerOptions, type RequestHandler } from './server/index.js';
export { loadConfig, defaultConfig, ConfigError, type Config } from './config/index.js';
export { createLogger, reportInternalError, type Logger } from './log/index.js';
export { openStore, type Store } from './store/index.js';
export * as sip from './sip/index.js';
