// The gateway's settings, read from the xmpp section of the configuration.
import { ConfigError, type Config } from '../config/index.js';
import type { AddressOptions } from './addresses.js';
import type { ComponentLinkOptions } from './link.js';

export interface XmppGatewayOptions {
  backend: Config['xmpp']['backend'];
  addresses: AddressOptions;
  link: ComponentLinkOptions;
  messageType: Config['xmpp']['message_type'];
  delayTimeMs: number;
  maxQueue: number;
  /** SIP domains served here: only their users write to XMPP through the gateway. */
  localDomains: ReadonlySet<string>;
  /** Largest message body carried, in bytes (relay.max_body). */
  maxBody: number;
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
      password: required(xmpp.xmpp_password, 'xmpp_password'),
      reconnectMinMs: xmpp.reconnect_min * 1000,
      reconnectMaxMs: xmpp.reconnect_max * 1000,
      keepaliveMs: xmpp.keepalive * 1000,
    },
    messageType: xmpp.message_type,
    delayTimeMs: xmpp.delay_time * 1000,
    maxQueue: xmpp.max_queue,
    localDomains: new Set(config.domains),
    maxBody: config.relay.max_body,
  };
}

// Validation requires these when the gateway is enabled; a configuration built in code may still lack them.
function required<Value>(value: Value | null, key: string): Value {
  if (value === null) throw new ConfigError([{ key: `xmpp.${key}`, reason: 'required when xmpp.enabled is true' }]);
  return value;
}
