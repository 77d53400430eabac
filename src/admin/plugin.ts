// The management endpoint as a plugin: it gathers what the other plugins contribute (RPC methods,
// metrics, health, core.status fields) and adds the core's own (core.ts). A disabled plugin's
// methods are there too, and say that it is disabled.
import {
  PluginError, RpcError, RpcErrorCode, serviceKey, type ComposedPlugin, type Metric, type ParleyPlugin, type PluginContext, type PluginHealth, type RpcMethods,
} from '../plugin/index.js';
import { coreMethods, coreMetrics, storeHealth } from './core.js';
import { AdminServer } from './server.js';

export const ADMIN = serviceKey<AdminServer>('admin');

export function adminPlugin(): ParleyPlugin {
  let admin: AdminServer | undefined;
  const plugin: ParleyPlugin = {
    name: 'admin',
    section: { key: 'admin', enabled: (config) => config.admin.enabled },
    provides: [ADMIN],
    async start(context) {
      const others = context.plugins.filter((entry) => entry.plugin !== plugin);
      const enabled = others.filter((entry) => entry.enabled).map((entry) => entry.plugin);
      // A disabled plugin that would report says so as "<name>": null.
      const statusFields = () => Object.assign({}, ...others.map(({ plugin: other, enabled: on }) => (other.status ? (on ? other.status() : { [other.name]: null }) : {}))) as Record<string, unknown>;
      // The store is no plugin, yet every plugin depends on it: its health comes first.
      const health = () => ({
        store: storeHealth(context),
        ...Object.fromEntries(enabled.flatMap((other) => (other.health ? [[other.name, other.health()] as [string, PluginHealth]] : []))),
      });
      const methods = gatherMethods(coreMethods(context, Date.now(), statusFields), others, context);
      const metrics: Metric[] = [...coreMetrics(context), ...enabled.flatMap((other) => other.metrics?.() ?? [])];
      admin = new AdminServer({ settings: context.config.admin, database: context.config.database, methods, metrics, health }, context.log);
      context.provide(ADMIN, admin);
      await admin.start();
    },
    // Lets the calls in progress finish before the plugins they act on stop.
    stop: () => admin?.stop(),
  };
  return plugin;
}

function gatherMethods(core: RpcMethods, plugins: readonly ComposedPlugin[], context: PluginContext): RpcMethods {
  const methods: RpcMethods = { ...core };
  for (const { plugin, enabled } of plugins) {
    for (const [name, method] of Object.entries(plugin.rpc?.(context.config) ?? {})) {
      if (!name.startsWith(`${plugin.name}.`)) throw new PluginError(`plugin "${plugin.name}" names an RPC method "${name}" outside its own "${plugin.name}." names`);
      if (Object.hasOwn(methods, name)) throw new PluginError(`plugin "${plugin.name}" names an RPC method "${name}" that is taken already`);
      methods[name] = enabled ? method : { params: method.params, call: () => refuseDisabled(plugin) };
    }
  }
  return methods;
}

function refuseDisabled(plugin: ParleyPlugin): never {
  const section = plugin.section!;
  throw new RpcError(RpcErrorCode.REFUSED, `${section.disabled ?? `${plugin.name} is disabled`} (${section.key}.enabled is false)`);
}
