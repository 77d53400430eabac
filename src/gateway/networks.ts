// The networks this build serves, one adapter each, made from the gateway's options.
import type { Logger } from 'pino';
import type { NetworkAdapter } from './adapter.js';
import type { GatewayOptions } from './options.js';
import { IrcNetwork } from './irc-network.js';
import { XmppNetwork } from './xmpp-network.js';

export function createNetworks(options: GatewayOptions, log: Logger): NetworkAdapter[] {
  const { proxy } = options;
  return [new XmppNetwork({ ...options.xmpp, proxy }, log.child({ network: 'xmpp' })), new IrcNetwork({ ...options.irc, proxy }, log.child({ network: 'irc' }))];
}
