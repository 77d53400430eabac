import type { Kysely, Selectable } from 'kysely';
import type { Database, UsersTable } from './schema.js';
import type { UserRecord, UserStore } from './types.js';

export class UserRepository implements UserStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** A replaced user keeps the createdAt of its first registration. */
  async put(user: Omit<UserRecord, 'createdAt'>): Promise<void> {
    await this.db
      .insertInto('users')
      .values({
        username: user.username,
        domain: user.domain,
        ha1_md5: user.ha1Md5,
        ha1_sha256: user.ha1Sha256,
        created_at: Date.now(),
      })
      .onConflict((conflict) =>
        conflict.columns(['username', 'domain']).doUpdateSet({ ha1_md5: user.ha1Md5, ha1_sha256: user.ha1Sha256 }),
      )
      .execute();
  }

  async get(username: string, domain: string): Promise<UserRecord | undefined> {
    const row = await this.db
      .selectFrom('users')
      .selectAll()
      .where('username', '=', username)
      .where('domain', '=', domain)
      .executeTakeFirst();
    return row && toUserRecord(row);
  }

  async remove(username: string, domain: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('users')
      .where('username', '=', username)
      .where('domain', '=', domain)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** Ordered by domain, then username. */
  async list(domain?: string): Promise<UserRecord[]> {
    let query = this.db.selectFrom('users').selectAll().orderBy('domain').orderBy('username');
    if (domain !== undefined) query = query.where('domain', '=', domain);
    return (await query.execute()).map(toUserRecord);
  }
}

function toUserRecord(row: Selectable<UsersTable>): UserRecord {
  return {
    username: row.username,
    domain: row.domain,
    ha1Md5: row.ha1_md5,
    ha1Sha256: row.ha1_sha256,
    createdAt: row.created_at,
  };
}
