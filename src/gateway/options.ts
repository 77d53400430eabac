// The gateway's settings, read from the gateway section of the configuration.
import { ConfigError, type Config } from '../config/index.js';
import { parseUri, type SipUri } from '../sip/index.js';
import { xmlLimitsOf } from '../xmpp/options.js';
import type { XmlLimits } from '../xmpp/xml-guard.js';
import type { GatewayTlsMode } from '../store/types.js';
import type { ConfiguredServer } from './adapter.js';
import type { HttpProxy } from './http-proxy.js';

export interface GatewayOptions {
  /** The gateway's own address (commands to it, notices from it). */
  registrar: SipUri;
  registrarAddress: string;
  /** The XMPP network's SIP domain and the delimiter of its addresses; where accounts without a server of their own connect (jaddress, jport). */
  xmpp: { alias: string; delimiter: string; host?: string; port?: number; servers: ReadonlyMap<string, ConfiguredServer>; transports: Array<{ alias: string; delimiter: string }>; maxConnecting: number; xml: XmlLimits };
  /** The IRC network's SIP domain, the delimiter of its addresses, the most bytes of text in one PRIVMSG, and the networks configured (irc_networks). */
  irc: { alias: string; delimiter: string; lineLimit: number; networks: ReadonlyMap<string, ConfiguredServer> };
  cacheTimeMs: number;
  /** The HTTP proxy network sessions connect through; undefined: directly. */
  proxy?: HttpProxy;
  /** How often idle sessions are looked for. */
  sleepTimeMs: number;
  /** Map MESSAGEs to local users onto their linked accounts (purple). */
  mapLocalUsers: boolean;

  delayTimeMs: number;
  /** Messages waiting for one account's session past which new ones get 503; all sessions together, max_sessions times that. */
  maxQueue: number;
  priority: number;
  maxSessions: number;
  maxSessionsPerUser: number;
  secretKey: string;
  allowUnauthenticated: boolean;
  /** Whether #link may name the server to connect to (gateway.allow_user_servers). */
  allowUserServers: boolean;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  localDomains: ReadonlySet<string>;
  /** Largest message body carried, in bytes (relay.max_body). */
  maxBody: number;
}

export function gatewayRegistrarOf(config: Config): string {
  return config.gateway.registrar ?? `sip:gateway@${config.domains[0]}`;
}

/** A network's "alias=<delim>" setting (the jabber seed's jdomain form) split; null: <network>.<first domain> with "*". */
function aliasOf(setting: string | null, network: string, config: Config): { alias: string; delimiter: string } {
  return splitAlias(setting ?? `${network}.${config.domains[0]}`, '*');
}

/** "alias=<delim>" split, the alias lower-cased; `delimiter` when the entry gives none. */
function splitAlias(entry: string, delimiter: string): { alias: string; delimiter: string } {
  const [alias, given] = entry.split('=');
  return { alias: alias!.toLowerCase(), delimiter: given || delimiter };
}

export function xmppAliasOf(config: Config): { alias: string; delimiter: string } {
  return aliasOf(config.gateway.jdomain, 'xmpp', config);
}

/** The XMPP transports (aliases), each with its delimiter; "%" when none is given. */
export function transportsOf(config: Config): Array<{ alias: string; delimiter: string }> {
  return config.gateway.aliases.map((entry) => splitAlias(entry, '%'));
}

export function ircAliasOf(config: Config): { alias: string; delimiter: string } {
  return aliasOf(config.gateway.irc_domain, 'irc', config);
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
    xmpp: {
      ...xmppAliasOf(config),
      host: gateway.jaddress ?? undefined,
      port: gateway.jport ?? undefined,
      servers: configuredServers(gateway.xmpp_servers),
      transports: transportsOf(config),
      maxConnecting: gateway.max_connecting,
      xml: xmlLimitsOf(config),
    },
    irc: { ...ircAliasOf(config), lineLimit: gateway.irc_line_limit, networks: configuredServers(gateway.irc_networks) },
    cacheTimeMs: gateway.cache_time * 1000,
    sleepTimeMs: gateway.sleep_time * 1000,
    proxy: gateway.http_proxy_host === null ? undefined : { host: gateway.http_proxy_host, port: gateway.http_proxy_port },
    mapLocalUsers: gateway.map_local_users,

    delayTimeMs: gateway.delay_time * 1000,
    maxQueue: gateway.max_queue,
    priority: gateway.priority,
    maxSessions: gateway.max_sessions,
    maxSessionsPerUser: gateway.max_sessions_per_user,
    secretKey,
    allowUnauthenticated: gateway.allow_unauthenticated,
    allowUserServers: gateway.allow_user_servers,
    reconnectMinMs: gateway.reconnect_min * 1000,
    reconnectMaxMs: gateway.reconnect_max * 1000,
    localDomains: new Set(config.domains.map((d) => d.toLowerCase())),
    maxBody: config.relay.max_body,
  };
}

/** xmpp_servers or irc_networks as the adapters take them. */
function configuredServers(servers: Record<string, { host: string | null; port: number | null; tls: GatewayTlsMode }>): ReadonlyMap<string, ConfiguredServer> {
  return new Map(Object.entries(servers).map(([name, { host, port, tls }]) => [name, { host: host ?? undefined, port: port ?? undefined, tls }]));
}

/** The SIP domains of the networks served. */
export function networkAliasesOf(config: Config): string[] {
  return [xmppAliasOf(config).alias, ircAliasOf(config).alias, ...transportsOf(config).map((t) => t.alias)];
}
