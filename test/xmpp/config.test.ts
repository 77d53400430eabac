// The xmpp section of the configuration: what validation requires once the gateway is enabled.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../src/config/index.js';
import { gatewayDomainOf } from '../../src/xmpp/index.js';

const ENABLED = { enabled: true, xmpp_domain: 'sip.xmpp.example', xmpp_password: 'secret' };

/** "key: message" of each problem validation finds. */
function problems(xmpp: Record<string, unknown>, domains = ['example.com']): string[] {
  const result = configSchema.safeParse({ domains, xmpp });
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

test('the gateway is off by default, and needs nothing then', () => {
  assert.equal(configSchema.parse({}).xmpp.enabled, false);
  assert.deepEqual(problems({}), []);
});

test('enabled, it needs the component domain and secret', () => {
  assert.deepEqual(problems({ enabled: true }), [
    'xmpp.xmpp_domain: required when xmpp.enabled is true',
    'xmpp.xmpp_password: required when xmpp.enabled is true',
  ]);
  assert.deepEqual(problems(ENABLED), []);
});

test('the gateway domain defaults to the XMPP domain and must not be a local one', () => {
  assert.equal(gatewayDomainOf(configSchema.parse({ domains: ['example.com'], xmpp: ENABLED })), 'sip.xmpp.example');
  assert.deepEqual(problems({ ...ENABLED, gateway_domain: 'Example.com' }), [
    'xmpp.gateway_domain: example.com is one of domains, but MESSAGEs to the gateway domain go to XMPP',
  ]);
});

test('rfc7247 mapping needs the XMPP domain to be a local one, and a gateway domain of its own', () => {
  assert.deepEqual(problems({ ...ENABLED, address_mapping: 'rfc7247' }), [
    'xmpp.xmpp_domain: must be one of domains with rfc7247 mapping: XMPP users write to SIP users at that domain',
  ]);
  assert.deepEqual(problems({ ...ENABLED, address_mapping: 'rfc7247', xmpp_domain: 'example.com', gateway_domain: 'xmpp.example' }), []);
});

test('separators are characters of both SIP user parts and JID localparts, never of domains', () => {
  assert.deepEqual(problems({ ...ENABLED, domain_separator: '%' }), ['xmpp.domain_separator: expected one of ! ~ * ( ) = + $ , ; ?']);
  assert.deepEqual(problems({ ...ENABLED, domain_separator: '!' }), []);
});

test('backoff bounds are ordered', () => {
  assert.deepEqual(problems({ ...ENABLED, reconnect_min: 5, reconnect_max: 1 }), ['xmpp.reconnect_max: must not be less than reconnect_min (5)']);
});
