// The assembled server, the default list of plugins, and the plugin contract (src/plugin) handed on.
export { ParleyServer, createServer, type ServerOptions } from './server.js';
export { defaultPlugins } from './default-plugins.js';
export { Router, RouterError } from './router.js';
export { KNOWN_METHODS, REQUEST_HOOKS, type RequestHook } from './pipeline.js';
export {
  PluginError, serviceKey, type ServiceKey, type ParleyPlugin, type PluginContext, type PluginRoute, type DomainMatch, type UserMatch,
  type RequestHandler, type RouteTarget, type Metric, type PluginHealth, type ComposedPlugin,
} from '../plugin/index.js';
