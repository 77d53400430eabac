// Parley as a library: build a server from a config and a list of plugins, start it.
export {
  createServer, defaultPlugins, serviceKey, ParleyServer, PluginError, type ServerOptions, type ParleyPlugin, type PluginContext,
  type PluginRoute, type RequestHandler, type ServiceKey, type Metric, type PluginHealth,
} from './server/index.js';
export { RELAY } from './relay/plugin.js';
export type { Relay } from './relay/index.js';
export { REGISTRAR } from './registrar/plugin.js';
export { PUSH, parsePushTarget, stripPushParams, isPushable, type PushService, type PushTarget, type PushRequest, type PushOutcome } from './push/index.js';
export { RpcError, RpcErrorCode, type RpcMethods } from './plugin/index.js';
export { loadConfig, defaultConfig, ConfigError, type Config } from './config/index.js';
export { createLogger, reportInternalError, type Logger } from './log/index.js';
export { openStore, type Store } from './store/index.js';
export * as sip from './sip/index.js';
