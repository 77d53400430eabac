// Commands that talk to a running server through its admin endpoint: any RPC method, and tables
// of rooms and members.
import { ADMIN_CLIENT_HELP, ADMIN_CLIENT_OPTIONS, callRpc, resolveAdminEndpoint } from './admin-client.js';
import { parseCommandLine, printHelp, UsageError, type Command } from './args.js';

const RPC_USAGE = `Usage: parley rpc METHOD [JSON | NAME=VALUE...] [--admin URL] [--token TOKEN] [--config FILE]

Calls a JSON-RPC method of the running server and prints its result as JSON. Parameters are one
JSON object or array ('{"room": "chat-x"}', '["chat-x"]'), or NAME=VALUE pairs whose values are
strings. Exit code 1 when the server answers with an error; its message goes to stderr.

Methods: imc.list_rooms, imc.list_members ROOM, imc.active_rooms, imc.destroy_room ROOM,
imc.add_member ROOM USER, imc.remove_member ROOM USER, core.status, registrar.lookup AOR, devices.list USER,
users.list [DOMAIN], gateway.status, gateway.accounts.list [SIP_USER], gateway.accounts.add
SIP_USER NETWORK EXT_USER PASSWORD [SERVER PORT TLS], gateway.accounts.remove ID,
gateway.accounts.test ID [TIMEOUT].

Options:
${ADMIN_CLIENT_HELP}
`;

/** A JSON object or array as the only argument, else NAME=VALUE pairs; undefined when there are none. */
function parseParams(args: string[]): unknown {
  if (args.length === 0) return undefined;
  if (args.length === 1 && /^\s*[[{]/.test(args[0]!)) {
    try {
      return JSON.parse(args[0]!);
    } catch (error) {
      throw new UsageError(`the parameters are not valid JSON (${(error as Error).message})`, RPC_USAGE);
    }
  }
  return Object.fromEntries(
    args.map((arg) => {
      const equals = arg.indexOf('=');
      if (equals <= 0) throw new UsageError(`expected NAME=VALUE or one JSON object or array, got "${arg}"`, RPC_USAGE);
      return [arg.slice(0, equals), arg.slice(equals + 1)];
    }),
  );
}

export const rpcCommand: Command = {
  name: 'rpc',
  summary: 'call a management (JSON-RPC) method of the running server',
  async run(args) {
    const { values, positionals } = parseCommandLine({ args, options: ADMIN_CLIENT_OPTIONS, allowPositionals: true }, RPC_USAGE);
    if (values.help) return printHelp(RPC_USAGE);
    const [method, ...rest] = positionals;
    if (method === undefined) throw new UsageError('missing METHOD', RPC_USAGE);
    const result = await callRpc(resolveAdminEndpoint(values), method, parseParams(rest));
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  },
};

/** Left-aligned columns, two spaces apart, under an upper-case header. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  return [header, ...rows].map(line).join('\n') + '\n';
}

const ROOMS_USAGE = `Usage: parley rooms [--admin URL] [--token TOKEN] [--config FILE]

Lists the chat rooms of the running server: address, whether private, members (invited users not
counted), owner and topic.

Options:
${ADMIN_CLIENT_HELP}
`;

interface RoomSummary {
  uri: string;
  private: boolean;
  members: number;
  owner: string | null;
  topic?: string;
}

export const roomsCommand: Command = {
  name: 'rooms',
  summary: 'list the chat rooms of the running server',
  async run(args) {
    const { values } = parseCommandLine({ args, options: ADMIN_CLIENT_OPTIONS }, ROOMS_USAGE);
    if (values.help) return printHelp(ROOMS_USAGE);
    const rooms = (await callRpc(resolveAdminEndpoint(values), 'imc.list_rooms')) as RoomSummary[];
    if (rooms.length === 0) {
      process.stdout.write('no rooms\n');
      return 0;
    }
    const rows = rooms.map((r) => [r.uri, r.private ? 'yes' : 'no', String(r.members), r.owner ?? '-', r.topic ?? '']);
    process.stdout.write(formatTable(['ROOM', 'PRIVATE', 'MEMBERS', 'OWNER', 'TOPIC'], rows));
    return 0;
  },
};

const MEMBERS_USAGE = `Usage: parley members ROOM [--admin URL] [--token TOKEN] [--config FILE]

Lists the members of a chat room of the running server, with their role (owner, admin, member,
or invited) and nick. ROOM is sip:chat-x@example.com, chat-x@example.com, or chat-x in the first
configured domain.

Options:
${ADMIN_CLIENT_HELP}
`;

interface MemberSummary {
  uri: string;
  role: string;
  nick: string;
}

export const membersCommand: Command = {
  name: 'members',
  summary: 'list the members of a chat room of the running server',
  async run(args) {
    const { values, positionals } = parseCommandLine({ args, options: ADMIN_CLIENT_OPTIONS, allowPositionals: true }, MEMBERS_USAGE);
    if (values.help) return printHelp(MEMBERS_USAGE);
    if (positionals.length !== 1) throw new UsageError('expected one ROOM', MEMBERS_USAGE);
    const members = (await callRpc(resolveAdminEndpoint(values), 'imc.list_members', { room: positionals[0] })) as MemberSummary[];
    process.stdout.write(formatTable(['MEMBER', 'ROLE', 'NICK'], members.map((m) => [m.uri, m.role, m.nick])));
    return 0;
  },
};
