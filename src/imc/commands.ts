// The #command language of the rooms: one line, a name, whitespace-separated arguments.
// Names of the original imc module and of current Kamailio are accepted as aliases.

export type CommandName =
  | 'create' | 'join' | 'invite' | 'add' | 'accept' | 'reject' | 'remove' | 'leave' | 'destroy'
  | 'members' | 'rooms' | 'help' | 'modify' | 'nick' | 'topic';

interface CommandSpec {
  name: CommandName;
  aliases: string[];
  syntax: string;
  summary: string;
  /** Arguments that must be present. */
  required: number;
  /** Most arguments; Infinity for commands taking free text. */
  max: number;
}

const SPECS: CommandSpec[] = [
  { name: 'create', aliases: [], syntax: 'create <room> [private]', summary: 'create a room and become its owner', required: 1, max: 2 },
  { name: 'join', aliases: [], syntax: 'join [room]', summary: 'join a room (created when missing, if allowed)', required: 0, max: 1 },
  { name: 'invite', aliases: [], syntax: 'invite <user> [room]', summary: 'invite a user (owner and admins)', required: 1, max: 2 },
  { name: 'add', aliases: [], syntax: 'add <user> [room]', summary: 'add a user without invitation (owner and admins)', required: 1, max: 2 },
  { name: 'accept', aliases: [], syntax: 'accept [room]', summary: 'accept an invitation', required: 0, max: 1 },
  { name: 'reject', aliases: ['deny'], syntax: 'reject [room]', summary: 'decline an invitation', required: 0, max: 1 },
  { name: 'remove', aliases: ['kick'], syntax: 'remove <user> [room]', summary: 'remove a member (owner and admins)', required: 1, max: 2 },
  { name: 'leave', aliases: ['exit', 'part'], syntax: 'leave [room]', summary: 'leave a room (the owner leaving destroys it)', required: 0, max: 1 },
  { name: 'destroy', aliases: [], syntax: 'destroy [room]', summary: 'destroy a room (owner)', required: 0, max: 1 },
  { name: 'members', aliases: ['list'], syntax: 'members [room]', summary: 'list the members and their roles', required: 0, max: 1 },
  { name: 'rooms', aliases: [], syntax: 'rooms', summary: 'list the public rooms of this domain', required: 0, max: 0 },
  { name: 'help', aliases: [], syntax: 'help', summary: 'this list', required: 0, max: 0 },
  { name: 'modify', aliases: ['role'], syntax: 'modify <user> admin|member [room]', summary: 'grant or revoke admin (owner)', required: 2, max: 3 },
  { name: 'nick', aliases: [], syntax: 'nick <name>', summary: 'the name shown for you in this room', required: 1, max: 1 },
  { name: 'topic', aliases: [], syntax: 'topic [text]', summary: 'show the topic, or set it (owner and admins)', required: 0, max: Infinity },
];

const BY_NAME = new Map<string, CommandSpec>();
for (const spec of SPECS) for (const name of [spec.name, ...spec.aliases]) BY_NAME.set(name, spec);

export interface Command {
  name: CommandName;
  args: string[];
  /** Everything after the command name, for free-text commands. */
  rest: string;
  syntax: string;
}

export type ParsedCommand = { ok: true; command: Command } | { ok: false; error: string };

export function parseCommand(line: string, startChar: string): ParsedCommand {
  const text = line.slice(startChar.length).trim();
  const match = /^(\S+)\s*(.*)$/s.exec(text);
  if (!match) return { ok: false, error: `empty command; send ${startChar}help for the list` };
  const word = match[1]!.toLowerCase();
  const spec = BY_NAME.get(word);
  if (!spec) return { ok: false, error: `unknown command "${truncate(match[1]!)}"; send ${startChar}help for the list` };
  const rest = match[2]!.trim();
  const args = rest === '' ? [] : rest.split(/\s+/);
  const syntax = `${startChar}${spec.syntax}`;
  if (args.length < spec.required) return { ok: false, error: `missing argument; usage: ${syntax}` };
  if (args.length > spec.max) return { ok: false, error: `too many arguments; usage: ${syntax}` };
  return { ok: true, command: { name: spec.name, args, rest, syntax } };
}

export function helpText(startChar: string): string {
  const width = Math.max(...SPECS.map((s) => s.syntax.length)) + 2;
  const lines = SPECS.map((s) => {
    const aliases = s.aliases.length ? ` (also ${s.aliases.map((a) => startChar + a).join(', ')})` : '';
    return `${(startChar + s.syntax).padEnd(width + 1)}${s.summary}${aliases}`;
  });
  return ['Room commands ([room] defaults to the room you write to):', ...lines].join('\n');
}

function truncate(text: string): string {
  return text.length > 32 ? `${text.slice(0, 32)}…` : text;
}
