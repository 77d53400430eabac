// The gateway's settings, read from the xmpp section of the configuration.
import { randomBytes } from 'node:crypto';
import { ConfigError, type Config } from '../config/index.js';
import type { AddressOptions } from './addresses.js';
import type { ComponentLinkOptions } from './link.js';
import type { S2sLinkOptions } from './s2s/link.js';
import type { XmlLimits } from './xml-guard.js';

export interface XmppGatewayOptions {
  backend: Config['xmpp']['backend'];
  addresses: AddressOptions;
  link: ComponentLinkOptions;
  /** Server mode (backend server): the s2s listener and outgoing streams. */
  server?: S2sLinkOptions;
  messageType: Config['xmpp']['message_type'];
  /** Whether XMPP receipt requests reach SIP as CPIM with IMDN headers. */
  imdn: boolean;
  delayTimeMs: number;
  maxQueue: number;
  /** Most messages from XMPP waiting for delivery to one SIP user (xmpp.max_queue_to_sip). */
  maxQueueToSip: number;
  /** SIP domains served here: only their users write to XMPP through the gateway. */
  localDomains: ReadonlySet<string>;
  /** Largest message body carried, in bytes (relay.max_body). */
  maxBody: number;
  /** How long XMPP contacts' presence outlives the stream it came on, or a start (xmpp.presence_grace). */
  presenceGraceMs: number;
}

/** The SIP domain whose MESSAGEs go to XMPP. */
export function gatewayDomainOf(config: Config): string {
  return config.xmpp.gateway_domain ?? required(config.xmpp.xmpp_domain, 'xmpp_domain');
}

export function xmppGatewayOptions(config: Config): XmppGatewayOptions {
  const xmpp = config.xmpp;
  const xmppDomain = required(xmpp.xmpp_domain, 'xmpp_domain');
  return {
    backend: xmpp.backend,
    addresses: {
      convention: xmpp.address_mapping,
      separator: xmpp.domain_separator,
      gatewayDomain: gatewayDomainOf(config),
      xmppDomain,
    },
    link: {
      host: xmpp.xmpp_host,
      port: xmpp.xmpp_port,
      domain: xmppDomain,
      password: xmpp.backend === 'server' ? (xmpp.xmpp_password ?? '') : required(xmpp.xmpp_password, 'xmpp_password'),
      reconnectMinMs: xmpp.reconnect_min * 1000,
      reconnectMaxMs: xmpp.reconnect_max * 1000,
      keepaliveMs: xmpp.keepalive * 1000,
      maxUnconfirmed: xmpp.max_queue,
      xml: xmlLimitsOf(config),
    },
    server: xmpp.backend === 'server' ? s2sOptions(config, xmppDomain) : undefined,
    messageType: xmpp.message_type,
    imdn: xmpp.imdn,
    delayTimeMs: xmpp.delay_time * 1000,
    maxQueue: xmpp.max_queue,
    maxQueueToSip: xmpp.max_queue_to_sip,
    localDomains: new Set(config.domains),
    maxBody: config.relay.max_body,
    presenceGraceMs: xmpp.presence_grace * 1000,
  };
}

/** What Parley accepts of the XML any XMPP peer sends it. */
export function xmlLimitsOf(config: Config): XmlLimits {
  return { maxStanzaBytes: config.xmpp.max_stanza_size, maxDepth: config.xmpp.max_xml_depth };
}

function s2sOptions(config: Config, domain: string): S2sLinkOptions {
  const xmpp = config.xmpp;
  const cert = xmpp.tls_cert ?? config.tls.cert;
  const key = xmpp.tls_key ?? config.tls.key;
  return {
    domain,
    listenHost: xmpp.s2s_listen,
    port: xmpp.s2s_port,
    resolver: xmpp.resolver ?? undefined,
    tls: cert !== null && key !== null ? { cert, key } : undefined,
    secret: xmpp.dialback_secret ?? randomBytes(32).toString('hex'),
    idleMs: xmpp.s2s_idle * 1000,
    connectTimeoutMs: Math.min(xmpp.delay_time * 1000, 60_000),
    delayTimeMs: xmpp.delay_time * 1000,
    reconnectMinMs: xmpp.reconnect_min * 1000,
    reconnectMaxMs: xmpp.reconnect_max * 1000,
    maxQueue: xmpp.max_queue,
    requireTls: xmpp.s2s_require_tls,
    verifyCertificates: xmpp.s2s_verify_certificates,
    ca: xmpp.s2s_ca ?? undefined,
    xml: xmlLimitsOf(config),
    maxUnauthenticated: xmpp.s2s_max_unauthenticated,
    maxUnauthenticatedPerIp: xmpp.s2s_max_unauthenticated_per_ip,
    authTimeoutMs: xmpp.s2s_auth_timeout * 1000,
    dialsPerMinute: xmpp.s2s_dials_per_minute,
  };
}

// Validation requires these when the gateway is enabled; a configuration built in code may still lack them.
function required<Value>(value: Value | null, key: string): Value {
  if (value === null) throw new ConfigError([{ key: `xmpp.${key}`, reason: 'required when xmpp.enabled is true' }]);
  return value;
}
