import type { Kysely, Transaction } from 'kysely';
import { CompiledStatements } from './compiled.js';
import { GroupCommit, type DeferredSync } from './group-commit.js';
import type { StatementWriter } from './sqlite-writer.js';
import { splitAor, unescapeUriPart } from '../sip/uri.js';
import type { StoreDriver } from './types.js';
import type { Database } from './schema.js';
import type { RoomHistoryEntry, RoomMemberRecord, RoomRecord, RoomStore, RoomTables } from './types.js';

// Flag bits of Kamailio's imc module (imc_mng.h), so its databases can be shared or imported.
const MEMBER_OWNER = 1;
const MEMBER_ADMIN = 2;
const MEMBER_INVITED = 4;
const ROOM_PRIVATE = 1;

/** A room as the member and history rows name it: Kamailio's room column, `sip:name@domain`, the name as Parley keeps it. */
const roomColumn = (name: string, domain: string) => `sip:${name}@${domain}`;

function memberFlag(member: RoomMemberRecord): number {
  const role = member.role === 'owner' ? MEMBER_OWNER : member.role === 'admin' ? MEMBER_ADMIN : 0;
  return role | (member.invited ? MEMBER_INVITED : 0);
}

/** A Kamailio room row, with Parley's own columns when the row has them. */
function roomFromRow(row: { name: string; domain: string; flag: number; topic?: string | null; created_at?: number | null }): RoomRecord {
  return { name: row.name, domain: row.domain, private: (row.flag & ROOM_PRIVATE) !== 0, topic: row.topic ?? undefined, createdAt: row.created_at ?? 0 };
}

/** A Kamailio member row, with Parley's nick when the row has one. */
function memberFromRow(row: { username: string; domain: string; room: string; flag: number; nick?: string | null }): RoomMemberRecord {
  const [roomName, roomDomain] = splitRoomUri(row.room);
  return {
    roomName,
    roomDomain,
    username: row.username,
    domain: row.domain,
    role: row.flag & MEMBER_OWNER ? 'owner' : row.flag & MEMBER_ADMIN ? 'admin' : 'member',
    invited: (row.flag & MEMBER_INVITED) !== 0,
    nick: row.nick ?? undefined,
  };
}

/**
 * Rooms and members of bare Kamailio imc tables, such as another server's, to import them. Kamailio
 * keeps a room's name and a member's user as their URIs write them (`chat-two%20words`,
 * `dora%40home`); Parley names them unescaped, as it reads a Request-URI or a From, so that the room
 * imported is the one its address reaches and each member is known by the address it sends from.
 */
export async function readImcTables(db: Kysely<Database>, tables: RoomTables): Promise<{ rooms: RoomRecord[]; members: RoomMemberRecord[] }> {
  const roomsTable = tables.rooms as 'imc_rooms';
  const membersTable = tables.members as 'imc_members';
  const roomRows = await db.selectFrom(roomsTable).select(['name', 'domain', 'flag']).orderBy('id').execute();
  const memberRows = await db.selectFrom(membersTable).select(['username', 'domain', 'room', 'flag']).orderBy('id').execute();
  return {
    rooms: roomRows.map((row) => ({ ...roomFromRow(row), name: unescapedUser(row.name) })),
    members: memberRows.map((row) => {
      const member = memberFromRow(row);
      return { ...member, roomName: unescapedUser(member.roomName), username: unescapedUser(member.username) };
    }),
  };
}

/** A user part as a URI writes it, unescaped; as it is when an escape in it is broken (no URI could reach it either way). */
function unescapedUser(user: string): string {
  try {
    return unescapeUriPart(user);
  } catch {
    return user;
  }
}

/** "sip:name@domain" -> [name, domain]. */
function splitRoomUri(uri: string): [string, string] {
  const { user, domain } = splitAor(uri.replace(/^sips?:/, ''));
  return [user, domain];
}

/**
 * The Kamailio table names are configurable (rooms_table, members_table); Kysely's typed
 * builders take the configured name cast to the typed one, which only changes the SQL identifier.
 */
export class RoomRepository implements RoomStore {
  private readonly roomsTable: 'imc_rooms';
  private readonly membersTable: 'imc_members';

  /** History rows share transactions (group commit), made durable off the event loop where the store can. */
  private readonly commits: GroupCommit;
  private readonly statements = new CompiledStatements();

  /** With `writer` (SQLite in a file), history rows are written by it, off the event loop, as the outbox's are; else by a group commit of `db`'s. */
  constructor(
    private readonly db: Kysely<Database>,
    tables: RoomTables,
    deferredSync?: DeferredSync,
    private readonly writer?: StatementWriter,
  ) {
    this.roomsTable = tables.rooms as 'imc_rooms';
    this.membersTable = tables.members as 'imc_members';
    this.commits = new GroupCommit(db, deferredSync);
  }

  /** Creates the Kamailio-compatible tables when this database does not have them yet. */
  async ensureTables(driver: StoreDriver): Promise<void> {
    const id = driver === 'postgres' ? 'serial' : 'integer';
    const key = (c: any) => (driver === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement());
    await this.db.schema
      .createTable(this.roomsTable)
      .ifNotExists()
      .addColumn('id', id, key)
      .addColumn('name', 'varchar(64)', (c) => c.notNull())
      .addColumn('domain', 'varchar(64)', (c) => c.notNull())
      .addColumn('flag', 'integer', (c) => c.notNull())
      .addUniqueConstraint(`${this.roomsTable}_name_domain_idx`, ['name', 'domain'])
      .execute();
    await this.db.schema
      .createTable(this.membersTable)
      .ifNotExists()
      .addColumn('id', id, key)
      .addColumn('username', 'varchar(64)', (c) => c.notNull())
      .addColumn('domain', 'varchar(64)', (c) => c.notNull())
      .addColumn('room', 'varchar(64)', (c) => c.notNull())
      .addColumn('flag', 'integer', (c) => c.notNull())
      .addUniqueConstraint(`${this.membersTable}_account_room_idx`, ['username', 'domain', 'room'])
      .execute();
  }

  async loadAll(): Promise<{ rooms: RoomRecord[]; members: RoomMemberRecord[] }> {
    const roomRows = await this.db
      .selectFrom(this.roomsTable)
      .leftJoin('parley_imc_rooms as extra', (join) =>
        join.onRef('extra.name', '=', `${this.roomsTable}.name`).onRef('extra.domain', '=', `${this.roomsTable}.domain`),
      )
      .select([`${this.roomsTable}.name`, `${this.roomsTable}.domain`, `${this.roomsTable}.flag`, 'extra.topic', 'extra.created_at'])
      .execute();
    const memberRows = await this.db
      .selectFrom(this.membersTable)
      .leftJoin('parley_imc_members as extra', (join) =>
        join
          .onRef('extra.room', '=', `${this.membersTable}.room`)
          .onRef('extra.username', '=', `${this.membersTable}.username`)
          .onRef('extra.domain', '=', `${this.membersTable}.domain`),
      )
      .select([`${this.membersTable}.username`, `${this.membersTable}.domain`, `${this.membersTable}.room`, `${this.membersTable}.flag`, 'extra.nick'])
      .orderBy(`${this.membersTable}.id`)
      .execute();
    return { rooms: roomRows.map(roomFromRow), members: memberRows.map(memberFromRow) };
  }

  async createRoom(room: RoomRecord, owner: RoomMemberRecord): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto(this.roomsTable).values({ name: room.name, domain: room.domain, flag: room.private ? ROOM_PRIVATE : 0 }).execute();
      await trx
        .insertInto('parley_imc_rooms')
        .values({ name: room.name, domain: room.domain, topic: room.topic ?? null, created_at: room.createdAt })
        .execute();
      await this.writeMember(trx, owner);
    });
  }

  async destroyRoom(name: string, domain: string): Promise<void> {
    const uri = roomColumn(name, domain);
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom(this.membersTable).where('room', '=', uri).execute();
      await trx.deleteFrom('parley_imc_members').where('room', '=', uri).execute();
      await trx.deleteFrom('parley_imc_history').where('room', '=', uri).execute();
      await trx.deleteFrom('parley_imc_rooms').where('name', '=', name).where('domain', '=', domain).execute();
      await trx.deleteFrom(this.roomsTable).where('name', '=', name).where('domain', '=', domain).execute();
    });
  }

  async putMember(member: RoomMemberRecord): Promise<void> {
    await this.db.transaction().execute((trx) => this.writeMember(trx, member));
  }

  private async writeMember(trx: Transaction<Database>, member: RoomMemberRecord): Promise<void> {
    const room = roomColumn(member.roomName, member.roomDomain);
    const key = { username: member.username, domain: member.domain, room };
    await trx
      .insertInto(this.membersTable)
      .values({ ...key, flag: memberFlag(member) })
      .onConflict((oc) => oc.columns(['username', 'domain', 'room']).doUpdateSet({ flag: memberFlag(member) }))
      .execute();
    await trx
      .insertInto('parley_imc_members')
      .values({ ...key, nick: member.nick ?? null })
      .onConflict((oc) => oc.columns(['room', 'username', 'domain']).doUpdateSet({ nick: member.nick ?? null }))
      .execute();
  }

  async removeMember(roomName: string, roomDomain: string, username: string, domain: string): Promise<void> {
    const room = roomColumn(roomName, roomDomain);
    await this.db.transaction().execute(async (trx) => {
      for (const table of [this.membersTable, 'parley_imc_members'] as const) {
        await trx.deleteFrom(table).where('room', '=', room).where('username', '=', username).where('domain', '=', domain).execute();
      }
    });
  }

  async setTopic(name: string, domain: string, topic: string | undefined): Promise<void> {
    await this.db.updateTable('parley_imc_rooms').set({ topic: topic ?? null }).where('name', '=', name).where('domain', '=', domain).execute();
  }

  async appendHistory(entries: RoomHistoryEntry[]): Promise<void> {
    if (entries.length === 0) return;
    if (this.writer) {
      // A statement per row, each compiled once (see CompiledStatements): the rows of a batch go to the thread in one message.
      const rows = entries.map((e) => this.statements.compile('history row', [roomColumn(e.roomName, e.roomDomain), e.sender, e.nick, e.contentType, e.body, e.at], this.insertHistoryRow));
      await this.writer.write(rows);
      return;
    }
    await this.commits.run((trx) =>
      trx
        .insertInto('parley_imc_history')
        .values(
          entries.map((e) => ({
            room: roomColumn(e.roomName, e.roomDomain),
            sender: e.sender,
            nick: e.nick,
            content_type: e.contentType,
            body: e.body,
            created_at: e.at,
          })),
        )
        .execute(),
    );
  }

  private readonly insertHistoryRow = ([room, sender, nick, contentType, body, at]: readonly unknown[]) =>
    this.db.insertInto('parley_imc_history').values({
      room: room as string, sender: sender as string, nick: nick as string, content_type: contentType as string, body: body as Buffer, created_at: at as number,
    });

  async recentHistory(name: string, domain: string, limit: number): Promise<RoomHistoryEntry[]> {
    const room = roomColumn(name, domain);
    const rows = await this.db.selectFrom('parley_imc_history').selectAll().where('room', '=', room).orderBy('id', 'desc').limit(limit).execute();
    const oldestKept = rows[rows.length - 1]?.id;
    if (oldestKept !== undefined && rows.length === limit) {
      await this.db.deleteFrom('parley_imc_history').where('room', '=', room).where('id', '<', oldestKept).execute();
    }
    return rows.reverse().map((r) => ({
      roomName: name,
      roomDomain: domain,
      sender: r.sender,
      nick: r.nick,
      contentType: r.content_type,
      body: Buffer.from(r.body),
      at: r.created_at,
    }));
  }
}
