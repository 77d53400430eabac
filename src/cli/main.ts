// The `parley` command: picks the subcommand, and turns what went wrong into a message on stderr
// and an exit code (2: the command line or the configuration is wrong; 1: anything else).
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/index.js';
import { listCommands, runCommandGroup, UsageError } from './args.js';
import { accountsCommand } from './accounts.js';
import { certCommand } from './cert.js';
import { devicesCommand } from './devices.js';
import { checkConfigCommand } from './check-config.js';
import { importImcCommand } from './import-imc.js';
import { importPurplemapCommand } from './import-purplemap.js';
import { membersCommand, roomsCommand, rpcCommand } from './rpc.js';
import { startCommand } from './start.js';
import { userCommand } from './user.js';

const COMMANDS = [
  startCommand, checkConfigCommand, userCommand, accountsCommand, certCommand, rpcCommand, roomsCommand, membersCommand, devicesCommand, importImcCommand,
  importPurplemapCommand,
];

const USAGE = `Usage: parley <command> [options]

Parley, a SIP instant-messaging server.

Commands:
${listCommands(COMMANDS)}

Options:
  -h, --help      show this help; \`parley <command> --help\` shows a command's
  -V, --version   print the version
`;

function version(): string {
  // Two levels up from both src/cli/main.ts and dist/cli/main.js.
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === '--version' || args[0] === '-V') {
    process.stdout.write(`parley ${version()}\n`);
    return 0;
  }
  try {
    return await runCommandGroup({ usage: USAGE, commands: COMMANDS }, args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`parley: ${error.message}\n\n${error.usage}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    process.stderr.write(`parley: ${(error as Error).message}\n`);
    return 1;
  }
}

// Exits explicitly: a command is over when it returns, whatever timers or sockets a library left.
process.exit(await main(process.argv.slice(2)));
