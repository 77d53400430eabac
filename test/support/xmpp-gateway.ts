// The XMPP gateway in component mode as the end-to-end tests drive it: a real Prosody with XMPP
// users online, a Parley linked to it as a component, and the separator convention by which each
// side addresses the other.
import { eventually } from './eventually.js';
import { Prosody } from './prosody.js';
import { type ConfigPatch, type TestServer, startServer } from './server.js';
import { type TestUA, registeredTcpUser } from './ua.js';
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

/** One `T` for each name of the tuple `Names`. */
type Each<Names extends string[], T> = { [K in keyof Names]: T };

/** The component gateway end to end: a real Prosody with XMPP users online, a linked Parley, and SIP users registered on it. */
export interface ComponentGateway<X extends string[] = string[], S extends string[] = string[]> {
  prosody: Prosody;
  parley: TestServer;
  /** Online on Prosody (password "password"), in the order asked for. */
  xmppUsers: Each<X, XmppUser>;
  /** Registered on Parley over TCP, in the order asked for. */
  sipUsers: Each<S, TestUA>;
  /** Closes the users, then stops Parley and Prosody (by pid). */
  stop(): Promise<void>;
}

export interface ComponentGatewayOptions<X extends string[], S extends string[]> {
  xmppUsers: [...X];
  sipUsers: [...S];
  /** Each XMPP user fetches its roster before Parley links, as clients that take part in presence do. */
  rosters?: boolean;
}

export async function startComponentGatewayWith<X extends string[], S extends string[]>(options: ComponentGatewayOptions<X, S>): Promise<ComponentGateway<X, S>> {
  const prosody = await Prosody.start();
  const xmpp: XmppUser[] = [];
  const sip: TestUA[] = [];
  let parley: TestServer | undefined;
  const stop = async () => {
    for (const ua of sip) ua.close();
    await Promise.all(xmpp.map((user) => user.stop()));
    await parley?.stop();
    await prosody.stop();
  };
  try {
    xmpp.push(...(await xmppUsers(prosody, ...options.xmppUsers)));
    if (options.rosters) await Promise.all(xmpp.map((user) => user.fetchRoster()));
    parley = await startComponentGateway(prosody);
    for (const name of options.sipUsers) sip.push(await registeredTcpUser(parley.tcp, name));
    return { prosody, parley, xmppUsers: xmpp as Each<X, XmppUser>, sipUsers: sip as Each<S, TestUA>, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
