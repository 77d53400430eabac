// The #commands users send to the gateway's address: one line, a name, whitespace-separated arguments.
export type GatewayCommandName = 'link' | 'unlink' | 'accounts' | 'online' | 'offline' | 'status' | 'allow' | 'deny' | 'help';

interface Spec {
  name: GatewayCommandName;
  syntax: string;
  summary: string;
  required: number;
  max: number;
}

const SPECS: Spec[] = [
  { name: 'link', syntax: 'link <network> <account> <password> [host[:port]] [tls=starttls|direct|none]', summary: 'link your account on another network (xmpp), or change its password', required: 3, max: 5 },
  { name: 'unlink', syntax: 'unlink <account>', summary: 'remove a linked account (its number from #accounts, or its address)', required: 1, max: 1 },
  { name: 'accounts', syntax: 'accounts', summary: 'list your linked accounts (never their passwords)', required: 0, max: 0 },
  { name: 'online', syntax: 'online [account]', summary: 'connect your accounts (also done when you register)', required: 0, max: 1 },
  { name: 'offline', syntax: 'offline [account]', summary: 'disconnect your accounts', required: 0, max: 1 },
  { name: 'status', syntax: 'status', summary: 'the state of each session', required: 0, max: 0 },
  { name: 'allow', syntax: 'allow <contact>', summary: 'let a contact who asked see your presence', required: 1, max: 1 },
  { name: 'deny', syntax: 'deny <contact>', summary: 'refuse a contact who asked to see your presence', required: 1, max: 1 },
  { name: 'help', syntax: 'help', summary: 'this list', required: 0, max: 0 },
];

const BY_NAME = new Map(SPECS.map((spec) => [spec.name as string, spec]));

export interface GatewayCommand {
  name: GatewayCommandName;
  args: string[];
  syntax: string;
}

export type ParsedGatewayCommand = { ok: true; command: GatewayCommand } | { ok: false; error: string };

export function parseGatewayCommand(text: string): ParsedGatewayCommand {
  const line = text.trim().split(/\r?\n/)[0]!.trim();
  if (!line.startsWith('#')) return { ok: false, error: 'this address takes commands only; send #help for the list' };
  const words = line.slice(1).trim().split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) return { ok: false, error: 'empty command; send #help for the list' };
  const word = words[0]!.toLowerCase();
  const spec = BY_NAME.get(word);
  if (!spec) return { ok: false, error: `unknown command "#${word.length > 32 ? `${word.slice(0, 32)}…` : word}"; send #help for the list` };
  const args = words.slice(1);
  const syntax = `#${spec.syntax}`;
  if (args.length < spec.required) return { ok: false, error: `missing argument; usage: ${syntax}` };
  if (args.length > spec.max) return { ok: false, error: `too many arguments; usage: ${syntax}` };
  return { ok: true, command: { name: spec.name, args, syntax } };
}

export function gatewayHelp(): string {
  const width = Math.max(...SPECS.map((s) => s.syntax.length)) + 2;
  return ['Gateway commands:', ...SPECS.map((s) => `#${s.syntax.padEnd(width)}${s.summary}`)].join('\n');
}
