// The plugin contract: a list that cannot start is refused with an error naming what is wrong,
// start follows the services plugins need, and stop goes back the other way.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, createLogger, createServer, defaultPlugins, serviceKey, type ParleyPlugin } from '../../src/index.js';
import { registrarPlugin } from '../../src/registrar/plugin.js';
import { relayPlugin } from '../../src/relay/plugin.js';
import { startServer, testConfig, type ConfigPatch } from '../support/server.js';

const quiet = createLogger('silent');

function start(plugins: ParleyPlugin[], patch: ConfigPatch = {}): Promise<void> {
  return createServer(testConfig(patch), { logger: quiet, plugins }).start();
}

test('a plugin requiring a service no enabled plugin provides fails start, naming both', async () => {
  await assert.rejects(start([relayPlugin()]), { name: 'PluginError', message: 'plugin "relay" requires the service "registrar", which no enabled plugin provides' });
});

test('two plugins of one name fail start', async () => {
  await assert.rejects(start([registrarPlugin(), registrarPlugin()]), { name: 'PluginError', message: 'two plugins are named "registrar"' });
});

test('a route naming a handler nobody declared is a ConfigError naming its key', async () => {
  const stray: ParleyPlugin = { name: 'stray', routes: () => [{ methods: ['MESSAGE'], user: { names: ['x'] }, handler: 'nobody' }] };
  await assert.rejects(start([...defaultPlugins(), stray]), (error) => error instanceof ConfigError && error.key === 'stray' && /no handler named "nobody"/.test(error.message));
  // The rooms' handler is not there while imc is disabled.
  await assert.rejects(start(defaultPlugins(), { imc: { enabled: false }, routes: [{ handler: 'imc' }] }), (error) => error instanceof ConfigError && error.key === 'routes[0].handler');
});

test('providers start first whatever the list order, serve after their users, and stop after them', async () => {
  const calls: string[] = [];
  const CLOCK = serviceKey<() => number>('clock');
  const record = (name: string): ParleyPlugin => ({
    name,
    serve: () => void calls.push(`${name} serve`),
    drain: () => void calls.push(`${name} drain`),
    stop: () => void calls.push(`${name} stop`),
  });
  const user: ParleyPlugin = { ...record('user'), requires: [CLOCK], start: (context) => void calls.push(`user start, the clock says ${context.require(CLOCK)()}`) };
  const provider: ParleyPlugin = {
    ...record('provider'),
    provides: [CLOCK],
    start: (context) => {
      calls.push('provider start');
      context.provide(CLOCK, () => 42);
    },
  };
  const s = await startServer({}, [...defaultPlugins(), user, provider]);
  await s.stop();
  assert.deepEqual(calls, [
    'provider start', 'user start, the clock says 42', 'user serve', 'provider serve',
    'provider drain', 'user drain', 'user stop', 'provider stop',
  ]);
});

test('a plugin providing a service it did not declare fails start', async () => {
  const sly: ParleyPlugin = { name: 'sly', start: (context) => context.provide(serviceKey<number>('answer'), 42) };
  await assert.rejects(start([...defaultPlugins(), sly]), { name: 'PluginError', message: 'plugin "sly" provides the service "answer" without declaring it in provides' });
});
