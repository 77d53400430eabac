// The per-user gateway's account map, in Kamailio purple's `purplemap` table (or the one
// gateway.db_table names, as the seed's db_table parameter does).
// Beside it, the group chats its accounts joined (gateway_rooms).
import type { Kysely, Selectable } from 'kysely';
import { createAccountMapTable } from './migrations/003_gateway.js';
import type { Database, PurplemapTable } from './schema.js';
import type { GatewayAccount, GatewayAccountStore, GatewayRoomStore, GatewayTlsMode, KamailioAccountRow, NewGatewayAccount, StoreDriver } from './types.js';

const TLS_MODES: ReadonlySet<string> = new Set<GatewayTlsMode>(['starttls', 'direct', 'none']);

/** The rows of a bare Kamailio purplemap table, such as another server's, to import them. */
export async function readPurplemapTable(db: Kysely<Database>, table: string): Promise<KamailioAccountRow[]> {
  const rows = await db.selectFrom(table as 'purplemap').select(['id', 'sip_user', 'ext_user', 'ext_prot', 'ext_pass']).orderBy('id').execute();
  return rows.map((row) => ({ id: Number(row.id), sipUser: row.sip_user, extUser: row.ext_user, extProt: row.ext_prot, extPass: row.ext_pass ?? undefined }));
}

/**
 * The table name is configurable; Kysely's typed builders take it cast to the typed one, which
 * only changes the SQL identifier.
 */
export class GatewayAccountRepository implements GatewayAccountStore {
  private readonly table: 'purplemap';

  constructor(
    private readonly db: Kysely<Database>,
    table = 'purplemap',
  ) {
    this.table = table as 'purplemap';
  }

  /** Creates the table when this database does not have it yet (a gateway.db_table other than purplemap). */
  async ensureTable(driver: StoreDriver): Promise<void> {
    await createAccountMapTable(this.db, driver, this.table, true);
  }

  async put(account: NewGatewayAccount): Promise<GatewayAccount> {
    const now = Date.now();
    const values = {
      ext_pass: account.extPass ?? null,
      server: account.server ?? null,
      port: account.port ?? null,
      tls: account.tls,
      enabled: 1,
      last_error: null,
      updated_at: now,
    };
    await this.db
      .insertInto(this.table)
      .values({ sip_user: account.sipUser, ext_user: account.extUser, ext_prot: account.extProt, created_at: now, ...values })
      .onConflict((conflict) => conflict.columns(['sip_user', 'ext_prot', 'ext_user']).doUpdateSet(values))
      .execute();
    const row = await this.db
      .selectFrom(this.table)
      .selectAll()
      .where('sip_user', '=', account.sipUser)
      .where('ext_prot', '=', account.extProt)
      .where('ext_user', '=', account.extUser)
      .executeTakeFirstOrThrow();
    return toAccount(row);
  }

  async get(id: number): Promise<GatewayAccount | undefined> {
    const row = await this.db.selectFrom(this.table).selectAll().where('id', '=', id).executeTakeFirst();
    return row && toAccount(row);
  }

  async listFor(sipUser: string): Promise<GatewayAccount[]> {
    const rows = await this.db.selectFrom(this.table).selectAll().where('sip_user', '=', sipUser).orderBy('id').execute();
    return rows.map(toAccount);
  }

  async withExtUser(extUser: string): Promise<GatewayAccount[]> {
    const rows = await this.db.selectFrom(this.table).selectAll().where('ext_user', '=', extUser).orderBy('id').execute();
    return rows.map(toAccount);
  }

  async list(): Promise<GatewayAccount[]> {
    return (await this.db.selectFrom(this.table).selectAll().orderBy('id').execute()).map(toAccount);
  }

  async remove(id: number): Promise<boolean> {
    const result = await this.db.deleteFrom(this.table).where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async setStatus(id: number, status: { enabled: boolean; lastError: string | null }): Promise<void> {
    await this.db
      .updateTable(this.table)
      .set({ enabled: status.enabled ? 1 : 0, last_error: status.lastError, updated_at: Date.now() })
      .where('id', '=', id)
      .execute();
  }
}

/** The group chats of the gateway's accounts (table gateway_rooms). */
export class GatewayRoomRepository implements GatewayRoomStore {
  constructor(private readonly db: Kysely<Database>) {}

  async add(accountId: number, room: string, nick: string): Promise<void> {
    await this.db
      .insertInto('gateway_rooms')
      .values({ account_id: accountId, room, nick })
      .onConflict((conflict) => conflict.columns(['account_id', 'room']).doUpdateSet({ nick }))
      .execute();
  }

  async remove(accountId: number, room: string): Promise<void> {
    await this.db.deleteFrom('gateway_rooms').where('account_id', '=', accountId).where('room', '=', room).execute();
  }

  async removeAll(accountId: number): Promise<void> {
    await this.db.deleteFrom('gateway_rooms').where('account_id', '=', accountId).execute();
  }

  async listFor(accountId: number): Promise<Array<{ room: string; nick: string }>> {
    return this.db.selectFrom('gateway_rooms').select(['room', 'nick']).where('account_id', '=', accountId).orderBy('room').execute();
  }
}

function toAccount(row: Selectable<PurplemapTable>): GatewayAccount {
  return {
    id: Number(row.id),
    sipUser: row.sip_user,
    extUser: row.ext_user,
    extProt: row.ext_prot,
    extPass: row.ext_pass ?? undefined,
    server: row.server ?? undefined,
    port: row.port ?? undefined,
    tls: TLS_MODES.has(row.tls) ? (row.tls as GatewayTlsMode) : 'starttls',
    enabled: Number(row.enabled) !== 0,
    lastError: row.last_error ?? undefined,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
