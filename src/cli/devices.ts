// `parley devices list USER`: the devices of a user on the running server (RPC devices.list), each
// with how it is reached now, when it last registered and how many messages it has still to take.
import { ADMIN_CLIENT_HELP, ADMIN_CLIENT_OPTIONS, callRpc, resolveAdminEndpoint } from './admin-client.js';
import { listCommands, parseCommandLine, printHelp, runCommandGroup, UsageError, type Command } from './args.js';
import { formatTable } from './rpc.js';
import type { DeviceSummary } from '../relay/device-summary.js';

const LIST_USAGE = `Usage: parley devices list USER [--admin URL] [--token TOKEN] [--config FILE]

Lists the devices of USER (user@domain or sip:user@domain) on the running server: each device
(its +sip.instance, or its contact when it registered without one), its flows (the addresses it is
reached at now, "-" when not registered), when it last registered, and the messages it has still
to take.

Options:
${ADMIN_CLIENT_HELP}
`;

const listCommand: Command = {
  name: 'list',
  summary: 'list the devices of a user, with their flows, last registration and pending messages',
  async run(args) {
    const { values, positionals } = parseCommandLine({ args, options: ADMIN_CLIENT_OPTIONS, allowPositionals: true }, LIST_USAGE);
    if (values.help) return printHelp(LIST_USAGE);
    if (positionals.length !== 1) throw new UsageError('expected one USER', LIST_USAGE);
    const { devices } = (await callRpc(resolveAdminEndpoint(values), 'devices.list', { user: positionals[0] })) as { devices: DeviceSummary[] };
    if (devices.length === 0) {
      process.stdout.write('no devices\n');
      return 0;
    }
    const rows = devices.map((d) => [d.device, d.flows.map((f) => f.source).join(' ') || '-', d.lastSeen, String(d.pending), d.userAgent ?? '']);
    process.stdout.write(formatTable(['DEVICE', 'FLOWS', 'LAST SEEN', 'PENDING', 'USER AGENT'], rows));
    return 0;
  },
};

const DEVICES_COMMANDS = [listCommand];

const USAGE = `Usage: parley devices <command> [options]

Shows the devices of the running server's users (through its admin endpoint).

Commands:
${listCommands(DEVICES_COMMANDS)}

Run \`parley devices <command> --help\` for a command's options.
`;

export const devicesCommand: Command = {
  name: 'devices',
  summary: "list a user's devices, their flows and pending messages",
  run: (args) => runCommandGroup({ usage: USAGE, commands: DEVICES_COMMANDS }, args),
};
