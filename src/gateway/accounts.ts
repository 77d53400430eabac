// Linked accounts as the operator's tools and the #link command make them: checking what was given
// (network, account, server, TLS mode) and sealing the password, the same way whoever asks; and
// trying an account's password once against its network.
import { type SipUri, parseTypedAddress, sipAddress } from '../sip/index.js';
import type { GatewayAccount, GatewayTlsMode, NewGatewayAccount } from '../store/types.js';
import type { NetworkAdapter, SessionSettings } from './adapter.js';
import type { GatewayOptions } from './options.js';
import { type NetworkId, networkOf } from './protocols.js';
import { type SecretBox, sealContext } from './secrets.js';

const HOST = /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/i;
const TLS_MODES: ReadonlySet<string> = new Set<GatewayTlsMode>(['starttls', 'direct', 'none']);

/**
 * Why an account cannot be linked or found. `usage`: what was given is malformed (a command's usage
 * applies); `refused`: well-formed, but not possible here (a network not served, a foreign domain).
 */
export class AccountError extends Error {
  override name = 'AccountError';

  constructor(
    message: string,
    readonly kind: 'usage' | 'refused',
  ) {
    super(message);
  }
}

/** An account to link, as a user or an operator wrote it. */
export interface AccountRequest {
  /** A network id or a seed's protocol name (jabber, prpl-jabber, gtalk...), any case. */
  network: string;
  extUser: string;
  password: string;
  /** "host" or "host:port"; absent: the account's own domain. */
  server?: string;
  port?: number | string;
  /** starttls (the default), direct or none. */
  tls?: string;
}

export interface PreparedAccount {
  /** Ready for GatewayAccountStore.put: the network id, the normalized account, the password sealed. */
  account: NewGatewayAccount;
  adapter: NetworkAdapter;
}

/** Checks an account to link for `sipUser` and seals its password; throws AccountError saying what is wrong. */
export function prepareAccount(sipUser: string, request: AccountRequest, networks: ReadonlyMap<NetworkId, NetworkAdapter>, box: SecretBox): PreparedAccount {
  const { account, adapter } = checkAccount(sipUser, request, networks);
  if (request.password === '') throw new AccountError('the password is empty', 'usage');
  return { account: { ...account, extPass: box.seal(request.password, sealContext(account)) }, adapter };
}

/** prepareAccount's checks of all but the password (so that a command can make them before asking for it); nothing sealed. */
export function checkAccount(sipUser: string, request: Omit<AccountRequest, 'password'>, networks: ReadonlyMap<NetworkId, NetworkAdapter>): PreparedAccount {
  const network = networkOf(request.network);
  if (!network) throw new AccountError(`unknown network "${request.network.slice(0, 32)}" (served here: ${[...networks.keys()].join(', ')})`, 'usage');
  const adapter = networks.get(network);
  if (!adapter) throw new AccountError(`the ${network} network is not served here`, 'refused');
  const extUser = adapter.normalizeUser(request.extUser);
  if (!extUser) throw new AccountError(`"${request.extUser.slice(0, 64)}" is not a ${network} account (expected user@server)`, 'usage');
  const tls = (request.tls ?? 'starttls').toLowerCase();
  if (!TLS_MODES.has(tls)) throw new AccountError(`tls must be starttls, direct or none, not "${request.tls!.slice(0, 16)}"`, 'usage');
  const { server, port } = serverOf(request);
  const account = { sipUser, extProt: network, extUser, server, port, tls: tls as GatewayTlsMode };
  // Stored as the session will really use it: the configured server's mode, IRC's direct TLS for starttls.
  return { account: { ...account, tls: adapter.endpointOf(account).tls }, adapter };
}

function serverOf(request: Pick<AccountRequest, 'server' | 'port'>): { server?: string; port?: number } {
  let server: string | undefined;
  let port: number | undefined;
  if (request.server !== undefined) {
    const hostPort = /^([^:]+)(?::(\d{1,5}))?$/.exec(request.server);
    if (!hostPort || !HOST.test(hostPort[1]!)) throw new AccountError(`"${request.server.slice(0, 64)}" is not host[:port]`, 'usage');
    server = hostPort[1]!.toLowerCase();
    port = hostPort[2] === undefined ? undefined : portOf(hostPort[2]);
  }
  if (request.port !== undefined) {
    if (port !== undefined) throw new AccountError('the port is given twice (in the server and on its own)', 'usage');
    port = portOf(String(request.port));
  }
  return { server, port };
}

function portOf(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new AccountError(`the port must be a number from 1 to 65535, not "${text.slice(0, 16)}"`, 'usage');
  return port;
}

/** "sip:alice@example.com", "sips:..." or "alice@example.com" of a served domain -> the account map's "sip:alice@example.com". */
export function sipUserOf(address: string, localDomains: ReadonlySet<string>): string {
  let uri: SipUri | undefined;
  try {
    uri = parseTypedAddress(address);
  } catch {
    // Reported below, as any other address that is not user@domain.
  }
  if (!uri?.user || !uri.host || uri.port !== undefined || uri.params.size > 0) {
    throw new AccountError(`expected a SIP user, user@domain or sip:user@domain, not "${address.slice(0, 64)}"`, 'usage');
  }
  const domain = uri.host.toLowerCase();
  if (!localDomains.has(domain)) throw new AccountError(`${domain} is not one of the domains served here (${[...localDomains].join(', ')})`, 'refused');
  return sipAddress(uri.user, domain);
}

/** What may be shown of an account, to its user or an operator: everything but the password. */
export function accountSummary(account: GatewayAccount) {
  return {
    id: account.id,
    sipUser: account.sipUser,
    network: networkOf(account.extProt) ?? account.extProt,
    extUser: account.extUser,
    server: account.server ?? null,
    port: account.port ?? null,
    tls: account.tls,
    enabled: account.enabled,
    lastError: account.lastError ?? null,
  };
}

/** How the gateway's sessions reconnect and announce themselves. */
export function sessionSettings(options: GatewayOptions): SessionSettings {
  return { priority: options.priority, reconnectMinMs: options.reconnectMinMs, reconnectMaxMs: options.reconnectMaxMs };
}

export type AccountTestResult = { ok: true } | { ok: false; reason: string };

/**
 * Logs the account in with a session of its own, once: ok when the session comes online, the
 * network's reason when it refuses the account, why the first attempt could not connect (refused,
 * DNS...), a timeout when none of these happens in `timeoutMs`. The session is stopped in every case.
 */
export async function testAccount(
  account: GatewayAccount,
  networks: ReadonlyMap<NetworkId, NetworkAdapter>,
  box: SecretBox,
  settings: SessionSettings,
  timeoutMs: number,
): Promise<AccountTestResult> {
  const network = networkOf(account.extProt);
  const adapter = network && networks.get(network);
  if (!adapter) return { ok: false, reason: `the ${network ?? account.extProt} network is not served here` };
  let password: string;
  try {
    password = box.open(account.extPass ?? '', sealContext(account));
  } catch {
    return { ok: false, reason: 'the stored password cannot be read (sealed with another gateway key?); add the account again' };
  }
  const session = adapter.createSession({ id: account.id, extUser: account.extUser, password, server: account.server, port: account.port, tls: account.tls }, settings);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<AccountTestResult>((resolve) => {
      session.once('online', () => resolve({ ok: true }));
      session.once('failed', (reason) => resolve({ ok: false, reason }));
      session.once('unreachable', (reason) => resolve({ ok: false, reason }));
      timer = setTimeout(() => resolve({ ok: false, reason: `not logged in within ${timeoutMs / 1000} s (is the server reachable?)` }), timeoutMs);
      session.start();
    });
  } finally {
    clearTimeout(timer);
    await session.stop();
  }
}
