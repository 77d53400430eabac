// `parley import-imc`: copies the rooms and members of a Kamailio imc database into Parley's store.
import { redactUrlPassword } from '../log/index.js';
import { sipAddress } from '../sip/index.js';
import type { RoomMemberRecord, RoomStore, RoomTables } from '../store/index.js';
import { count, parseCommandLine, printHelp, UsageError, type Command } from './args.js';
import { loadStoreConfig, STORE_OPTIONS, withForeignDatabase, withStore } from './store.js';

const USAGE = `Usage: parley import-imc --from URL [--rooms-table NAME] [--members-table NAME]
                         [--config FILE] [--db URL]

Copies the chat rooms of a Kamailio imc database (tables imc_rooms and imc_members, flags as
Kamailio writes them: owner, admin, invited, private) into Parley's database. Rooms Parley has
already are left as they are, and so are rooms without an owner; each is reported. The source
is only read. Parley reads rooms when it starts: run this while it is stopped, or restart it.

Options:
      --from URL              the Kamailio database: sqlite:PATH or postgres://USER:PASSWORD@HOST/DB
      --rooms-table NAME      its rooms table (Kamailio's rooms_table; default imc_rooms)
      --members-table NAME    its members table (Kamailio's members_table; default imc_members)
  -c, --config FILE           configuration file, for Parley's database and its imc table names
      --db URL                Parley's database, instead of the configuration's
  -h, --help                  show this help
`;

const OPTIONS = {
  ...STORE_OPTIONS,
  from: { type: 'string' },
  'rooms-table': { type: 'string', default: 'imc_rooms' },
  'members-table': { type: 'string', default: 'imc_members' },
} as const;

type RoomsAndMembers = Awaited<ReturnType<RoomStore['loadAll']>>;

interface ImportReport {
  rooms: number;
  members: number;
  /** One line per room left out, saying why. */
  skipped: string[];
}

function readKamailio(url: string, tables: RoomTables): Promise<RoomsAndMembers> {
  return withForeignDatabase(url, async (db) => (await import('../store/index.js')).readImcTables(db, tables));
}

async function importRooms(source: RoomsAndMembers, target: RoomStore): Promise<ImportReport> {
  const roomKey = (name: string, domain: string) => `${name}@${domain}`;
  const existing = new Set((await target.loadAll()).rooms.map((room) => roomKey(room.name, room.domain)));
  const membersByRoom = new Map<string, RoomMemberRecord[]>();
  for (const member of source.members) {
    const key = roomKey(member.roomName, member.roomDomain);
    membersByRoom.set(key, [...(membersByRoom.get(key) ?? []), member]);
  }
  const report: ImportReport = { rooms: 0, members: 0, skipped: [] };
  for (const room of source.rooms) {
    const key = roomKey(room.name, room.domain);
    const members = membersByRoom.get(key) ?? [];
    const owner = members.find((member) => member.role === 'owner' && !member.invited);
    const address = sipAddress(room.name, room.domain);
    if (existing.has(key)) report.skipped.push(`${address}: Parley has this room already`);
    else if (!owner) report.skipped.push(`${address}: no owner`);
    else {
      // Kamailio keeps no creation time; the import is when the room arrived here.
      await target.createRoom({ ...room, createdAt: Date.now() }, owner);
      for (const member of members) if (member !== owner) await target.putMember(member);
      report.rooms++;
      report.members += members.length;
    }
  }
  return report;
}

export const importImcCommand: Command = {
  name: 'import-imc',
  summary: "copy a Kamailio imc database's rooms and members into Parley's",
  async run(args) {
    const { values } = parseCommandLine({ args, options: OPTIONS }, USAGE);
    if (values.help) return printHelp(USAGE);
    if (values.from === undefined) throw new UsageError('missing --from URL', USAGE);
    const config = loadStoreConfig(values);
    const source = await readKamailio(values.from, { rooms: values['rooms-table'], members: values['members-table'] });
    const tables = { rooms: config.imc.rooms_table, members: config.imc.members_table };
    const report = await withStore(config, async (store) => importRooms(source, await store.rooms(tables)));
    const lines = [
      `imported ${count(report.rooms, 'room')} with ${count(report.members, 'member')} from ${redactUrlPassword(values.from)}; skipped ${count(report.skipped.length, 'room')}`,
      ...report.skipped.map((reason) => `skipped ${reason}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
