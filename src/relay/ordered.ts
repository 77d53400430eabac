/**
 * Deliveries into SIP that must keep their order per recipient (room traffic, gateway messages,
 * error notifications), pipelined: a work for one recipient starts as soon as the previous one
 * has written its request (the order on the wire is the order of the works), up to a window of
 * works under way at once, instead of one final response per message. Different recipients
 * proceed in parallel, so a slow recipient holds up only itself.
 *
 * A work ends in order: it "ends" once it is done and every earlier work of its recipient has
 * ended. What must not overtake an earlier message (storing offline after a 408 or 480, recording
 * an outbox leg done) waits for `turn.previous`. The window counts the works whose request is not
 * answered yet: one answered that only waits for an earlier one (`turn.answered()`) makes room for
 * the next, so a request lost on the way (answered only once retransmitted, T1 later) delays
 * itself, not the recipient's later messages. A work that never says it has sent (one that talks to
 * a network, not to SIP) lets the next one start only when it is done: strictly one after the
 * other, as a window of 1.
 */
export interface DeliveryTurn {
  /**
   * The work's request is written: the next work of the recipient may send its own, with up to
   * `window` works under way at once (the window of the transport the request went over).
   * Calling it again does nothing.
   */
  sent(window: number): void;
  /**
   * The work's request is answered (or given up): what the work still does only waits for its
   * turn, and it no longer counts against the window. Finishing says it too; calling it again does nothing.
   */
  answered(): void;
  /**
   * The work's delivery is over, whether or not it said it sent: only what waits for its turn is
   * left, and the next work may start meanwhile (as after sent(), the window unchanged, and answered()).
   */
  delivered(): void;
  /** Settles (never rejects) once every earlier work of the recipient has ended. */
  readonly previous: Promise<void>;
  /**
   * Runs `then` at once when every earlier work of the recipient has ended, else once they have:
   * its result, or the promise of it. What waits for its turn this way costs no promise when
   * nothing is before it.
   */
  afterPrevious<Result>(then: () => Result): Result | Promise<Result>;
}

/**
 * A work: done once its promise settles, or at once when it returns nothing (one that finished
 * without waiting for anything saves its recipient's lane a promise and a callback).
 */
export type OrderedWork = (turn: DeliveryTurn) => Promise<void> | void;

/** What `previous` is once there is nothing to wait for. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * One work in its recipient's lane, and its turn. One object per work, its promise made only when
 * someone waits for it to end: a room post has a work per member, so what each costs counts.
 */
class Turn implements DeliveryTurn {
  private hasSent = false;
  /** It no longer counts in its lane's works under way (answered, or finished). */
  private hasAnswered = false;
  /** The work itself has finished. */
  private finished = false;
  /** It has finished and every earlier work of the lane has ended. */
  private hasEnded = false;
  private whenEnded: Promise<void> | undefined;
  private markEnded: (() => void) | undefined;
  /** The next work of the lane, told when this one ends. */
  next: Turn | undefined;

  constructor(
    private readonly queues: OrderedDeliveries,
    private readonly lane: Lane,
    readonly work: OrderedWork,
    /** The work queued before this one, until it has ended. */
    private before: Turn | undefined,
  ) {}

  sent(window: number): void {
    if (this.hasSent) return;
    this.hasSent = true;
    this.lane.sending = false;
    this.lane.window = window;
    this.queues.pump(this.lane);
  }

  answered(): void {
    if (this.hasAnswered) return;
    this.hasAnswered = true;
    this.lane.underWay--;
    this.queues.pump(this.lane);
  }

  delivered(): void {
    this.sent(this.lane.window);
    this.answered();
  }

  get previous(): Promise<void> {
    return this.before?.ended() ?? SETTLED;
  }

  afterPrevious<Result>(then: () => Result): Result | Promise<Result> {
    const before = this.before;
    if (!before || before.hasEnded) return then();
    return before.ended().then(then);
  }

  /** Settles once this work and every earlier one have ended. */
  ended(): Promise<void> {
    if (this.hasEnded) return SETTLED;
    return (this.whenEnded ??= new Promise<void>((resolve) => (this.markEnded = resolve)));
  }

  /** The work has finished (or failed): it ends now, or once the works before it have. */
  finish(): void {
    this.finished = true;
    this.delivered();
    if (!this.before || this.before.hasEnded) this.end();
  }

  /** Ends this work, and the finished ones after it that only waited for it: a loop, however many they are. */
  private end(): void {
    for (let turn: Turn | undefined = this; turn; turn = turn.next?.finished ? turn.next : undefined) {
      turn.hasEnded = true;
      turn.markEnded?.();
      // The lane's last work has ended, so every one before it has: the lane has nothing left.
      if (this.lane.tail === turn) this.queues.emptied(this.lane);
      if (turn.next) turn.next.before = undefined;
    }
  }
}

/** One recipient's works: those not started yet, and how many are under way. */
interface Lane {
  recipient: string;
  /** The first work not started yet; the others follow it by `next`. */
  queued: Turn | undefined;
  /** Works started and not answered yet (Turn.answered): what the window bounds. */
  underWay: number;
  /** The latest started work has not written its request yet: the next one waits. */
  sending: boolean;
  /** Works allowed under way at once, as the latest request written said. */
  window: number;
  /** The latest work queued. */
  tail: Turn | undefined;
  /** pump() is starting works. */
  pumping: boolean;
}

export class OrderedDeliveries {
  private readonly lanes = new Map<string, Lane>();

  constructor(private readonly onError: (error: unknown, recipient: string) => void) {}

  add(recipient: string, work: OrderedWork): void {
    let lane = this.lanes.get(recipient);
    if (!lane) {
      lane = { recipient, queued: undefined, underWay: 0, sending: false, window: 1, tail: undefined, pumping: false };
      this.lanes.set(recipient, lane);
    }
    const turn = new Turn(this, lane, work, lane.tail);
    if (lane.tail) lane.tail.next = turn;
    lane.tail = turn;
    lane.queued ??= turn;
    this.pump(lane);
  }

  /** Works under way for one recipient (started, not answered). */
  underWay(recipient: string): number {
    return this.lanes.get(recipient)?.underWay ?? 0;
  }

  /** Resolves once everything queued so far has ended. */
  async drain(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((lane) => lane.tail?.ended()));
  }

  /**
   * Starts what the lane allows. For Turn only. A work that says it has sent, or finishes, as it
   * starts calls this again from within: the loop already under way goes on instead, so that a long
   * lane of works finishing at once is a loop, not a recursion as deep as the lane.
   */
  pump(lane: Lane): void {
    if (lane.pumping) return;
    lane.pumping = true;
    try {
      for (let turn = lane.queued; turn && !lane.sending && lane.underWay < lane.window; turn = lane.queued) {
        lane.queued = turn.next;
        this.begin(lane, turn);
      }
    } finally {
      lane.pumping = false;
    }
  }

  /** Every work of the lane has ended: it goes, and the recipient's next work starts a lane of its own. For Turn only. */
  emptied(lane: Lane): void {
    if (this.lanes.get(lane.recipient) === lane) this.lanes.delete(lane.recipient);
  }

  private begin(lane: Lane, turn: Turn): void {
    lane.underWay++;
    lane.sending = true;
    let running: Promise<void> | void;
    try {
      running = turn.work(turn);
    } catch (error) {
      running = Promise.reject(error);
    }
    if (!running) return turn.finish();
    void running.then(
      () => turn.finish(),
      (error: unknown) => {
        this.onError(error, lane.recipient);
        turn.finish();
      },
    );
  }
}
