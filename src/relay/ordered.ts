/**
 * Deliveries into SIP that must keep their order per recipient (room traffic, gateway messages,
 * error notifications): work for one recipient runs after the previous one finished, while
 * different recipients proceed in parallel.
 */
export class OrderedDeliveries {
  private readonly tails = new Map<string, Promise<void>>();

  constructor(private readonly onError: (error: unknown, recipient: string) => void) {}

  add(recipient: string, work: () => Promise<void>): void {
    const previous = this.tails.get(recipient) ?? Promise.resolve();
    const next = previous.then(work).catch((error: unknown) => this.onError(error, recipient));
    this.tails.set(recipient, next);
    void next.then(() => {
      if (this.tails.get(recipient) === next) this.tails.delete(recipient);
    });
  }

  /** Resolves once everything queued so far has run. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.tails.values()]);
  }
}
