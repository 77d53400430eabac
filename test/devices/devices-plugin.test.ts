// Every RPC method is named after the plugin that declares it: devices.list is the devices plugin's
// (it shows the relay's per-device delivery), and a plugin naming a method outside its own names
// fails start. devices.list itself and `parley devices list` are tried in delivery.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, createServer, defaultPlugins, type ParleyPlugin } from '../../src/index.js';
import { testConfig } from '../support/server.js';

test('each default plugin names its RPC methods "<plugin>.<method>"; devices.list is the devices plugin\'s', () => {
  const config = testConfig();
  const owners = new Map<string, string>();
  for (const plugin of defaultPlugins()) {
    for (const method of Object.keys(plugin.rpc?.(config) ?? {})) {
      assert.ok(method.startsWith(`${plugin.name}.`), `${method} of plugin ${plugin.name}`);
      owners.set(method, plugin.name);
    }
  }
  assert.equal(owners.get('devices.list'), 'devices');
});

test('a plugin naming an RPC method outside its own names fails start, naming it', async () => {
  const stray: ParleyPlugin = { name: 'stray', rpc: () => ({ 'others.list': { params: [], call: () => [] } }) };
  await assert.rejects(createServer(testConfig(), { logger: createLogger('silent'), plugins: [...defaultPlugins(), stray] }).start(), {
    name: 'PluginError',
    message: 'plugin "stray" names an RPC method "others.list" outside its own "stray." names',
  });
});
