/**
 * Deliveries into SIP that must keep their order per recipient (room traffic, gateway messages,
 * error notifications), pipelined: a work for one recipient starts as soon as the previous one
 * has written its request (the order on the wire is the order of the works), up to a window of
 * works under way at once, instead of one final response per message. Different recipients
 * proceed in parallel, so a slow recipient holds up only itself.
 *
 * A work ends in order: it "ends" once it is done and every earlier work of its recipient has
 * ended. What must not overtake an earlier message (storing offline after a 408 or 480, recording
 * an outbox leg done) waits for `turn.previous`. A work that never says it has sent (one that
 * talks to a network, not to SIP) lets the next one start only when it is done: strictly one after
 * the other, as a window of 1.
 */
export interface DeliveryTurn {
  /**
   * The work's request is written: the next work of the recipient may send its own, with up to
   * `window` works under way at once (the window of the transport the request went over).
   * Calling it again does nothing.
   */
  sent(window: number): void;
  /** Settles (never rejects) once every earlier work of the recipient has ended. */
  readonly previous: Promise<void>;
}

export type OrderedWork = (turn: DeliveryTurn) => Promise<void>;

interface Queued {
  work: OrderedWork;
  previous: Promise<void>;
  end: () => void;
}

/** One recipient's works: those not started yet, and how many are under way. */
interface Lane {
  queued: Queued[];
  underWay: number;
  /** The latest started work has not written its request yet: the next one waits. */
  sending: boolean;
  /** Works allowed under way at once, as the latest request written said. */
  window: number;
  /** Settles once the latest work queued has ended. */
  tail: Promise<void>;
}

export class OrderedDeliveries {
  private readonly lanes = new Map<string, Lane>();

  constructor(private readonly onError: (error: unknown, recipient: string) => void) {}

  add(recipient: string, work: OrderedWork): void {
    let lane = this.lanes.get(recipient);
    if (!lane) {
      lane = { queued: [], underWay: 0, sending: false, window: 1, tail: Promise.resolve() };
      this.lanes.set(recipient, lane);
    }
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    lane.queued.push({ work, previous: lane.tail, end });
    lane.tail = ended;
    this.pump(recipient, lane);
  }

  /** Works under way for one recipient (started, not ended). */
  underWay(recipient: string): number {
    return this.lanes.get(recipient)?.underWay ?? 0;
  }

  /** Resolves once everything queued so far has ended. */
  async drain(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((lane) => lane.tail));
  }

  private pump(recipient: string, lane: Lane): void {
    while (!lane.sending && lane.underWay < lane.window && lane.queued.length > 0) this.begin(recipient, lane, lane.queued.shift()!);
  }

  private begin(recipient: string, lane: Lane, { work, previous, end }: Queued): void {
    lane.underWay++;
    lane.sending = true;
    let sent = false;
    const markSent = (window: number): void => {
      if (sent) return;
      sent = true;
      lane.sending = false;
      lane.window = window;
      this.pump(recipient, lane);
    };
    void this.run(work, { sent: markSent, previous }, recipient)
      .then(() => {
        markSent(lane.window);
        return previous;
      })
      .then(() => {
        lane.underWay--;
        end();
        if (lane.underWay === 0 && lane.queued.length === 0) this.lanes.delete(recipient);
        else this.pump(recipient, lane);
      });
  }

  private async run(work: OrderedWork, turn: DeliveryTurn, recipient: string): Promise<void> {
    try {
      await work(turn);
    } catch (error) {
      this.onError(error, recipient);
    }
  }
}
