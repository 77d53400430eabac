// The generic webhook: for any pn-provider Parley has no client of its own for, a POST to an
// operator's URL, which pushes however it likes.
import { postHttp1, type TlsOptions } from './http.js';
import type { OtherTarget } from './params.js';
import { resultOfStatus, type PushNotification, type PushProvider, type SendResult } from './provider.js';

export interface WebhookOptions {
  /** The URL, with $token, $from, $call_id, $provider and $param replaced (URL-encoded). */
  urlTemplate: string;
  /** The Authorization header's value; absent: none is sent. */
  authorization?: string;
  tls: TlsOptions;
  timeoutMs: number;
}

const PLACEHOLDER = /\$(token|from|call_id|provider|param)\b/g;

export class WebhookProvider implements PushProvider<OtherTarget> {
  constructor(private readonly options: WebhookOptions) {}

  async send(target: OtherTarget, notification: PushNotification, signal: AbortSignal): Promise<SendResult> {
    const values: Record<string, string> = { token: target.token, from: notification.from, call_id: notification.callId, provider: target.name, param: target.param };
    const url = new URL(this.options.urlTemplate.replace(PLACEHOLDER, (_, name: string) => encodeURIComponent(values[name]!)));
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.authorization !== undefined) headers.authorization = this.options.authorization;
    const body = JSON.stringify({ provider: target.name, token: target.token, param: target.param, from: notification.from, call_id: notification.callId });
    const response = await postHttp1(url, headers, body, this.options.tls, this.options.timeoutMs, signal);
    const description = `webhook ${response.status}`;
    // 404 and 410 say the hook knows no such device.
    if (response.status === 404 || response.status === 410) return { kind: 'invalid-token', reason: description };
    return resultOfStatus(response.status, description);
  }

  close(): void {}
}
