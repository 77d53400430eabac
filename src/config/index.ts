export { ConfigError, type ConfigIssue } from './errors.js';
export { loadConfig, type ConfigOverrides } from './load.js';
export { configRisks, isLoopbackHost, openPolicyRisk, type ConfigRisk } from './risks.js';
export { configOptions, renderConfigReference, type OptionReference } from './reference.js';
export {
  DIGEST_ALGORITHMS,
  LOG_FORMATS,
  LOG_LEVELS,
  PRESENCE_POLICIES,
  SQL_TABLE_NAME,
  TRANSPORTS,
  compileRoutePattern,
  configSchema,
  defaultConfig,
  formatHostPort,
  formatListener,
  parseListener,
  realmFor,
  type AdvertisedAddress,
  type Config,
  type DigestAlgorithm,
  type HostPort,
  type Listener,
  type LogFormat,
  type LogLevel,
  type PresencePolicy,
  type Route,
  type Transport,
} from './schema.js';
