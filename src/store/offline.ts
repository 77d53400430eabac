import { sql, type CompiledQuery, type Kysely, type Selectable, type Transaction } from 'kysely';
import { CompiledStatements } from './compiled.js';
import type { StatementWriter } from './sqlite-writer.js';
import { deleteExpired, nullsAbsent } from './rows.js';
import type { Database, OfflineMessagesTable } from './schema.js';
import type { OfflineStore, StoredMessage } from './types.js';

export class OfflineRepository implements OfflineStore {
  private readonly statements = new CompiledStatements();
  private readonly waitingUsers = new WaitingUsers(() => this.readWaitingUsers());

  /** With `writer` (SQLite in a file), messages are stored by it, off the event loop. */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly waiting: WaitingBounds,
    private readonly writer?: StoredMessageWriter,
  ) {}

  async add(message: Omit<StoredMessage, 'id'>, maxPerUser: number): Promise<number | 'full'> {
    const stored = this.waitingUsers.storing(message.aor);
    try {
      if (this.writer) return await this.writer.add(message, maxPerUser, false, []);
      return await this.db.transaction().execute((trx) => insertStoredMessage(trx, this.statements, this.waiting, message, maxPerUser, false));
    } finally {
      stored();
    }
  }

  mayHaveWaiting(aor: string): boolean {
    return this.waitingUsers.mayHave(aor);
  }

  private async readWaitingUsers(): Promise<void> {
    const rows = await this.db.selectFrom('offline_messages').select('aor').distinct().where('per_device', '=', 0).execute();
    this.waitingUsers.loaded(rows.map((row) => row.aor));
  }

  async rereadWaiting(): Promise<void> {
    this.waiting.forgetAll();
    await this.readWaitingUsers();
  }

  /**
   * Run on every REGISTER (to deliver what waits for the user): compiled once per page shape, see
   * CompiledStatements. The page size is written into the SQL: SQLite prepares a statement whose
   * LIMIT is a parameter anew each time another value is bound to it, which cost more than the query.
   * `anyDevice`: only the messages for whichever device registers next (not kept per device).
   */
  async listFor(aor: string, now: number, page: { afterId: number; limit: number; anyDevice?: boolean }): Promise<StoredMessage[]> {
    const limit = Math.floor(page.limit);
    const anyDevice = page.anyDevice === true;
    const query = this.statements.compile(`list ${limit} ${anyDevice}`, [aor, now, page.afterId], ([aor, now, afterId]) => {
      let select = this.db
        .selectFrom('offline_messages')
        .selectAll()
        .where('aor', '=', aor as string)
        .where('expires_at', '>', now as number)
        .where('id', '>', afterId as number);
      if (anyDevice) select = select.where('per_device', '=', 0);
      return select.orderBy('id').limit(sql.lit(limit));
    });
    const read = this.waitingUsers.reading(aor);
    const { rows } = await this.db.executeQuery<Selectable<OfflineMessagesTable>>(query);
    if (anyDevice && page.afterId === 0 && rows.length === 0) this.waitingUsers.foundNone(aor, read);
    return rows.map(toStoredMessage);
  }

  async remove(id: number): Promise<void> {
    await this.db.deleteFrom('offline_messages').where('id', '=', id).execute();
  }

  removeExpired(now: number): Promise<number> {
    return deleteExpired(this.db, 'offline_messages', now);
  }

  /** Every stored message of the AOR, expired ones not yet removed included. */
  async count(aor: string): Promise<number> {
    const { stored } = await this.db
      .selectFrom('offline_messages')
      .select((eb) => eb.fn.countAll<number>().as('stored'))
      .where('aor', '=', aor)
      .executeTakeFirstOrThrow();
    return stored;
  }
}

/** Where a user's stores stood when a read of their messages began. */
interface WaitingRead {
  /** The number of the user's last store begun then. */
  lastStore: number | undefined;
  storesUnderWay: boolean;
}

/**
 * The users who may have messages waiting for whichever device registers next (or, keyed by device,
 * the devices that may have deliveries waiting: DeliveryRepository), so that registering
 * costs the others (nearly everyone) no store read. Until the store's list is read, anyone may. A user
 * is added when a message for them starts being stored (committed or not, a message is never missed)
 * and taken out by a read of all their messages that found none, with none of theirs being stored
 * then or since: such a store would have been seen by the read. Exact while Parley is its store's
 * only writer; what another writer stores is seen when the list is read again (`loaded`, at each
 * sweep): until then a registration of its user may read nothing, and the message waits for the next.
 */
export class WaitingUsers {
  private complete = false;
  /** The store's list being read, once (again after a failure). */
  private loading: Promise<void> | undefined;
  /** Each user who may have messages waiting, with the number of the last store begun for them. */
  private readonly users = new Map<string, number>();
  /** Stores under way, by user. */
  private readonly underWay = new Map<string, number>();
  private stores = 0;

  /** `read` reads the store's list and tells it by `loaded`: asked for by the first mayHave. */
  constructor(private readonly read: () => Promise<unknown>) {}

  mayHave(aor: string): boolean {
    this.loading ??= this.read().then(
      () => {},
      // Until it is read, anyone may have messages waiting: the next call tries again.
      () => (this.loading = undefined),
    );
    return !this.complete || this.users.has(aor);
  }

  /** What the store holds: every user with messages waiting when it was read. */
  loaded(aors: Iterable<string>): void {
    for (const aor of aors) if (!this.users.has(aor)) this.users.set(aor, 0);
    this.complete = true;
  }

  /** A message for `aor` starts being stored; the function returned is called once that has ended, stored or not. */
  storing(aor: string): () => void {
    this.users.set(aor, ++this.stores);
    this.underWay.set(aor, (this.underWay.get(aor) ?? 0) + 1);
    return () => {
      const left = this.underWay.get(aor)! - 1;
      if (left === 0) this.underWay.delete(aor);
      else this.underWay.set(aor, left);
    };
  }

  /** Taken before a read of the messages of `aor` is sent to the store. */
  reading(aor: string): WaitingRead {
    return { lastStore: this.users.get(aor), storesUnderWay: this.underWay.has(aor) };
  }

  /** A read begun at `read` found no message waiting for `aor`. */
  foundNone(aor: string, read: WaitingRead): void {
    if (!read.storesUnderWay && this.users.get(aor) === read.lastStore) this.users.delete(aor);
  }
}

/** Users whose bound is kept at most: past it they are all forgotten, and each one's next message counts again. */
const MAX_BOUNDED_USERS = 100_000;

/**
 * How many stored messages wait for each user at most, as this process stored them: the per-user
 * limit needs a count in the store only once that bound reaches it, not on every message. Removals
 * and expiry only lower the real number, so the bound stays one while Parley is its store's only
 * writer; what another writer stores is counted once the bounds are forgotten (forgetAll, at each
 * sweep): until then a user may get more than the limit, never a message refused for nothing.
 * Keyed by quota: a user's AOR, or "aor\ncopies" for the copies of what the user sent.
 */
export class WaitingBounds {
  private readonly bounds = new Map<string, number>();

  /** Whether the next message of `quota` is to be counted in the store before it is stored. */
  toCount(quota: string, maxPerUser: number): boolean {
    const bound = this.bounds.get(quota);
    return bound === undefined || bound >= maxPerUser;
  }

  /** Counts again with the next message. */
  forget(quota: string): void {
    this.bounds.delete(quota);
  }

  /** Every quota counts again with its next message. */
  forgetAll(): void {
    this.bounds.clear();
  }

  /** What a count in the store found, below the limit. */
  counted(quota: string, waiting: number): void {
    if (this.bounds.size >= MAX_BOUNDED_USERS && !this.bounds.has(quota)) this.bounds.clear();
    this.bounds.set(quota, waiting);
  }

  /** One more message stored: counted before its commit, so a batch rolled back leaves the bound higher than the number, never lower. */
  added(quota: string): void {
    const bound = this.bounds.get(quota);
    if (bound !== undefined) this.bounds.set(quota, bound + 1);
  }
}

/**
 * Inserts a stored message unless its recipient has maxPerUser waiting. Copies of what the recipient
 * sent (sentCopy, own-message sync) are counted apart, against the same limit: a user's own sending,
 * while a device is away, never fills the mailbox that messages from others are refused by, and
 * copies are still bounded. Messages already expired
 * when this one arrives do not take up the recipient's quota, so a sweep that has not run yet
 * cannot make a mailbox look full. On PostgreSQL two concurrent adds for one recipient may both
 * pass the check (read committed). `perDevice`: delivered per device (message_deliveries) rather
 * than to whichever device registers next. Run for every MESSAGE stored: compiled once per shape
 * (see CompiledStatements); the recipient's messages are counted only when their bound
 * (`waiting`) reaches the limit, and then at most maxPerUser of them.
 */
export async function insertStoredMessage(
  trx: Transaction<Database>, statements: CompiledStatements, waiting: WaitingBounds, message: Omit<StoredMessage, 'id'>, maxPerUser: number, perDevice: boolean,
): Promise<number | 'full'> {
  if (waiting.toCount(quotaOf(message), maxPerUser) && (await isFull(trx, statements, waiting, message, maxPerUser))) return 'full';
  const insert = statements.compile('store message', storedMessageValues(message, perDevice), (v) => storedMessageRow(trx, v).returning('id'));
  const { rows } = await trx.executeQuery<{ id: number }>(insert);
  waiting.added(quotaOf(message));
  return Number(rows[0]!.id);
}

/**
 * Stored messages written by a SQLite writer thread (for both repositories, which share the quotas
 * of `waiting`), each with the statements that go with it, in the order they were asked for per
 * recipient. A message whose quota is to be counted (insertStoredMessage) is counted once the
 * recipient's messages asked for before are committed, and the recipient's later messages wait for
 * that; the others go to the writer at once.
 */
export class StoredMessageWriter {
  private readonly statements = new CompiledStatements();
  /** Per AOR, while a message of it is being counted: the moment its write is asked for. */
  private readonly counting = new Map<string, Promise<void>>();
  /**
   * Per AOR with messages on their way to the writer: the last one asked for, once answered (stored
   * or not); those asked for before it are answered by then too.
   */
  private readonly unanswered = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly writer: StatementWriter,
    private readonly waiting: WaitingBounds,
  ) {}

  /**
   * Resolves with the message's id once it and `after` (which reach it as `last_insert_rowid()`)
   * are durable, or 'full'; `inserted` is told the id first.
   */
  async add(
    message: Omit<StoredMessage, 'id'>, maxPerUser: number, perDevice: boolean, after: readonly CompiledQuery[], inserted?: (id: number) => void,
  ): Promise<number | 'full'> {
    const before = this.counting.get(message.aor);
    if (before === undefined && !this.waiting.toCount(quotaOf(message), maxPerUser)) return this.insert(message, perDevice, after, inserted);
    let asked!: () => void;
    const turn = new Promise<void>((resolve) => (asked = resolve));
    this.counting.set(message.aor, turn);
    try {
      await before;
      if (this.waiting.toCount(quotaOf(message), maxPerUser)) {
        await this.unanswered.get(message.aor);
        if (await isFull(this.db, this.statements, this.waiting, message, maxPerUser)) return 'full';
      }
      const id = this.insert(message, perDevice, after, inserted);
      asked();
      return await id;
    } finally {
      asked();
      if (this.counting.get(message.aor) === turn) this.counting.delete(message.aor);
    }
  }

  /**
   * While messages for `aor` are being counted: settles once every one asked for so far is asked of
   * the writer (or found 'full'), so a write asked after that is committed after them.
   */
  asked(aor: string): Promise<void> | undefined {
    return this.counting.get(aor);
  }

  private async insert(message: Omit<StoredMessage, 'id'>, perDevice: boolean, after: readonly CompiledQuery[], inserted?: (id: number) => void): Promise<number> {
    const db = this.db;
    const insert = this.statements.compile('store message by writer', storedMessageValues(message, perDevice), (v) => storedMessageRow(db, v));
    this.waiting.added(quotaOf(message));
    const written = this.writer.insert([insert, ...after]);
    const { aor } = message;
    const answered = written.then(
      () => {},
      () => {},
    );
    this.unanswered.set(aor, answered);
    void answered.then(() => this.unanswered.get(aor) === answered && this.unanswered.delete(aor));
    const id = await written;
    // A plain INSERT inserts its row.
    if (id === undefined) throw new Error('stored message not inserted');
    inserted?.(id);
    return id;
  }
}

/** The quota `message` counts against: its recipient's, or that of the copies of what the recipient sent. */
export function quotaOf(message: Omit<StoredMessage, 'id'>): string {
  return message.sentCopy ? `${message.aor}\ncopies` : message.aor;
}

/**
 * Whether the quota of `message` has maxPerUser waiting, counted by `db` (at most that many), which
 * sets its bound in `waiting` (see insertStoredMessage).
 */
export async function isFull(
  db: Kysely<Database>, statements: CompiledStatements, waiting: WaitingBounds, message: Omit<StoredMessage, 'id'>, maxPerUser: number,
): Promise<boolean> {
  const sentCopy = message.sentCopy ? 1 : 0;
  const quota = quotaOf(message);
  const limit = Math.floor(maxPerUser);
  const count = statements.compile(`waiting at most ${limit} ${sentCopy}`, [message.aor, message.receivedAt], ([aor, now]) =>
    db
      .selectFrom((eb) =>
        eb
          .selectFrom('offline_messages')
          .select('id')
          .where('aor', '=', aor as string)
          .where('expires_at', '>', now as number)
          .where('sent_copy', '=', sql.lit(sentCopy))
          .limit(sql.lit(limit))
          .as('waiting'),
      )
      .select((eb) => eb.fn.countAll<number>().as('waiting')),
  );
  const { rows: counted } = await db.executeQuery<{ waiting: number | string }>(count);
  const stored = Number(counted[0]!.waiting);
  // A count that reached the limit stopped there: it is no bound, and the next message counts again.
  if (stored >= maxPerUser) {
    waiting.forget(quota);
    return true;
  }
  waiting.counted(quota, stored);
  return false;
}

/** The values of a stored message's row, in the order storedMessageRow takes them. */
export function storedMessageValues(message: Omit<StoredMessage, 'id'>, perDevice: boolean): unknown[] {
  return [
    message.aor, message.fromHeader, message.toHeader, message.contentType, message.body, message.receivedAt, message.sentAt ?? null, message.expiresAt,
    message.origin?.callId ?? null, message.origin?.fromTag ?? null, message.origin?.cseq ?? null, perDevice ? 1 : 0, message.sentCopy ? 1 : 0,
  ];
}

/** The insert of a stored message's row made of `v` (storedMessageValues). */
export function storedMessageRow(db: Kysely<Database>, v: readonly unknown[]) {
  return db.insertInto('offline_messages').values({
    aor: v[0] as string,
    from_header: v[1] as string,
    to_header: v[2] as string,
    content_type: v[3] as string,
    body: v[4] as Buffer,
    received_at: v[5] as number,
    sent_at: v[6] as number | null,
    expires_at: v[7] as number,
    origin_call_id: v[8] as string | null,
    origin_from_tag: v[9] as string | null,
    origin_cseq: v[10] as number | null,
    per_device: v[11] as number,
    sent_copy: v[12] as number,
  });
}

export function toStoredMessage(row: Selectable<OfflineMessagesTable>): StoredMessage {
  return {
    id: row.id,
    aor: row.aor,
    fromHeader: row.from_header,
    toHeader: row.to_header,
    contentType: row.content_type,
    body: row.body,
    receivedAt: row.received_at,
    expiresAt: row.expires_at,
    ...nullsAbsent({ sentAt: row.sent_at }),
    ...(row.origin_call_id !== null && row.origin_from_tag !== null && row.origin_cseq !== null
      ? { origin: { callId: row.origin_call_id, fromTag: row.origin_from_tag, cseq: Number(row.origin_cseq) } }
      : {}),
    ...(row.sent_copy === 1 ? { sentCopy: true } : {}),
  };
}
