// The per-user gateway as the end-to-end tests drive it: a Parley with the gateway on and digest
// authentication required, a SIP user with a password, and the gateway's notices (replies to
// #commands, errors) read from what that user received.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { realmFor } from '../../src/config/index.js';
import { computeHa1 } from '../../src/registrar/index.js';
import type { SipMessage } from '../../src/sip/index.js';
import { eventually } from './eventually.js';
import { IrcUser } from './irc-user.js';
import { Ngircd } from './ngircd.js';
import { tempDir } from './process.js';
import type { Prosody } from './prosody.js';
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

/** The same SIP user, registered (200). */
export async function registeredSipUser(parley: TestServer, username: string, password: string): Promise<TestUA> {
  const ua = await sipUser(parley, username, password);
  const response = await ua.register();
  assert.equal(response.status, 200, `REGISTER of ${username}: ${response.status} ${response.reason}`);
  return ua;
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

/** The #link command for the account `user` on the test's Prosody, reached over its plain c2s port. */
export const xmppLinkCommand = (prosody: Prosody, user: string, password: string) =>
  `#link xmpp ${user}@${prosody.domain} ${password} 127.0.0.1:${prosody.c2sPort} tls=none`;

/** The #link command for `nick` on the IRC server at loopback `port` (the test's ngIRCd, or a relay to it), in plain text. */
export const ircLinkCommand = (nick: string, password: string, port: number) => `#link irc ${nick}@127.0.0.1 ${password} 127.0.0.1:${port} tls=none`;

/** Resolves once the gateway session of account `accountId` is online. */
export function sessionOnline(parley: TestServer, accountId: number, what = 'session online'): Promise<true> {
  return eventually(() => parley.server.gateway!.sessionState(accountId) === 'online' || undefined, what, 15_000);
}

/**
 * A directory with the configuration file of a child Parley (test/support/process.ts `startParley`)
 * serving the gateway to unauthenticated users; `gateway` adds or overrides keys.
 */
export function gatewayConfigDir(gateway: Record<string, string | number | boolean> = {}): { dir: string; config: string } {
  const dir = tempDir();
  const config = join(dir, 'gateway.yaml');
  const keys = { ...gatewayConfig, allow_unauthenticated: true, ...gateway };
  writeFileSync(config, `auth:\n  policy: open\ngateway:\n${Object.entries(keys).map(([key, value]) => `  ${key}: ${String(value)}\n`).join('')}`);
  return { dir, config };
}

/** The per-user IRC gateway end to end: a real ngIRCd with bob on it, and a gateway Parley with alice (digest credentials, not registered yet). */
export interface IrcGateway {
  ngircd: Ngircd;
  /** Replaceable: a test that restarts ngIRCd connects bob again. */
  bob: IrcUser;
  parley: TestServer;
  alice: TestUA;
  /** Closes the users, then stops Parley and ngIRCd (by pid). */
  stop(): Promise<void>;
}

export async function startIrcGateway(ircPassword: string, sipPassword: string): Promise<IrcGateway> {
  const ngircd = await Ngircd.start({ password: ircPassword });
  let bob: IrcUser | undefined;
  let parley: TestServer | undefined;
  try {
    bob = await IrcUser.connect(ngircd, 'bob', ircPassword);
    parley = await startGatewayServer();
    const fixture: IrcGateway = {
      ngircd,
      bob,
      parley,
      alice: await sipUser(parley, 'alice', sipPassword),
      async stop() {
        fixture.alice.close();
        fixture.bob.close();
        await fixture.parley.stop();
        await ngircd.stop();
      },
    };
    return fixture;
  } catch (error) {
    bob?.close();
    await parley?.stop();
    await ngircd.stop();
    throw error;
  }
}
