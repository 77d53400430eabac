// The per-user gateways as a plugin: MESSAGEs to the gateway's own address and to the networks'
// SIP domains (with presence, SUBSCRIBEs there go to the presence agent), with map_local_users a
// catch-all for local users behind every other plugin's routes; gateway.* RPC methods, metrics,
// and GATEWAY.
import { PRESENCE } from '../presence/plugin.js';
import { REGISTRAR } from '../registrar/plugin.js';
import { RELAY } from '../relay/plugin.js';
import { parseUri } from '../sip/index.js';
import { serviceKey, type ParleyPlugin, type PluginContext, type PluginRoute } from '../plugin/index.js';
import { gatewayMetrics } from './metrics.js';
import { gatewayOptions, gatewayRegistrarOf, networkAliasesOf } from './options.js';
import { gatewayMethods } from './rpc.js';
import { GatewayService } from './service.js';

export const GATEWAY = serviceKey<GatewayService>('gateway');

export function gatewayPlugin(): ParleyPlugin {
  let gateway: GatewayService | undefined;
  let context: PluginContext | undefined;
  const started = (): GatewayService => gateway!;
  return {
    name: 'gateway',
    section: { key: 'gateway', enabled: (config) => config.gateway.enabled, disabled: 'the per-user gateway is disabled' },
    requires: [RELAY, REGISTRAR],
    uses: [PRESENCE],
    provides: [GATEWAY],
    routes: (config) => {
      const registrar = parseUri(gatewayRegistrarOf(config));
      const networks = { names: networkAliasesOf(config) };
      const routes: PluginRoute[] = [
        { methods: ['MESSAGE'], domain: { names: [registrar.host] }, user: { names: [registrar.user] }, handler: 'gateway' },
        { methods: ['MESSAGE'], domain: networks, handler: 'gateway' },
      ];
      if (config.presence.enabled) routes.push({ methods: ['SUBSCRIBE'], domain: networks, handler: 'presence' });
      // Purple's mapping: MESSAGEs to local users pass the gateway, which hands them back to the relay unless a linked account takes them.
      if (config.gateway.map_local_users) routes.push({ methods: ['MESSAGE'], domain: { served: true }, handler: 'gateway', fallback: true });
      return routes;
    },
    handlers: [{ name: 'gateway', methods: ['MESSAGE'], handle: (request) => started().handle(request) }],
    async start(given) {
      context = given;
      const accounts = await given.store.gatewayAccountsIn(given.config.gateway.db_table);
      const dependencies = { accounts, rooms: given.store.gatewayRooms, outbox: given.store.outbox, relay: given.require(RELAY), registrar: given.require(REGISTRAR), presence: given.find(PRESENCE) };
      gateway = new GatewayService(gatewayOptions(given.config), dependencies, given.log);
      given.provide(GATEWAY, gateway);
    },
    serve: () => started().start(),
    stop: () => gateway?.stop(),
    rpc: (config) => gatewayMethods({ gateway: started, store: () => context!.store, domains: () => context!.domains }, config),
    metrics: () => gatewayMetrics(started),
    // Which accounts fail is the users' business (#status); the operator sees how many, and a cause.
    health: () => {
      const failing = started().failingSessions();
      if (failing.length === 0) return { status: 'ok' };
      const { network, problem } = failing[0]!;
      return { status: 'degraded', reason: `${failing.length} of ${started().sessionCount} sessions cannot connect (${network}: ${problem})` };
    },
  };
}
