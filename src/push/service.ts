// The push service: wakes a device that has a message waiting and no live flow, so it registers
// and the message is delivered. One push per (delivery, device), retried with backoff while the
// provider's failure may pass, cancelled when the device answered after all; a token the provider
// no longer knows is reported so the caller drops that binding's push parameters. Logs name the
// delivery and device, never a token or credential.
import type { Logger } from 'pino';
import { Backoff } from '../util/backoff.js';
import { providerOf, type ProviderName, type PushTarget } from './params.js';
import type { PushProvider, SendResult } from './provider.js';

/** What a pending delivery carries. Only messages are pushed: the others are never worth waking a device for. */
export type DeliveryKind = 'message' | 'imdn' | 'is-composing' | 'copy';

export function isPushable(kind: DeliveryKind): boolean {
  return kind === 'message';
}

export interface PushRequest {
  /** The delivery that waits; cancel(deliveryId) ends its pushes. */
  deliveryId: string;
  /** The device it waits for (its +sip.instance or contact). */
  device: string;
  /** The message's From URI. */
  from: string;
  callId: string;
  kind: DeliveryKind;
}

export type PushOutcome =
  | { status: 'sent' }
  | { status: 'invalid-token'; reason: string }
  | { status: 'failed'; reason: string }
  | { status: 'cancelled' }
  /** A push for this delivery and device was already made (or is under way). */
  | { status: 'duplicate' };

export interface InvalidTokenReport {
  deliveryId: string;
  device: string;
  target: PushTarget;
  reason: string;
}

export interface PushServiceOptions {
  /** Shortest and longest wait before another attempt, ms (see Backoff). */
  retryMinMs: number;
  retryMaxMs: number;
  /** Attempts at most, the first included. */
  attempts: number;
  /** For Backoff's jitter; Math.random but in tests. */
  random?: () => number;
}

export class PushError extends Error {
  override name = 'PushError';
}

type Providers = { [Name in ProviderName]?: PushProvider<never> };

interface Job {
  key: string;
  request: PushRequest;
  target: PushTarget;
  provider: ProviderName;
  backoff: Backoff;
  attempts: number;
  abort: AbortController;
  retryTimer?: NodeJS.Timeout;
  settle(outcome: PushOutcome): void;
}

/** How many settled (delivery, device) pairs are remembered to refuse a second push for them. */
const REMEMBERED_PUSHES = 100_000;

const PROVIDER_NAMES: readonly ProviderName[] = ['apns', 'fcm', 'webhook'];

export interface PushStats {
  sent: Record<ProviderName, number>;
  failed: Record<ProviderName, number>;
  invalidTokens: Record<ProviderName, number>;
}

const perProvider = (): Record<ProviderName, number> => ({ apns: 0, fcm: 0, webhook: 0 });

export class PushService {
  readonly stats: PushStats = { sent: perProvider(), failed: perProvider(), invalidTokens: perProvider() };
  private readonly jobs = new Map<string, Job>();
  private readonly settled = new Set<string>();
  private readonly invalidTokenListeners = new Set<(report: InvalidTokenReport) => void>();
  /** Each provider's last failure (not a bad token), until a push through it succeeds. */
  private readonly lastFailure = new Map<ProviderName, string>();
  private closed = false;

  constructor(
    private readonly providers: Providers,
    private readonly options: PushServiceOptions,
    private readonly log: Logger,
  ) {}

  /** The providers configured, which push to their targets. */
  get configured(): ProviderName[] {
    return PROVIDER_NAMES.filter((name) => this.providers[name] !== undefined);
  }

  /** Pushes being sent or waiting to be tried again. */
  get pending(): number {
    return this.jobs.size;
  }

  /**
   * Pushes to `target` that `request.deliveryId` waits for `request.device`. The promise never
   * rejects: it gives the final outcome. Throws PushError for a kind that is never pushed
   * (check isPushable first) and once the service is closed.
   */
  notify(target: PushTarget, request: PushRequest): Promise<PushOutcome> {
    if (!isPushable(request.kind)) throw new PushError(`${request.kind} deliveries are never pushed`);
    if (this.closed) throw new PushError('the push service is closed');
    const key = `${request.deliveryId}\n${request.device}`;
    if (this.jobs.has(key) || this.settled.has(key)) return Promise.resolve({ status: 'duplicate' });
    const provider = providerOf(target);
    if (!this.providers[provider]) {
      this.remember(key);
      this.stats.failed[provider]++;
      this.log.warn({ provider, deliveryId: request.deliveryId, device: request.device }, `push not sent: ${provider} is not configured (push section)`);
      return Promise.resolve({ status: 'failed', reason: `${provider} is not configured` });
    }
    return new Promise((resolve) => {
      const job: Job = {
        key,
        request,
        target,
        provider,
        backoff: new Backoff(this.options.retryMinMs, this.options.retryMaxMs, this.options.random),
        attempts: 0,
        abort: new AbortController(),
        settle: (outcome) => {
          clearTimeout(job.retryTimer);
          this.jobs.delete(key);
          this.remember(key);
          resolve(outcome);
        },
      };
      this.jobs.set(key, job);
      void this.attempt(job);
    });
  }

  /**
   * Ends the pushes of a delivery (to one device, or all of them): the device got it another way.
   * A push already on its way is aborted. Returns how many were ended.
   */
  cancel(deliveryId: string, device?: string): number {
    let cancelled = 0;
    for (const job of [...this.jobs.values()]) {
      if (job.request.deliveryId !== deliveryId || (device !== undefined && job.request.device !== device)) continue;
      job.abort.abort();
      job.settle({ status: 'cancelled' });
      cancelled++;
    }
    return cancelled;
  }

  /** Calls `listener` for each token a provider said is no longer valid; returns the unsubscribe. */
  onInvalidToken(listener: (report: InvalidTokenReport) => void): () => void {
    this.invalidTokenListeners.add(listener);
    return () => this.invalidTokenListeners.delete(listener);
  }

  /** Providers whose last push failed (not because of a bad token), with why. */
  failingProviders(): ReadonlyMap<ProviderName, string> {
    return this.lastFailure;
  }

  /** Cancels what is pending and closes the providers' connections. */
  close(): void {
    this.closed = true;
    for (const job of [...this.jobs.values()]) {
      job.abort.abort();
      job.settle({ status: 'cancelled' });
    }
    for (const provider of Object.values(this.providers)) provider?.close();
  }

  private async attempt(job: Job): Promise<void> {
    job.attempts++;
    const provider = this.providers[job.provider] as PushProvider;
    let result: SendResult;
    try {
      result = await provider.send(job.target, { from: job.request.from, callId: job.request.callId }, job.abort.signal);
    } catch (error) {
      result = { kind: 'retry', reason: (error as Error).message };
    }
    if (this.jobs.get(job.key) !== job) return; // cancelled meanwhile
    const context = { provider: job.provider, deliveryId: job.request.deliveryId, device: job.request.device, attempt: job.attempts };
    switch (result.kind) {
      case 'sent':
        this.stats.sent[job.provider]++;
        this.lastFailure.delete(job.provider);
        this.log.info(context, 'push sent');
        job.settle({ status: 'sent' });
        return;
      case 'invalid-token':
        this.stats.failed[job.provider]++;
        this.stats.invalidTokens[job.provider]++;
        this.log.info({ ...context, reason: result.reason }, 'push token no longer valid; the device\'s push parameters are to be dropped');
        job.settle({ status: 'invalid-token', reason: result.reason });
        this.reportInvalidToken({ deliveryId: job.request.deliveryId, device: job.request.device, target: job.target, reason: result.reason });
        return;
      case 'retry':
        if (job.attempts < this.options.attempts) {
          const delay = job.backoff.next();
          this.log.debug({ ...context, reason: result.reason, retryInMs: Math.round(delay) }, 'push failed, trying again');
          job.retryTimer = setTimeout(() => void this.attempt(job), delay);
          return;
        }
        break;
      case 'failed':
        break;
    }
    this.stats.failed[job.provider]++;
    this.lastFailure.set(job.provider, result.reason);
    this.log.warn({ ...context, reason: result.reason }, 'push failed');
    job.settle({ status: 'failed', reason: result.reason });
  }

  private reportInvalidToken(report: InvalidTokenReport): void {
    for (const listener of this.invalidTokenListeners) {
      try {
        listener(report);
      } catch (error) {
        this.log.error({ err: error }, 'invalid push token listener failed');
      }
    }
  }

  private remember(key: string): void {
    this.settled.add(key);
    if (this.settled.size > REMEMBERED_PUSHES) this.settled.delete(this.settled.values().next().value!);
  }
}
