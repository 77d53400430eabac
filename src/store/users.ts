import type { Kysely, Selectable } from 'kysely';
import type { Database, UsersTable } from './schema.js';
import type { UserRecord, UserStore } from './types.js';

export interface CredentialsCacheOptions {
  /**
   * Seconds a user read from the store is answered from memory (0: read every time): how long a
   * change made by another process sharing the store (`parley user add` or `del`) may go unseen.
   */
  seconds: number;
  /** Most users kept; past it, those read longest ago go first. */
  maxUsers?: number;
  now?: () => number;
}

/** Users kept by default at most: their two HA1 values and names, a few hundred bytes each. */
const DEFAULT_MAX_CACHED_USERS = 100_000;

export class UserRepository implements UserStore {
  /**
   * Users read lately (digest authentication reads one for every request of a local user), by
   * "username\ndomain", with when each read began, read longest ago first. A change made through
   * this repository drops its user at once; one made by another process shows once the entry is older
   * than the cache's seconds. Users not found are not kept: one just added is found at once.
   */
  private readonly entries = new Map<string, { user: UserRecord; readAt: number }>();
  /** Counts changes made through this repository: a read begun before one is not kept. */
  private changes = 0;
  private readonly cacheMs: number;
  private readonly maxCached: number;
  private readonly now: () => number;

  constructor(
    private readonly db: Kysely<Database>,
    cache: CredentialsCacheOptions = { seconds: 0 },
  ) {
    this.cacheMs = cache.seconds * 1000;
    this.maxCached = cache.maxUsers ?? DEFAULT_MAX_CACHED_USERS;
    this.now = cache.now ?? Date.now;
  }

  /** A replaced user keeps the createdAt of its first registration. */
  async put(user: Omit<UserRecord, 'createdAt'>): Promise<void> {
    try {
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
    } finally {
      // Whether the statement failed or not, it may have changed the row.
      this.changed(user.username, user.domain);
    }
  }

  cached(username: string, domain: string): UserRecord | undefined {
    if (this.cacheMs === 0) return undefined;
    const hit = this.entries.get(cacheKey(username, domain));
    return hit && this.now() - hit.readAt < this.cacheMs ? hit.user : undefined;
  }

  get(username: string, domain: string): Promise<UserRecord | undefined> {
    if (this.cacheMs === 0) return this.read(username, domain);
    const hit = this.cached(username, domain);
    if (hit) return Promise.resolve(hit);
    const key = cacheKey(username, domain);
    const now = this.now();
    const changes = this.changes;
    return this.read(username, domain).then((user) => {
      if (changes !== this.changes) return user;
      // Delete first: a user read again goes last, among those read latest.
      this.entries.delete(key);
      if (!user) return user;
      this.entries.set(key, { user, readAt: now });
      if (this.entries.size > this.maxCached) this.entries.delete(this.entries.keys().next().value!);
      return user;
    });
  }

  async remove(username: string, domain: string): Promise<boolean> {
    try {
      const result = await this.db
        .deleteFrom('users')
        .where('username', '=', username)
        .where('domain', '=', domain)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    } finally {
      this.changed(username, domain);
    }
  }

  /** Ordered by domain, then username. */
  async list(domain?: string): Promise<UserRecord[]> {
    let query = this.db.selectFrom('users').selectAll().orderBy('domain').orderBy('username');
    if (domain !== undefined) query = query.where('domain', '=', domain);
    return (await query.execute()).map(toUserRecord);
  }

  private async read(username: string, domain: string): Promise<UserRecord | undefined> {
    const row = await this.db
      .selectFrom('users')
      .selectAll()
      .where('username', '=', username)
      .where('domain', '=', domain)
      .executeTakeFirst();
    return row && toUserRecord(row);
  }

  /** A user changed through this repository: the change shows in the next read, and in none begun before it. */
  private changed(username: string, domain: string): void {
    this.changes++;
    this.entries.delete(cacheKey(username, domain));
  }
}

function cacheKey(username: string, domain: string): string {
  return `${username}\n${domain}`;
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
