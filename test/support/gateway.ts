// The per-user gateway as the end-to-end tests drive it: a Parley with the gateway on and digest
// authentication required, a SIP user with a password, and the gateway's notices (replies to
// #commands, errors) read from what that user received.
import assert from 'node:assert/strict';
import { realmFor } from '../../src/config/index.js';
import { computeHa1 } from '../../src/registrar/index.js';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from './eventually.js';
import { type ConfigPatch, type TestServer, startServer } from './server.js';
import { TestUA } from './ua.js';

export const GATEWAY = 'sip:gateway@localhost';
/** allow_user_servers: the test's XMPP and IRC servers listen on loopback ports of their own, named in #link. */
export const gatewayConfig = { enabled: true, secret_key: 'a-test-key-of-some-length', reconnect_min: 0.1, reconnect_max: 0.5, allow_user_servers: true };

export const bodyOf = (m: SipMessage) => m.body.toString('utf8');
export const fromGateway = (m: SipMessage) => m.method === 'MESSAGE' && m.from.uri === GATEWAY;

/** A Parley with the gateway on (reconnecting fast) and digest authentication required. */
export function startGatewayServer(patch: ConfigPatch = {}): Promise<TestServer> {
  return startServer({ auth: { policy: 'required' }, gateway: gatewayConfig, ...patch });
}

/** A SIP user of localhost with digest credentials, and a TCP agent for it (not registered yet). */
export async function sipUser(parley: TestServer, username: string, password: string): Promise<TestUA> {
  const realm = realmFor(parley.config, 'localhost');
  await parley.server.store.users.put({ username, domain: 'localhost', ...computeHa1(username, realm, password) });
  return TestUA.create({ proto: 'tcp', user: username, server: parley.tcp, password });
}

/** Resolves with the user's first `count` gateway notices passing `test`. */
export async function notices(ua: TestUA, count: number, test: (text: string) => boolean, timeoutMs = 10_000): Promise<string[]> {
  return eventually(() => {
    const found = ua.received.filter(fromGateway).map(bodyOf).filter(test);
    return found.length >= count ? found : undefined;
  }, `${count} gateway notices for ${ua.aor}`, timeoutMs);
}

/** Sends a command and resolves with the gateway's reply (the first notice after it). */
export async function command(ua: TestUA, text: string): Promise<string> {
  const before = ua.received.filter(fromGateway).length;
  const response = await ua.message(GATEWAY, text);
  assert.equal(response.status, 200, `${text.split(' ')[0]}: ${response.status} ${response.reason}`);
  const replies = await notices(ua, before + 1, () => true);
  return replies[before]!;
}
