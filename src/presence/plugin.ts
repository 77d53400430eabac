// The presence agent as a plugin: PUBLISH, SUBSCRIBE and NOTIFY for the served domains and for
// Parley's own addresses (in-dialog requests go to the Contact it gave), and PRESENCE, through
// which the gateways publish what they learn and hear who watches whom.
import { isIPv6 } from 'node:net';
import type { Config } from '../config/index.js';
import { REGISTRAR } from '../registrar/plugin.js';
import { RELAY } from '../relay/plugin.js';
import { serviceKey, type ParleyPlugin, type PluginRoute } from '../plugin/index.js';
import { PRESENCE_METHODS, PresenceAgent } from './agent.js';

export const PRESENCE = serviceKey<PresenceAgent>('presence');

/**
 * The route that hands the presence agent its requests: those for the local domains, and the
 * in-dialog ones, which go to the Contact it gave, an address of Parley itself.
 */
export function presenceRoute(config: Config): PluginRoute {
  const ownHosts = config.listen.map((listener) => (isIPv6(listener.host) ? `[${listener.host}]` : listener.host));
  if (config.advertise) ownHosts.push(config.advertise.host);
  return { methods: PRESENCE_METHODS, domain: { served: true, names: ownHosts }, handler: 'presence' };
}

export function presencePlugin(): ParleyPlugin {
  let agent: PresenceAgent | undefined;
  const started = (): PresenceAgent => agent!;
  return {
    name: 'presence',
    section: { key: 'presence', enabled: (config) => config.presence.enabled },
    requires: [REGISTRAR, RELAY],
    provides: [PRESENCE],
    routes: (config) => [presenceRoute(config)],
    handlers: [{ name: 'presence', methods: PRESENCE_METHODS, handle: (request) => started().handle(request) }],
    async start(context) {
      const config = context.config.presence;
      const options = {
        minExpires: config.min_expires,
        maxExpires: config.max_expires,
        defaultExpires: config.default_expires,
        policy: config.policy,
        maxPublicationsPerPresentity: config.max_publications_per_presentity,
        maxPublications: config.max_publications,
        maxSubscriptionsPerWatcher: config.max_subscriptions_per_watcher,
        maxSubscriptions: config.max_subscriptions,
        maxGatewayStates: config.max_gateway_states,
        restartNotifiesAtOnce: config.restart_notifies_at_once,
      };
      agent = new PresenceAgent(context.stack, context.require(REGISTRAR), context.require(RELAY), context.store.presence, options, context.log);
      context.provide(PRESENCE, agent);
      await agent.load();
    },
    serve: () => started().start(),
    // A bound reached refuses what comes next: the operator raises it, or finds who fills it.
    health: () => {
      const full = started().full();
      if (full.length === 0) return { status: 'ok' };
      return { status: 'degraded', reason: full.map((table) => `${table.key} reached (${table.count} of ${table.max}): further new ones are refused`).join('; ') };
    },
    // Before the gateways stop: its subscriptions go on after the restart, so what they withdraw as they stop must not reach watchers.
    drain: () => agent?.stop(),
  };
}
