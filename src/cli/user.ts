import { realmFor, type Config } from '../config/index.js';
import { computeHa1 } from '../registrar/credentials.js';
import { listCommands, parseCommandLine, printHelp, runCommandGroup, UsageError, type Command } from './args.js';
import { readPassword } from './password.js';
import { loadStoreConfig, STORE_OPTIONS, withStore } from './store.js';

const STORE_OPTIONS_HELP = `  -c, --config FILE         configuration file, for the domains, the realm and the database
      --db URL              database, instead of the configuration's
  -h, --help                show this help`;

// SIP user parts cannot hold '@', ':' or spaces (RFC 3261 §25.1), and ':' would also make the
// digest's username:realm:password ambiguous.
const ADDRESS = /^([^@:\s]+)@([^@:\s]+)$/;

function parseAddress(text: string, usage: string): { username: string; domain: string } {
  const match = ADDRESS.exec(text);
  if (!match) throw new UsageError(`expected USER@DOMAIN, got "${text}"`, usage);
  return { username: match[1], domain: match[2].toLowerCase() };
}

function requireServedDomain(config: Config, domain: string): void {
  if (!config.domains.includes(domain)) {
    throw new Error(`${domain} is not one of the configured domains (${config.domains.join(', ')})`);
  }
}

const ADD_USAGE = `Usage: parley user add USER@DOMAIN [--password PASSWORD] [--config FILE] [--db URL]

Creates the user, or sets a new password for an existing one. Only the digest hashes (HA1, MD5
and SHA-256) are stored. Without --password, the password is read from standard input when it is
not a terminal, and prompted for otherwise; --password leaves it in the shell history.

Options:
  -p, --password PASSWORD   the password
${STORE_OPTIONS_HELP}
`;

const addCommand: Command = {
  name: 'add',
  summary: 'create a user or change their password',
  async run(args) {
    const options = { ...STORE_OPTIONS, password: { type: 'string', short: 'p' } } as const;
    const { values, positionals } = parseCommandLine({ args, options, allowPositionals: true }, ADD_USAGE);
    if (values.help) return printHelp(ADD_USAGE);
    if (positionals.length !== 1) throw new UsageError('expected one USER@DOMAIN', ADD_USAGE);
    const { username, domain } = parseAddress(positionals[0], ADD_USAGE);
    const config = loadStoreConfig(values);
    requireServedDomain(config, domain);
    const password = values.password ?? (await readPassword());
    if (password === '') throw new Error('the password is empty');
    const realm = realmFor(config, domain);
    await withStore(config, (store) => store.users.put({ username, domain, ...computeHa1(username, realm, password) }));
    process.stdout.write(`saved ${username}@${domain} (realm ${realm})\n`);
    return 0;
  },
};

const DEL_USAGE = `Usage: parley user del USER@DOMAIN [--config FILE] [--db URL]

Removes the user. Exit code 1 when there is no such user.

Options:
${STORE_OPTIONS_HELP}
`;

const delCommand: Command = {
  name: 'del',
  summary: 'remove a user',
  async run(args) {
    const { values, positionals } = parseCommandLine({ args, options: STORE_OPTIONS, allowPositionals: true }, DEL_USAGE);
    if (values.help) return printHelp(DEL_USAGE);
    if (positionals.length !== 1) throw new UsageError('expected one USER@DOMAIN', DEL_USAGE);
    const { username, domain } = parseAddress(positionals[0], DEL_USAGE);
    const removed = await withStore(loadStoreConfig(values), (store) => store.users.remove(username, domain));
    if (!removed) throw new Error(`no user ${username}@${domain}`);
    process.stdout.write(`removed ${username}@${domain}\n`);
    return 0;
  },
};

const LIST_USAGE = `Usage: parley user list [--domain DOMAIN] [--config FILE] [--db URL]

Prints USER@DOMAIN for every user, one a line.

Options:
  -d, --domain DOMAIN       only the users of this domain
${STORE_OPTIONS_HELP}
`;

const listCommand: Command = {
  name: 'list',
  summary: 'list users',
  async run(args) {
    const options = { ...STORE_OPTIONS, domain: { type: 'string', short: 'd' } } as const;
    const { values } = parseCommandLine({ args, options }, LIST_USAGE);
    if (values.help) return printHelp(LIST_USAGE);
    const users = await withStore(loadStoreConfig(values), (store) => store.users.list(values.domain?.toLowerCase()));
    process.stdout.write(users.map((user) => `${user.username}@${user.domain}\n`).join(''));
    return 0;
  },
};

const USER_COMMANDS = [addCommand, delCommand, listCommand];

const USAGE = `Usage: parley user <command> [options]

Manages the users who may authenticate with digest (auth.policy: required).

Commands:
${listCommands(USER_COMMANDS)}

Run \`parley user <command> --help\` for a command's options.
`;

export const userCommand: Command = {
  name: 'user',
  summary: 'add, remove and list users',
  run: (args) => runCommandGroup({ usage: USAGE, commands: USER_COMMANDS }, args),
};
