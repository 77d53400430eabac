// The XMPP gateway as a plugin: MESSAGEs to its SIP domain (and, with presence, SUBSCRIBEs there,
// kept by the presence agent), xmpp.status, its metrics and health, and XMPP.
import { PRESENCE } from '../presence/plugin.js';
import { RELAY } from '../relay/plugin.js';
import { serviceKey, type ParleyPlugin, type PluginRoute } from '../plugin/index.js';
import { XmppGateway } from './gateway.js';
import { xmppMetrics } from './metrics.js';
import { gatewayDomainOf, xmppGatewayOptions } from './options.js';
import { xmppMethods } from './rpc.js';

export const XMPP = serviceKey<XmppGateway>('xmpp');

export function xmppPlugin(): ParleyPlugin {
  let gateway: XmppGateway | undefined;
  const started = (): XmppGateway => gateway!;
  return {
    name: 'xmpp',
    section: { key: 'xmpp', enabled: (config) => config.xmpp.enabled, disabled: 'the XMPP gateway is disabled' },
    requires: [RELAY],
    uses: [PRESENCE],
    provides: [XMPP],
    routes: (config) => {
      const domain = { names: [gatewayDomainOf(config)] };
      const routes: PluginRoute[] = [{ methods: ['MESSAGE'], domain, handler: 'xmpp' }];
      // RFC 7248: SIP users watch XMPP users at their gateway addresses; the agent keeps those dialogs.
      if (config.presence.enabled) routes.push({ methods: ['SUBSCRIBE'], domain, handler: 'presence' });
      return routes;
    },
    handlers: [{ name: 'xmpp', methods: ['MESSAGE'], handle: (request) => started().handle(request) }],
    start(context) {
      const agent = context.find(PRESENCE);
      const presence = agent && {
        service: agent,
        isKnownUser: context.isKnownUser,
        store: context.store.presence,
        maxWatchers: context.config.presence.max_gateway_watchers,
      };
      gateway = new XmppGateway(xmppGatewayOptions(context.config), context.require(RELAY), context.store.outbox, context.store.receiptIds, context.log, presence);
      context.provide(XMPP, gateway);
    },
    serve: () => started().start(),
    stop: () => gateway?.stop(),
    rpc: (config) => xmppMethods(started, config.xmpp),
    metrics: () => xmppMetrics(started),
    health: () => {
      const state = started().stats.state;
      return state === 'online' ? { status: 'ok' } : { status: 'degraded', reason: `the XMPP link is ${state}` };
    },
  };
}
