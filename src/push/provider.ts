// What every push provider does: send one notification to one device and say how it went, in
// the terms the push service acts on (done, drop the token, try again later, give up).
import type { PushTarget } from './params.js';

/** What a push tells the device: a message is waiting for it. */
export interface PushNotification {
  /** The sender's address (the message's From URI). */
  from: string;
  /** The message's Call-ID, which Linphone uses to find the message once registered. */
  callId: string;
}

export type SendResult =
  | { kind: 'sent' }
  /** The provider no longer knows the token: the device's push parameters are useless. */
  | { kind: 'invalid-token'; reason: string }
  /** A failure that may pass (overload, unreachable, an expired credential now renewed). */
  | { kind: 'retry'; reason: string }
  | { kind: 'failed'; reason: string };

export interface PushProvider<Target extends PushTarget = PushTarget> {
  send(target: Target, notification: PushNotification, signal: AbortSignal): Promise<SendResult>;
  close(): void;
}

/** The result of an HTTP status no provider-specific rule claimed: 2xx sent, 429 and 5xx again, else failed. */
export function resultOfStatus(status: number, reason: string): SendResult {
  if (status >= 200 && status < 300) return { kind: 'sent' };
  if (status === 429 || status >= 500) return { kind: 'retry', reason };
  return { kind: 'failed', reason };
}

/** A JSON body, or undefined when it is none (an HTML error page of a proxy, an empty body). */
export function parseJsonBody(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}
