// What every subcommand shares: how it is described, how its arguments are parsed, and how a
// group of subcommands (parley itself, parley user) picks one.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface Command {
  name: string;
  /** One line, shown in the list of commands. */
  summary: string;
  /** Resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

export interface CommandGroup {
  usage: string;
  commands: readonly Command[];
}

/** A command line that cannot be understood: reported with the usage text, exit code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly usage: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;
export const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const;
export const DB_OPTION = { db: { type: 'string' } } as const;

/** parseArgs, with its complaints about the command line turned into UsageError. */
export function parseCommandLine<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code?.startsWith('ERR_PARSE_ARGS_')) throw new UsageError((error as Error).message, usage);
    throw error;
  }
}

export function printHelp(usage: string): number {
  process.stdout.write(usage);
  return 0;
}

export async function runCommandGroup(group: CommandGroup, args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === '--help' || name === '-h') return printHelp(group.usage);
  if (name === undefined) throw new UsageError('missing command', group.usage);
  const command = group.commands.find((candidate) => candidate.name === name);
  if (!command) throw new UsageError(`unknown command "${name}"`, group.usage);
  return command.run(rest);
}

export function listCommands(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((command) => command.name.length)) + 2;
  return commands.map((command) => `  ${command.name.padEnd(width)}${command.summary}`).join('\n');
}

/** "1 room", "3 rooms": a count with its noun, for reports. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
