// `parley accounts`: the per-user gateway's account map, for operators: link an account for a SIP
// user, list, remove, and try an account's password against its network. Passwords are read from
// standard input or a prompt, sealed with the gateway key, and never printed.
import { LOG_LEVELS, type Config } from '../config/index.js';
import type { GatewayOptions, NetworkAdapter, NetworkId, SecretBox } from '../gateway/index.js';
import { createLogger } from '../log/index.js';
import type { GatewayAccount, GatewayAccountStore } from '../store/index.js';
import { listCommands, parseCommandLine, printHelp, runCommandGroup, UsageError, type Command } from './args.js';
import { readPassword } from './password.js';
import { formatTable } from './rpc.js';
import { loadStoreConfig, STORE_OPTIONS, withStore } from './store.js';

const STORE_OPTIONS_HELP = `  -c, --config FILE         configuration file, for the domains, gateway.secret_key (or the
                            environment's PARLEY_GATEWAY_KEY), gateway.db_table and the database
      --db URL              database, instead of the configuration's
  -h, --help                show this help`;

const RUNNING_NOTE = `A running Parley reads accounts when their SIP user registers; a session it has open keeps
its credentials until it ends. \`parley rpc gateway.accounts.add\` / \`remove\` change a running
server's accounts at once.`;

/** What the commands that seal or open passwords need: the gateway's options, the networks it serves, the key. */
export interface GatewayTools {
  gateway: typeof import('../gateway/index.js');
  options: GatewayOptions;
  networks: ReadonlyMap<NetworkId, NetworkAdapter>;
  box: SecretBox;
}

/** The networks as `parley start` would serve them; their sessions log at `logLevel` to stderr. */
export async function gatewayTools(config: Config, logLevel = 'silent'): Promise<GatewayTools> {
  // Loaded only here: the networks' client libraries are for the commands that need them.
  const gateway = await import('../gateway/index.js');
  const options = gateway.gatewayOptions(config);
  const adapters = gateway.createNetworks(options, createLogger(logLevel, process.stderr));
  return { gateway, options, networks: new Map(adapters.map((adapter) => [adapter.id, adapter])), box: new gateway.SecretBox(options.secretKey) };
}

/** Runs `use` on the account map of the configured store (gateway.db_table). */
function withAccounts<T>(config: Config, use: (accounts: GatewayAccountStore) => Promise<T>): Promise<T> {
  return withStore(config, async (store) => use(await store.gatewayAccountsIn(config.gateway.db_table)));
}

/** Runs `work`; an AccountError about what was given becomes a UsageError (exit 2). */
async function asUsageErrors<T>(usage: string, work: () => T): Promise<T> {
  const { AccountError } = await import('../gateway/accounts.js');
  try {
    return work();
  } catch (error) {
    if (error instanceof AccountError && error.kind === 'usage') throw new UsageError(error.message, usage);
    throw error;
  }
}

function parseId(text: string | undefined, usage: string): number {
  if (text === undefined || !/^\d{1,15}$/.test(text)) throw new UsageError(`expected one account ID (a number, as \`parley accounts list\` shows), got ${text === undefined ? 'none' : `"${text}"`}`, usage);
  return Number(text);
}

async function accountById(accounts: GatewayAccountStore, id: number): Promise<GatewayAccount> {
  const account = await accounts.get(id);
  if (!account) throw new Error(`no linked account ${id}`);
  return account;
}

/** "xmpp alice@example.net of sip:alice@example.com" */
function nameOf(account: GatewayAccount, network: string): string {
  return `${network} ${account.extUser} of ${account.sipUser}`;
}

const ADD_USAGE = `Usage: parley accounts add SIP_USER NETWORK EXT_USER [--server HOST[:PORT]] [--tls MODE]
                          [--config FILE] [--db URL]

Links the account EXT_USER (user@server) on NETWORK (xmpp or irc; the seeds' names, such as
jabber, prpl-jabber or prpl-irc, are accepted) for the SIP user SIP_USER (user@domain or
sip:user@domain, of a configured domain), as its user would with #link. An account already linked gets the new password, server and TLS mode,
and is enabled again. The password is read from standard input when it is not a terminal, and
prompted for otherwise; it is stored sealed with the gateway key, never printed.

${RUNNING_NOTE}

Options:
      --server HOST[:PORT]  server to connect to (default: the account's domain)
      --tls MODE            starttls (default), direct (TLS from the first byte) or none
${STORE_OPTIONS_HELP}
`;

const addCommand: Command = {
  name: 'add',
  summary: 'link an account on another network for a SIP user, or change it',
  async run(args) {
    const options = { ...STORE_OPTIONS, server: { type: 'string' }, tls: { type: 'string' } } as const;
    const { values, positionals } = parseCommandLine({ args, options, allowPositionals: true }, ADD_USAGE);
    if (values.help) return printHelp(ADD_USAGE);
    if (positionals.length !== 3) throw new UsageError('expected SIP_USER NETWORK EXT_USER', ADD_USAGE);
    const [address, network, extUser] = positionals as [string, string, string];
    const config = loadStoreConfig(values);
    const { gateway, options: gatewayOptions, networks, box } = await gatewayTools(config);
    const request = { network, extUser, server: values.server, tls: values.tls };
    // Everything that can be checked is, before the password is asked for.
    const sipUser = await asUsageErrors(ADD_USAGE, () => {
      const checked = gateway.sipUserOf(address, gatewayOptions.localDomains);
      gateway.checkAccount(checked, request, networks);
      return checked;
    });
    const { account } = gateway.prepareAccount(sipUser, { ...request, password: await readPassword() }, networks, box);
    const { stored, existed } = await withAccounts(config, async (accounts) => {
      const existed = (await accounts.listFor(sipUser)).some((a) => a.extProt === account.extProt && a.extUser === account.extUser);
      return { stored: await accounts.put(account), existed };
    });
    const via = stored.server ? `, server ${stored.server}${stored.port ? `:${stored.port}` : ''}` : stored.port ? `, port ${stored.port}` : '';
    process.stdout.write(`${existed ? 'updated' : 'added'} account ${stored.id}: ${nameOf(stored, account.extProt)} (TLS ${stored.tls}${via})\n`);
    return 0;
  },
};

const LIST_USAGE = `Usage: parley accounts list [SIP_USER] [--config FILE] [--db URL]

Prints the linked accounts, all or those of one SIP user: their ID, SIP user, network, account,
server, TLS mode, and whether they are enabled (or why they were disabled). Never passwords.

Options:
${STORE_OPTIONS_HELP}
`;

const listCommand: Command = {
  name: 'list',
  summary: 'list linked accounts (never their passwords)',
  async run(args) {
    const { values, positionals } = parseCommandLine({ args, options: STORE_OPTIONS, allowPositionals: true }, LIST_USAGE);
    if (values.help) return printHelp(LIST_USAGE);
    if (positionals.length > 1) throw new UsageError('expected at most one SIP_USER', LIST_USAGE);
    const config = loadStoreConfig(values);
    // Loaded only here, as the other commands do not need it; it loads no network client.
    const { accountSummary, sipUserOf } = await import('../gateway/accounts.js');
    const address = positionals[0];
    const domains = new Set(config.domains.map((domain) => domain.toLowerCase()));
    const sipUser = address === undefined ? undefined : await asUsageErrors(LIST_USAGE, () => sipUserOf(address, domains));
    const accounts = await withAccounts(config, (map) => (sipUser === undefined ? map.list() : map.listFor(sipUser)));
    if (accounts.length === 0) {
      process.stdout.write('no linked accounts\n');
      return 0;
    }
    const rows = accounts.map(accountSummary).map((a) => [
      String(a.id), a.sipUser, a.network, a.extUser, a.server === null ? '-' : `${a.server}${a.port === null ? '' : `:${a.port}`}`, a.tls,
      a.enabled ? 'enabled' : `disabled: ${a.lastError ?? 'refused'}`,
    ]);
    process.stdout.write(formatTable(['ID', 'SIP USER', 'NETWORK', 'ACCOUNT', 'SERVER', 'TLS', 'STATE'], rows));
    return 0;
  },
};

const REMOVE_USAGE = `Usage: parley accounts remove ID [--config FILE] [--db URL]

Removes a linked account and its sealed password. Exit code 1 when there is no such account.

${RUNNING_NOTE}

Options:
${STORE_OPTIONS_HELP}
`;

const removeCommand: Command = {
  name: 'remove',
  summary: 'remove a linked account',
  async run(args) {
    const { values, positionals } = parseCommandLine({ args, options: STORE_OPTIONS, allowPositionals: true }, REMOVE_USAGE);
    if (values.help) return printHelp(REMOVE_USAGE);
    if (positionals.length > 1) throw new UsageError('expected one account ID', REMOVE_USAGE);
    const id = parseId(positionals[0], REMOVE_USAGE);
    const removed = await withAccounts(loadStoreConfig(values), async (accounts) => {
      const account = await accountById(accounts, id);
      await accounts.remove(id);
      return account;
    });
    process.stdout.write(`removed account ${id}: ${nameOf(removed, removed.extProt)}; its password is deleted\n`);
    return 0;
  },
};

const TEST_USAGE = `Usage: parley accounts test ID [--timeout SECONDS] [--log-level LEVEL] [--config FILE] [--db URL]

Logs the linked account in to its network once, with the stored password, and prints whether the
network accepted it, or its reason. Exit code 0 when it did, 1 when not (refused, unreachable
within the timeout), 2 for a wrong command line. The account is left as it is. While Parley runs a
session for the account, most servers let this login take that session's place for a moment.

Options:
      --timeout SECONDS     how long to wait for the network's answer (default: 20)
      --log-level LEVEL     show the session's log on stderr (info shows connection attempts)
${STORE_OPTIONS_HELP}
`;

const testCommand: Command = {
  name: 'test',
  summary: "try a linked account's password against its network",
  async run(args) {
    const options = { ...STORE_OPTIONS, timeout: { type: 'string', default: '20' }, 'log-level': { type: 'string', default: 'silent' } } as const;
    const { values, positionals } = parseCommandLine({ args, options, allowPositionals: true }, TEST_USAGE);
    if (values.help) return printHelp(TEST_USAGE);
    if (positionals.length > 1) throw new UsageError('expected one account ID', TEST_USAGE);
    const id = parseId(positionals[0], TEST_USAGE);
    const timeout = Number(values.timeout);
    if (!(timeout > 0 && timeout <= 600)) throw new UsageError(`--timeout expects seconds from 1 to 600, got "${values.timeout}"`, TEST_USAGE);
    if (!(LOG_LEVELS as readonly string[]).includes(values['log-level'])) throw new UsageError(`--log-level expects one of ${LOG_LEVELS.join(', ')}`, TEST_USAGE);
    const config = loadStoreConfig(values);
    const { gateway, options: gatewayOptions, networks, box } = await gatewayTools(config, values['log-level']);
    const account = await withAccounts(config, (accounts) => accountById(accounts, id));
    const network = gateway.networkOf(account.extProt) ?? account.extProt;
    const result = await gateway.testAccount(account, networks, box, gateway.sessionSettings(gatewayOptions), timeout * 1000);
    process.stdout.write(`account ${id}: ${nameOf(account, network)}: ${result.ok ? 'ok, logged in' : `failed: ${result.reason}`}\n`);
    return result.ok ? 0 : 1;
  },
};

const ACCOUNTS_COMMANDS = [addCommand, listCommand, removeCommand, testCommand];

const USAGE = `Usage: parley accounts <command> [options]

Manages the per-user gateway's linked accounts: SIP users' own accounts on other networks
(the account map, Kamailio purple's purplemap), as users do with #link, #accounts and #unlink.

Commands:
${listCommands(ACCOUNTS_COMMANDS)}

Run \`parley accounts <command> --help\` for a command's options.
`;

export const accountsCommand: Command = {
  name: 'accounts',
  summary: "add, list, remove and test the gateway's linked accounts",
  run: (args) => runCommandGroup({ usage: USAGE, commands: ACCOUNTS_COMMANDS }, args),
};
