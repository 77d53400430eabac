import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema, defaultConfig } from '../../src/config/index.js';
import { presenceRoute } from '../../src/presence/plugin.js';
import { Router } from '../../src/server/index.js';

function issuesOf(input: unknown): string[] {
  const result = configSchema.safeParse(input);
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

test('presence expiries are checked like the registrar ones', () => {
  assert.deepEqual(issuesOf({ presence: { min_expires: 60, default_expires: 30 } }), [
    'presence.default_expires: must be between min_expires (60) and max_expires (3600)',
  ]);
  assert.deepEqual(issuesOf({ presence: { min_expires: 600, max_expires: 300, default_expires: 400 } }), [
    'presence.min_expires: must not exceed max_expires (300)',
  ]);
  assert.equal(issuesOf({ presence: { max_expires: 3_000_000 } }).length, 1, 'longer than a Node timer can wait');
  assert.equal(issuesOf({ presence: { policy: 'friends' } }).length, 1);
});

test('the presence route takes PUBLISH, SUBSCRIBE and NOTIFY for the local domains and for Parley\'s own addresses', () => {
  const config = configSchema.parse({
    domains: ['example.com', 'chat.example.com'],
    listen: ['udp:192.0.2.1:5060', 'tcp:[2001:db8::1]:5060'],
    advertise: 'sip.example.com:5080',
  });
  const route = presenceRoute(config);
  assert.deepEqual(route.methods, ['PUBLISH', 'SUBSCRIBE', 'NOTIFY']);
  const router = new Router([], new Set(config.domains));
  router.register({ name: 'presence', methods: route.methods, handle: () => {} });
  router.compile([{ key: 'presence', route }]);
  const taken = (host: string) => router.match('SUBSCRIBE', 'alice', host)?.route.handler === 'presence';
  for (const host of ['example.com', 'CHAT.example.com', '192.0.2.1', '[2001:db8::1]', 'sip.example.com']) assert.ok(taken(host), host);
  for (const host of ['other.com', 'examplexcom', '192.0.2.10']) assert.ok(!taken(host), host);
  assert.ok(defaultConfig().presence.enabled);
});
