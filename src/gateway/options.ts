// The gateway's settings, read from the gateway section of the configuration.
import { ConfigError, type Config, type Route } from '../config/index.js';
import { parseUri, type SipUri } from '../sip/index.js';

export interface GatewayOptions {
  /** The gateway's own address (commands to it, notices from it). */
  registrar: SipUri;
  registrarAddress: string;
  /** The XMPP network's SIP domain and the delimiter of its addresses. */
  xmpp: { alias: string; delimiter: string };
  cacheTimeMs: number;
  delayTimeMs: number;
  priority: number;
  maxSessions: number;
  maxSessionsPerUser: number;
  secretKey: string;
  allowUnauthenticated: boolean;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  localDomains: ReadonlySet<string>;
  /** Largest message body carried, in bytes (relay.max_body). */
  maxBody: number;
}

export function gatewayRegistrarOf(config: Config): string {
  return config.gateway.registrar ?? `sip:gateway@${config.domains[0]}`;
}

/** "alias=<delim>" (the jabber seed's jdomain) split; null: xmpp.<first domain> with "*". */
export function xmppAliasOf(config: Config): { alias: string; delimiter: string } {
  const jdomain = config.gateway.jdomain ?? `xmpp.${config.domains[0]}=*`;
  const [alias, delimiter] = jdomain.split('=');
  return { alias: alias!.toLowerCase(), delimiter: delimiter || '*' };
}

export function gatewayOptions(config: Config, env: NodeJS.ProcessEnv = process.env): GatewayOptions {
  const gateway = config.gateway;
  const secretKey = gateway.secret_key ?? env.PARLEY_GATEWAY_KEY;
  if (!secretKey || secretKey.length < 16) {
    throw new ConfigError([{ key: 'gateway.secret_key', reason: 'required when gateway.enabled is true (or PARLEY_GATEWAY_KEY, at least 16 characters)' }]);
  }
  const registrarAddress = gatewayRegistrarOf(config);
  return {
    registrar: parseUri(registrarAddress),
    registrarAddress,
    xmpp: xmppAliasOf(config),
    cacheTimeMs: gateway.cache_time * 1000,
    delayTimeMs: gateway.delay_time * 1000,
    priority: gateway.priority,
    maxSessions: gateway.max_sessions,
    maxSessionsPerUser: gateway.max_sessions_per_user,
    secretKey,
    allowUnauthenticated: gateway.allow_unauthenticated,
    reconnectMinMs: gateway.reconnect_min * 1000,
    reconnectMaxMs: gateway.reconnect_max * 1000,
    localDomains: new Set(config.domains.map((d) => d.toLowerCase())),
    maxBody: config.relay.max_body,
  };
}

/** The routes that send MESSAGEs to the gateway: its own address, and any user of a network's domain. */
export function gatewayRoutes(config: Config): Route[] {
  const registrar = parseUri(gatewayRegistrarOf(config));
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return [
    { method: ['MESSAGE'], domain: escape(registrar.host), user: escape(registrar.user), handler: 'gateway' },
    { method: ['MESSAGE'], domain: escape(xmppAliasOf(config).alias), handler: 'gateway' },
  ];
}
