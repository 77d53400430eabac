/**
 * What Parley acknowledged is durable: a room post answered 200 and a gateway MESSAGE answered 202
 * are in the store's outbox before the answer goes out, and are delivered after a restart, even
 * one after kill -9. One row per message with the list of its recipients (group-committed with
 * the other rows and progress marks of the same moment); each recipient gets its messages in order,
 * through the same per-recipient queue as the module's other deliveries, pipelined: a leg's outcome
 * is taken into account only after the recipient's earlier legs', so its progress mark never passes
 * a leg still pending. A leg that is done is marked in batches; a row done for everyone is deleted. At start, what is pending is delivered
 * again: at least once, and a leg done in the last PROGRESS_DELAY_MS before a kill may come twice,
 * under the same leg key both times (see resend.ts).
 */
import type { Logger } from 'pino';
import { isStoreUnavailable, logBackgroundFailure, type OutboxRecord, type OutboxStore } from '../store/index.js';
import type { DeliveryTurn, OrderedDeliveries } from './ordered.js';

/** How long done legs are gathered before their marks are written (the duplicate window after a kill). */
const PROGRESS_DELAY_MS = 50;
/** How long a leg that could not be done, or progress that could not be written (store unavailable), waits before it is tried again. */
const RETRY_MS = 1000;

/** Past this share of its bound an outbox makes the relay's health degraded: senders will soon get 503. */
const BACKLOG_WARNING_SHARE = 0.8;

/** What became of one leg: done (delivered, stored offline, or failed for good and told), or to be tried again later. */
export type LegOutcome = 'done' | 'retry';

export interface OutboxCodec<Item> {
  encode(item: Item): Buffer;
  decode(payload: Buffer): Item;
}

export interface OutboxLimits {
  /** Messages of this kind pending at once. */
  maxMessages: number;
  /** Messages pending for one recipient. */
  maxPerRecipient: number;
}

/** The outbox is past one of its bounds: nothing was stored, the sender is to try again later. */
export class OutboxFull extends Error {}

/** What names one leg and places it in its recipient's order. */
export interface LegContext {
  readonly key: string;
  turn: DeliveryTurn;
  /**
   * The message was refused to its sender, its store write having failed while its legs went
   * (OutboxDelivery.whileStoring): a leg that waited (for the network) is not to send it.
   */
  readonly refused: boolean;
}

export interface OutboxDelivery<Item> {
  /**
   * One leg: the item to one recipient; `acceptedAt` is when the sender was answered; `leg.key` names
   * this leg for good, the same when it is delivered again after a restart; `leg.turn` is its place
   * in the recipient's order.
   */
  deliver(item: Item, recipient: string, acceptedAt: number, leg: LegContext): LegOutcome | Promise<LegOutcome>;
  /**
   * The legs may go while the message is being written to the store, rather than once it is
   * (deliveries that never read `leg.key`, which names the row): the network gets it without
   * waiting for the disk; the sender is still answered only once it is durable.
   */
  whileStoring?: boolean;
}

/** A message whose legs go while it is written (OutboxDelivery.whileStoring): its record gets its id once stored. */
interface Storing {
  state: 'writing' | 'stored' | 'failed';
  /** Its legs that ended while it was being written: recorded once it is stored. */
  ended: Leg[];
}

/** A leg's context, its key made only when asked for: most deliveries name a leg by what the sender sent instead. */
class Leg implements LegContext {
  constructor(
    readonly record: OutboxRecord,
    readonly recipient: string,
    readonly turn: DeliveryTurn,
    /** Set while its message may still be being written. */
    readonly storing?: Storing,
  ) {}

  get key(): string {
    return `${this.record.kind}.${this.record.id}.${this.record.createdAt}.${this.recipient}`;
  }

  get refused(): boolean {
    return this.storing?.state === 'failed';
  }
}

/** The payload of a message being delivered: the item itself is at hand. */
const EMPTY = Buffer.alloc(0);

export class Outbox<Item> {
  /** Rows in delivery, by id: legs not done yet. */
  private readonly remaining = new Map<number, number>();
  /** Legs not done yet, by recipient (reserved ones included). */
  private readonly backlog = new Map<string, number>();
  /** Messages being written, counted against the bound before they are. */
  private reserved = 0;
  /** Progress not written yet: rows done for everyone, and per recipient the last row done for it. */
  private finished: number[] = [];
  private readonly cursors = new Map<string, number>();
  private progressTimer: NodeJS.Timeout | undefined;
  private progressWrite: Promise<void> = Promise.resolve();
  private stopping = false;
  /** Recipients with a leg left pending while stopping. */
  private readonly abandoned = new Set<string>();
  /** Settles once start() has queued what was pending: new messages are written and queued behind it, in id order. */
  private readonly loaded: Promise<void>;
  private markLoaded!: () => void;
  /** `loaded` has settled: a message need not wait for it (a turn of promises less per message). */
  private isLoaded = false;
  /** Messages being written while their legs go (whileStoring), and what stop() calls once there are none. */
  private writing = 0;
  private writesSettled: (() => void) | undefined;

  constructor(
    private readonly store: OutboxStore,
    private readonly kind: string,
    private readonly codec: OutboxCodec<Item>,
    private readonly delivery: OutboxDelivery<Item>,
    private readonly queues: OrderedDeliveries,
    private readonly limits: OutboxLimits,
    private readonly log: Logger,
  ) {
    this.loaded = new Promise((resolve) => (this.markLoaded = resolve));
    void this.loaded.then(() => (this.isLoaded = true));
  }

  /** Messages pending. */
  get size(): number {
    return this.remaining.size + this.reserved;
  }

  /** What to say of the backlog once it is past BACKLOG_WARNING_SHARE of its bound; undefined below. */
  backlogWarning(): string | undefined {
    if (this.size < BACKLOG_WARNING_SHARE * this.limits.maxMessages) return undefined;
    return `the ${this.kind} outbox holds ${this.size} messages, past ${BACKLOG_WARNING_SHARE * 100} % of its bound (${this.limits.maxMessages})`;
  }

  /** Legs pending for one recipient. */
  backlogOf(recipient: string): number {
    return this.backlog.get(recipient) ?? 0;
  }

  /** Delivers again what was pending when Parley stopped or was killed; resolves with how many messages. */
  async start(): Promise<number> {
    try {
      return await this.load();
    } finally {
      this.markLoaded();
    }
  }

  private async load(): Promise<number> {
    const { records, cursors } = await this.store.pending(this.kind);
    for (const record of records) {
      const left = record.recipients.filter((recipient) => (cursors.get(recipient) ?? 0) < record.id);
      if (left.length === 0) this.finished.push(record.id);
      else this.dispatch(record, this.codec.decode(record.payload), left);
    }
    if (this.finished.length > 0) this.scheduleProgress();
    if (records.length > 0) this.log.info({ kind: this.kind, messages: records.length }, 'outbox: delivering what was pending at the last stop');
    return records.length;
  }

  /**
   * Stores the item for its recipients; resolves once it is durable and queued, so the sender may
   * be answered. Rejects with OutboxFull past a bound, or with the store's error (nothing queued).
   */
  async submit(item: Item, recipients: string[], now = Date.now()): Promise<void> {
    if (recipients.length === 0) return;
    // Written before what was pending is loaded, it would be loaded and queued twice.
    if (!this.isLoaded) await this.loaded;
    if (this.size >= this.limits.maxMessages) throw new OutboxFull(`${this.size} messages waiting for delivery`);
    const crowded = recipients.find((recipient) => this.backlogOf(recipient) >= this.limits.maxPerRecipient);
    if (crowded !== undefined) throw new OutboxFull(`${this.backlogOf(crowded)} messages waiting for ${crowded}`);
    this.reserved++;
    // Counted in each recipient's backlog from now on: once stored, as the legs queued.
    this.count(recipients);
    if (this.delivery.whileStoring) return this.submitWhileStoring(item, recipients, now);
    let queued = false;
    // Delivery starts once the row is committed, while the disk sync the answer waits for is under
    // way: a kill -9 keeps what is committed. Should the sync fail, the sender is refused a message
    // that may still arrive (at least once, as after a lost answer). The legs start once the store
    // is done telling the batch (in its order): delivered at once, a batch's legs would otherwise
    // hold back the start of the sync its senders' answers wait for.
    let id: number;
    try {
      id = await this.store.add({ kind: this.kind, recipients, payload: this.codec.encode(item), createdAt: now }, (committedId) => {
        queued = true;
        queueMicrotask(() => this.stored(committedId, item, recipients, now));
      });
    } catch (error) {
      if (!queued) this.unreserve(recipients);
      throw error;
    }
    if (!queued) this.stored(id, item, recipients, now);
  }

  /**
   * As submit, the legs queued at once, while the row is written. A message whose write fails is
   * refused to its sender, and may still arrive if a leg went already (at least once, as after a
   * lost answer); its legs not started by then are dropped. The store settles writes in the order
   * they were asked for, so the legs ended meanwhile are recorded in their recipients' order.
   */
  private submitWhileStoring(item: Item, recipients: string[], now: number): Promise<void> {
    const record = { id: 0, kind: this.kind, recipients, payload: EMPTY, createdAt: now };
    const storing: Storing = { state: 'writing', ended: [] };
    for (const recipient of recipients) this.queues.add(recipient, (turn) => this.runLeg(new Leg(record, recipient, turn, storing), item));
    this.writing++;
    return this.store.add({ kind: this.kind, recipients, payload: this.codec.encode(item), createdAt: now }).then(
      (id) => {
        record.id = id;
        storing.state = 'stored';
        this.reserved--;
        this.remaining.set(id, recipients.length);
        for (const leg of storing.ended) void leg.turn.afterPrevious(() => this.recordLeg(leg));
        this.writeSettled();
      },
      (error: unknown) => {
        storing.state = 'failed';
        this.unreserve(recipients);
        this.writeSettled();
        throw error;
      },
    );
  }

  private writeSettled(): void {
    if (--this.writing === 0) this.writesSettled?.();
  }

  /** The message is in the store: no longer reserved, its legs queued (counted in their recipients' backlogs already). */
  private stored(id: number, item: Item, recipients: string[], createdAt: number): void {
    this.reserved--;
    this.queue({ id, kind: this.kind, recipients, payload: EMPTY, createdAt }, item, recipients);
  }

  private unreserve(recipients: string[]): void {
    this.reserved--;
    for (const recipient of recipients) this.release(recipient);
  }

  /** Waits for the legs under way (each ends done or postponed) and writes their progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.queues.drain();
    // The legs that ended while their message was written are recorded once it is.
    if (this.writing > 0) await new Promise<void>((resolve) => (this.writesSettled = resolve));
    clearTimeout(this.progressTimer);
    await this.writeProgress();
  }

  private dispatch(record: OutboxRecord, item: Item, recipients: string[]): void {
    this.count(recipients);
    this.queue(record, item, recipients);
  }

  private count(recipients: string[]): void {
    for (const recipient of recipients) this.backlog.set(recipient, this.backlogOf(recipient) + 1);
  }

  /** Queues the legs of a message, counted in their recipients' backlogs already. */
  private queue(record: OutboxRecord, item: Item, recipients: string[]): void {
    this.remaining.set(record.id, recipients.length);
    for (const recipient of recipients) this.queues.add(recipient, (turn) => this.runLeg(new Leg(record, recipient, turn), item));
  }

  /**
   * One leg, tried until it is done (again after RETRY_MS while it says so), then recorded in its
   * recipient's order. Chained rather than an async function: each leg of a room post runs this, and
   * an async function keeps a frame, and makes a promise more, per leg. A leg delivered at once
   * (an outcome, not its promise) and recorded at once (nothing before it) returns nothing: no
   * promise at all.
   */
  private runLeg(leg: Leg, item: Item): Promise<void> | undefined {
    // Refused to its sender before it went: it does not go (its backlog was released with the refusal).
    if (leg.refused) return undefined;
    // Left pending in the store while stopping: the next start delivers it.
    if (this.stopping) return this.legEnded(leg, false);
    let outcome: LegOutcome | Promise<LegOutcome>;
    try {
      outcome = this.delivery.deliver(item, leg.recipient, leg.record.createdAt, leg);
    } catch (error) {
      outcome = this.failed(error, leg.recipient);
    }
    if (typeof outcome === 'string') return this.attempted(leg, item, outcome);
    return outcome.then(
      (result) => this.attempted(leg, item, result),
      (error: unknown) => this.attempted(leg, item, this.failed(error, leg.recipient)),
    );
  }

  private attempted(leg: Leg, item: Item, outcome: LegOutcome): Promise<void> | undefined {
    if (outcome === 'done' || this.stopping) return this.legEnded(leg, outcome === 'done');
    return new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref()).then(() => this.runLeg(leg, item));
  }

  /** A leg done, or left pending (`done` false) while stopping: recorded once every earlier leg of its recipient is. */
  private legEnded(leg: Leg, done: boolean): Promise<void> | undefined {
    if (!done) this.abandoned.add(leg.recipient);
    // Only the bookkeeping below waits for the earlier legs (and for the row): the recipient's next legs may go meanwhile.
    leg.turn.delivered();
    // The recipient's cursor says every leg up to this one is done: an earlier one comes first,
    // and past one left pending the later ones stay pending too (delivered again at the next start).
    if (leg.storing?.state === 'writing') return void leg.storing.ended.push(leg);
    return leg.turn.afterPrevious(() => this.recordLeg(leg));
  }

  private recordLeg({ record, recipient, storing }: Leg): undefined {
    // Refused to its sender: its backlog was released with the refusal, and there is no row to mark.
    if (this.abandoned.has(recipient) || storing?.state === 'failed') return;
    this.release(recipient);
    const left = this.remaining.get(record.id)! - 1;
    if (left > 0) {
      this.remaining.set(record.id, left);
      this.cursors.set(recipient, record.id);
    } else {
      this.remaining.delete(record.id);
      this.finished.push(record.id);
    }
    this.scheduleProgress();
  }

  /** A leg that threw is tried again while the store is unavailable; otherwise it is logged and given up, so one bad item cannot hold up its recipient for ever. */
  private failed(error: unknown, recipient: string): LegOutcome {
    if (isStoreUnavailable(error)) return 'retry';
    this.log.error({ err: error, kind: this.kind, recipient }, 'outbox delivery failed; given up');
    return 'done';
  }

  private release(recipient: string): void {
    const left = this.backlogOf(recipient) - 1;
    if (left > 0) this.backlog.set(recipient, left);
    else this.backlog.delete(recipient);
  }

  private scheduleProgress(delayMs = PROGRESS_DELAY_MS): void {
    this.progressTimer ??= setTimeout(() => {
      this.progressTimer = undefined;
      void this.writeProgress();
    }, delayMs);
  }

  private writeProgress(): Promise<void> {
    const finished = this.finished;
    // A cursor matters only while a row at or below it is pending (rows enter `remaining` in id order).
    const oldest = this.remaining.keys().next().value;
    const cursors = [...this.cursors].filter(([, doneId]) => oldest !== undefined && oldest <= doneId);
    this.finished = [];
    this.cursors.clear();
    if (finished.length === 0 && cursors.length === 0) return this.progressWrite;
    const progress = { finished, cursors: cursors.map(([recipient, doneId]) => ({ kind: this.kind, recipient, doneId })) };
    this.progressWrite = this.store.record(progress).catch((error: unknown) => {
      logBackgroundFailure(this.log, 'outbox progress')(error);
      // Not written, those legs would only come again after a restart; while running, they are tried again.
      if (!isStoreUnavailable(error) || this.stopping) return;
      this.finished.push(...finished);
      for (const [recipient, doneId] of cursors) if ((this.cursors.get(recipient) ?? 0) < doneId) this.cursors.set(recipient, doneId);
      this.scheduleProgress(RETRY_MS);
    });
    return this.progressWrite;
  }
}

/** Items of plain JSON values. */
export function jsonCodec<Item>(): OutboxCodec<Item> {
  return {
    encode: (item) => Buffer.from(JSON.stringify(item), 'utf8'),
    decode: (payload) => JSON.parse(payload.toString('utf8')) as Item,
  };
}

/** Items of JSON values and a binary `body`, stored as it is: a length-prefixed JSON head, then the body. */
export function bodyCodec<Item extends { body: Buffer }>(): OutboxCodec<Item> {
  return {
    encode: ({ body, ...head }) => {
      const json = Buffer.from(JSON.stringify(head), 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(json.length);
      return Buffer.concat([length, json, body]);
    },
    decode: (payload) => {
      const length = payload.readUInt32BE(0);
      const head = JSON.parse(payload.subarray(4, 4 + length).toString('utf8')) as Omit<Item, 'body'>;
      return { ...head, body: Buffer.from(payload.subarray(4 + length)) } as Item;
    },
  };
}
