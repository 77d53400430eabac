// Apple Push Notification service: HTTP/2 POST /3/device/<token>, authenticated by a provider
// token (an ES256 JWT made from the team's .p8 key) or by the connection's client certificate.
import { createHash, type KeyObject } from 'node:crypto';
import type { Http2Client } from './http.js';
import { signJwt } from './jwt.js';
import type { ApnsTarget } from './params.js';
import { parseJsonBody, resultOfStatus, type PushNotification, type PushProvider, type SendResult } from './provider.js';

export const APNS_PUSH_TYPES = ['alert', 'background', 'voip'] as const;
export type ApnsPushType = (typeof APNS_PUSH_TYPES)[number];

export interface ApnsTokenAuth {
  key: KeyObject;
  keyId: string;
  teamId: string;
}

export interface ApnsOptions {
  url: string;
  sandboxUrl: string;
  /** Token authentication; absent: the client certificate of `http` authenticates. */
  token?: ApnsTokenAuth;
  /** What a message push is when the device has the token for it (see choose). */
  pushType: ApnsPushType;
  /** Seconds APNs keeps trying to reach a device that is off; 0: now or never. */
  ttlSeconds: number;
  /** Milliseconds since the epoch; Date.now but in tests. */
  now: () => number;
}

/**
 * How long a provider token is used: Apple refuses one older than an hour and one renewed more
 * often than every 20 minutes.
 */
const PROVIDER_TOKEN_LIFETIME_MS = 50 * 60_000;

/** Reasons (APNs' JSON `reason`) that say the device token will never work again. */
const INVALID_TOKEN_REASONS = new Set(['BadDeviceToken', 'DeviceTokenNotForTopic', 'Unregistered']);

export class ApnsProvider implements PushProvider<ApnsTarget> {
  private providerToken: { jwt: string; issuedAt: number } | undefined;

  constructor(
    private readonly options: ApnsOptions,
    private readonly http: Http2Client,
  ) {}

  async send(target: ApnsTarget, notification: PushNotification, signal: AbortSignal): Promise<SendResult> {
    const { token, topic, pushType } = this.choose(target);
    const base = (target.sandbox ? this.options.sandboxUrl : this.options.url).replace(/\/$/, '');
    const headers: Record<string, string> = {
      'apns-topic': topic,
      'apns-push-type': pushType,
      // Apple requires 5 for background notifications; the others wake the device at once.
      'apns-priority': pushType === 'background' ? '5' : '10',
      'apns-expiration': String(this.options.ttlSeconds === 0 ? 0 : Math.floor(this.options.now() / 1000) + this.options.ttlSeconds),
      // One notification per conversation on the lock screen: a newer one replaces the last.
      'apns-collapse-id': createHash('sha256').update(notification.from).digest('base64url').slice(0, 32),
      'content-type': 'application/json',
    };
    if (this.options.token) headers.authorization = `bearer ${this.currentProviderToken(this.options.token)}`;
    const response = await this.http.request(new URL(`${base}/3/device/${token}`), headers, JSON.stringify(payload(target, pushType, notification)), signal);
    const reason = (parseJsonBody(response.body) as { reason?: unknown } | undefined)?.reason;
    const said = typeof reason === 'string' ? reason : '';
    const description = `APNs ${response.status}${said ? ` ${said}` : ''}`;
    if (response.status === 410 || (response.status === 400 && INVALID_TOKEN_REASONS.has(said))) return { kind: 'invalid-token', reason: description };
    if (response.status === 403 && said === 'ExpiredProviderToken') {
      this.providerToken = undefined;
      return { kind: 'retry', reason: description };
    }
    return resultOfStatus(response.status, description);
  }

  close(): void {
    this.http.close();
  }

  /**
   * The token and topic a message push goes to: the configured push type when the device has
   * the token for it (voip needs the PushKit token, alert and background the remote one), else
   * what the device's only token is for.
   */
  private choose(target: ApnsTarget): { token: string; topic: string; pushType: ApnsPushType } {
    const wantsVoip = this.options.pushType === 'voip';
    if (target.voipToken !== undefined && (wantsVoip || target.remoteToken === undefined)) {
      return { token: target.voipToken, topic: `${target.bundleId}.voip`, pushType: 'voip' };
    }
    return { token: target.remoteToken!, topic: target.bundleId, pushType: wantsVoip ? 'alert' : this.options.pushType };
  }

  private currentProviderToken(auth: ApnsTokenAuth): string {
    const now = this.options.now();
    if (!this.providerToken || now - this.providerToken.issuedAt >= PROVIDER_TOKEN_LIFETIME_MS) {
      const jwt = signJwt('ES256', { kid: auth.keyId }, { iss: auth.teamId, iat: Math.floor(now / 1000) }, auth.key);
      this.providerToken = { jwt, issuedAt: now };
    }
    return this.providerToken.jwt;
  }
}

/**
 * The JSON body. An alert shows Linphone's localised "message from" text (pn-msg-str, IM_MSG by
 * default, with the sender as its argument) and lets the app's notification service extension
 * fetch the message (mutable-content); background and voip pushes only wake the app.
 */
function payload(target: ApnsTarget, pushType: ApnsPushType, notification: PushNotification): Record<string, unknown> {
  const aps: Record<string, unknown> =
    pushType === 'alert'
      ? {
          alert: { 'loc-key': target.messageKey ?? 'IM_MSG', 'loc-args': [notification.from] },
          'mutable-content': 1,
          ...(target.messageSound !== undefined ? { sound: target.messageSound } : {}),
        }
      : pushType === 'background'
        ? { 'content-available': 1 }
        : {};
  return { aps, 'from-uri': notification.from, 'call-id': notification.callId };
}
