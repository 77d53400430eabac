export { ConfigError, type ConfigIssue } from './errors.js';
export { loadConfig, type ConfigOverrides } from './load.js';
export { configOptions, renderConfigReference, type OptionReference } from './reference.js';
export {
  DIGEST_ALGORITHMS,
  LOG_LEVELS,
  TRANSPORTS,
  compileRoutePattern,
  configSchema,
  defaultConfig,
  formatListener,
  parseListener,
  realmFor,
  type AdvertisedAddress,
  type Config,
  type DigestAlgorithm,
  type Listener,
  type LogLevel,
  type Route,
  type Transport,
} from './schema.js';
