import { formatListener, loadConfig, type Config } from '../config/index.js';
import { redactUrlPassword } from '../log/index.js';
import { CONFIG_OPTION, HELP_OPTION, parseCommandLine, printHelp, type Command } from './args.js';

const USAGE = `Usage: parley check-config [--config FILE]

Loads and validates the configuration the way \`parley start\` does, then prints a summary
or every problem found. Exit code 0 when valid, 2 when not.

Options:
  -c, --config FILE   configuration file (default: none, the built-in defaults)
  -h, --help          show this help
`;

export function summarize(config: Config): string {
  return [
    `listening on ${config.listen.map(formatListener).join(', ')}`,
    `domains ${config.domains.join(', ')}`,
    `database ${redactUrlPassword(config.database)}`,
  ].join('; ');
}

export const checkConfigCommand: Command = {
  name: 'check-config',
  summary: 'validate a configuration file and summarize it',
  run(args) {
    const { values } = parseCommandLine({ args, options: { ...HELP_OPTION, ...CONFIG_OPTION } }, USAGE);
    if (values.help) return Promise.resolve(printHelp(USAGE));
    process.stdout.write(`config OK: ${summarize(loadConfig(values.config))}\n`);
    return Promise.resolve(0);
  },
};
