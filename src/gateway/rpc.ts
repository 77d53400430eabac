// The per-user gateway's RPC methods: the account map (list, add, remove, test) and the service's
// counts. Passwords go in (gateway.accounts.add) and never come out: results are accountSummary's,
// and the dispatcher logs neither parameters nor results.
import { RpcError, RpcErrorCode, invalidParams, type RpcMethods } from '../plugin/index.js';
import type { Config } from '../config/index.js';
import type { GatewayAccount, GatewayAccountStore, Store } from '../store/index.js';
import { AccountError, accountSummary, prepareAccount, sessionSettings, sipUserOf, testAccount } from './accounts.js';
import type { SessionState } from './adapter.js';
import { gatewayOptions } from './options.js';
import type { GatewayService } from './service.js';

const ID = { name: 'id', integer: true };
const DEFAULT_TEST_TIMEOUT_S = 20;
const MAX_TEST_TIMEOUT_S = 120;

/** What the methods act on: the service and the store once started, and the served domains. */
export interface GatewayScope {
  gateway(): GatewayService;
  store(): Store;
  domains(): ReadonlySet<string>;
}

export function gatewayMethods(scope: GatewayScope, config: Config): RpcMethods {
  const gateway = scope.gateway;
  const accountMap = (): Promise<GatewayAccountStore> => scope.store().gatewayAccountsIn(config.gateway.db_table);
  const accountById = async (id: string): Promise<GatewayAccount> => {
    const account = await (await accountMap()).get(Number(id));
    if (!account) throw new RpcError(RpcErrorCode.REFUSED, `no linked account ${id}`);
    return account;
  };
  const summary = (account: GatewayAccount, session: SessionState = gateway().sessionState(account.id)) => ({
    ...accountSummary(account),
    session,
    createdAt: new Date(account.createdAt).toISOString(),
    updatedAt: new Date(account.updatedAt).toISOString(),
  });

  return {
    'gateway.accounts.list': {
      params: [{ name: 'sip_user', optional: true }],
      call: async ({ sip_user: sipUser }) => {
        const accounts = await accountMap();
        const list = sipUser === undefined ? await accounts.list() : await accounts.listFor(asRpcErrors(() => sipUserOf(sipUser, scope.domains())));
        return list.map((account) => summary(account));
      },
    },
    'gateway.accounts.add': {
      params: [
        { name: 'sip_user' }, { name: 'network' }, { name: 'ext_user' }, { name: 'password' },
        { name: 'server', optional: true }, { name: 'port', optional: true, integer: true }, { name: 'tls', optional: true },
      ],
      call: async ({ sip_user: sipUser, network, ext_user: extUser, password, server, port, tls }) => {
        const service = gateway();
        const { account } = asRpcErrors(() =>
          prepareAccount(sipUserOf(sipUser!, scope.domains()), { network: network!, extUser: extUser!, password: password!, server, port, tls }, service.networks, service.secrets),
        );
        const stored = await (await accountMap()).put(account);
        // New credentials: a session with the old ones ends, and one with these starts if the user is registered.
        await service.accountChanged(stored.id);
        return summary(stored);
      },
    },
    'gateway.accounts.remove': {
      params: [ID],
      call: async ({ id }) => {
        const service = gateway();
        const account = await accountById(id!);
        await (await accountMap()).remove(account.id);
        await service.accountChanged(account.id);
        return summary(account, 'stopped');
      },
    },
    'gateway.accounts.test': {
      params: [ID, { name: 'timeout', optional: true, integer: true }],
      call: async ({ id, timeout }) => {
        const service = gateway();
        const account = await accountById(id!);
        // A second login would take the place of the account's session on most servers.
        if (service.sessionState(account.id) === 'online') return { id: account.id, ok: true, detail: 'its session is online' };
        const seconds = Math.min(Math.max(Number(timeout ?? DEFAULT_TEST_TIMEOUT_S), 1), MAX_TEST_TIMEOUT_S);
        const result = await testAccount(account, service.networks, service.secrets, sessionSettings(gatewayOptions(config)), seconds * 1000);
        return { id: account.id, ...result };
      },
    },
    'gateway.status': { params: [], call: () => gateway().stats },
  };
}

/** A malformed account is the caller's params' fault (-32602); one not possible here is refused (-32000). */
function asRpcErrors<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (!(error instanceof AccountError)) throw error;
    throw error.kind === 'usage' ? invalidParams(error.message) : new RpcError(RpcErrorCode.REFUSED, error.message);
  }
}
