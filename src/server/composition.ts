// Puts a list of plugins in start order: each after the providers of the services it requires
// or uses, the list's order kept otherwise; refuses a list that cannot start, naming the plugins
// and the service in question.
import type { Config } from '../config/index.js';
import { PluginError, type ComposedPlugin, type ParleyPlugin, type ServiceKey } from '../plugin/index.js';

export function composePlugins(plugins: readonly ParleyPlugin[], config: Config): ComposedPlugin[] {
  const names = new Set<string>();
  for (const plugin of plugins) {
    if (names.has(plugin.name)) throw new PluginError(`two plugins are named "${plugin.name}"`);
    names.add(plugin.name);
  }
  const composed = plugins.map((plugin) => ({ plugin, enabled: plugin.section?.enabled(config) ?? true }));
  const enabled = composed.filter((entry) => entry.enabled);
  const providers = new Map<ServiceKey<unknown>, ComposedPlugin>();
  for (const entry of enabled) {
    for (const key of entry.plugin.provides ?? []) {
      const other = providers.get(key);
      if (other) throw new PluginError(`plugins "${other.plugin.name}" and "${entry.plugin.name}" both provide the service "${key.name}"`);
      providers.set(key, entry);
    }
  }
  for (const { plugin } of enabled) {
    for (const key of plugin.requires ?? []) {
      if (!providers.has(key)) throw new PluginError(`plugin "${plugin.name}" requires the service "${key.name}", which no enabled plugin provides`);
    }
  }

  const ordered: ComposedPlugin[] = [];
  const visiting = new Set<ComposedPlugin>();
  const visit = (entry: ComposedPlugin, path: readonly string[]): void => {
    if (ordered.includes(entry)) return;
    if (visiting.has(entry)) throw new PluginError(`plugins need each other's services: ${[...path, entry.plugin.name].join(' -> ')}`);
    visiting.add(entry);
    if (entry.enabled) {
      for (const key of [...(entry.plugin.requires ?? []), ...(entry.plugin.uses ?? [])]) {
        const provider = providers.get(key);
        if (provider && provider !== entry) visit(provider, [...path, entry.plugin.name]);
      }
    }
    visiting.delete(entry);
    ordered.push(entry);
  };
  for (const entry of composed) visit(entry, []);
  return ordered;
}
