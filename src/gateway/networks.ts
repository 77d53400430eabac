// The networks this build serves, one adapter each, made from the gateway's options.
import type { Logger } from 'pino';
import type { NetworkAdapter } from './adapter.js';
import type { GatewayOptions } from './options.js';
import { IrcNetwork } from './irc-network.js';
import { XmppNetwork } from './xmpp-network.js';

export function createNetworks(options: GatewayOptions, log: Logger): NetworkAdapter[] {
  return [new XmppNetwork(options.xmpp, log.child({ network: 'xmpp' })), new IrcNetwork(options.irc, log.child({ network: 'irc' }))];
}
