// The XMPP gateway in component mode as the end-to-end tests drive it: a real Prosody with XMPP
// users online, a Parley linked to it as a component, and the separator convention by which each
// side addresses the other.
import assert from 'node:assert/strict';
import { eventually } from './eventually.js';
import type { Prosody } from './prosody.js';
import { type ConfigPatch, type TestServer, startServer } from './server.js';
import { TestUA } from './ua.js';
import { XmppUser } from './xmpp-user.js';

type XmppConfig = NonNullable<ConfigPatch['xmpp']>;

/** The gateway as a component of `prosody`, reconnecting fast; `extra` adds or overrides keys. */
export function componentConfig(prosody: Prosody, extra: XmppConfig = {}): XmppConfig {
  return {
    enabled: true,
    xmpp_domain: prosody.componentDomain,
    xmpp_password: prosody.componentSecret,
    xmpp_port: prosody.componentPort,
    reconnect_min: 0.1,
    reconnect_max: 0.5,
    ...extra,
  };
}

/** The address SIP users write to for the XMPP user `user` of `prosody`. */
export const gatewaySipAddress = (prosody: Prosody, user: string) => `sip:${user}*${prosody.domain}@${prosody.componentDomain}`;
/** The JID XMPP users write to for the SIP user `sipUser` of localhost. */
export const gatewayJid = (prosody: Prosody, sipUser: string) => `${sipUser}*localhost@${prosody.componentDomain}`;

/** Resolves once Parley's XMPP link (component or s2s listener) is online. */
export function xmppLinkOnline(parley: TestServer, what = 'XMPP link online'): Promise<true> {
  return eventually(() => parley.server.xmpp!.stats.state === 'online' || undefined, what);
}

/** Registers each of `names` on `prosody` (password "password") and connects them, in that order. */
export async function xmppUsers(prosody: Prosody, ...names: string[]): Promise<XmppUser[]> {
  await Promise.all(names.map((name) => prosody.register(name, 'password')));
  return Promise.all(names.map((name) => XmppUser.connect(prosody, name)));
}

/** A Parley linked to `prosody` as a component, once the link is online; `patch.xmpp` adds gateway keys. */
export async function startComponentGateway(prosody: Prosody, patch: ConfigPatch = {}): Promise<TestServer> {
  const parley = await startServer({ ...patch, xmpp: componentConfig(prosody, patch.xmpp) });
  await xmppLinkOnline(parley);
  return parley;
}

/** A SIP user of localhost on a TCP agent, registered. */
export async function registeredSipUser(parley: TestServer, user: string): Promise<TestUA> {
  const ua = await TestUA.create({ proto: 'tcp', user, server: parley.tcp });
  assert.equal((await ua.register()).status, 200);
  return ua;
}
