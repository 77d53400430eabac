// Firebase Cloud Messaging, HTTP v1 API: POST /v1/projects/<project>/messages:send with an OAuth2
// access token, which a service account gets by signing a JWT (RS256) and exchanging it at the
// account's token URI (RFC 7523); the token is kept until shortly before it expires.
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { Http2Client } from './http.js';
import { loadSigningKey, signJwt } from './jwt.js';
import type { FcmTarget } from './params.js';
import { parseJsonBody, resultOfStatus, type PushNotification, type PushProvider, type SendResult } from './provider.js';

const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
/** An access token is renewed this long before it expires, so none expires on its way. */
const ACCESS_TOKEN_MARGIN_MS = 60_000;

export interface ServiceAccount {
  projectId: string;
  clientEmail: string;
  privateKey: KeyObject;
  privateKeyId?: string;
  tokenUri: string;
}

/** Reads a service-account JSON file as the Firebase console downloads it; errors name the file and field, never the key. */
export function loadServiceAccount(path: string): ServiceAccount {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`push.fcm_service_account: cannot read ${path} as JSON (${(error as Error).message.split('\n')[0]})`);
  }
  const field = (name: string): string => {
    const value = json[name];
    if (typeof value !== 'string' || value === '') throw new Error(`push.fcm_service_account: ${path} has no "${name}"`);
    return value;
  };
  if (json.type !== 'service_account') throw new Error(`push.fcm_service_account: ${path} is not a service account key (its "type" is not service_account)`);
  const tokenUri = field('token_uri');
  if (!/^https:\/\//.test(tokenUri)) throw new Error(`push.fcm_service_account: token_uri of ${path} is not an https URL`);
  return {
    projectId: field('project_id'),
    clientEmail: field('client_email'),
    privateKey: loadSigningKey(field('private_key'), 'RS256', `private_key of ${path}`),
    privateKeyId: typeof json.private_key_id === 'string' ? json.private_key_id : undefined,
    tokenUri,
  };
}

export interface FcmOptions {
  url: string;
  account: ServiceAccount;
  /** Seconds FCM keeps trying to reach a device that is off. */
  ttlSeconds: number;
  now: () => number;
}

interface FcmError {
  error?: { status?: string; message?: string; details?: Array<{ errorCode?: string }> };
}

export class FcmProvider implements PushProvider<FcmTarget> {
  private accessToken: { token: string; expiresAt: number } | undefined;
  /** The exchange under way, shared by the pushes that need a token meanwhile. */
  private fetching: Promise<string> | undefined;

  constructor(
    private readonly options: FcmOptions,
    private readonly http: Http2Client,
  ) {}

  async send(target: FcmTarget, notification: PushNotification, signal: AbortSignal): Promise<SendResult> {
    const accessToken = await this.currentAccessToken();
    const url = new URL(`${this.options.url.replace(/\/$/, '')}/v1/projects/${encodeURIComponent(this.options.account.projectId)}/messages:send`);
    // Data only: the app decides what to show once it has fetched the message; high priority
    // wakes a dozing Android device.
    const body = {
      message: {
        token: target.token,
        data: { 'from-uri': notification.from, 'call-id': notification.callId },
        android: { priority: 'high', ttl: `${this.options.ttlSeconds}s` },
      },
    };
    const response = await this.http.request(url, { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' }, JSON.stringify(body), signal);
    const error = (parseJsonBody(response.body) as FcmError | undefined)?.error;
    const codes = [error?.status, ...(error?.details ?? []).map((detail) => detail.errorCode)].filter((code): code is string => typeof code === 'string');
    const description = `FCM ${response.status}${codes.length ? ` ${[...new Set(codes)].join(' ')}` : ''}`;
    if (response.status === 404 || codes.includes('UNREGISTERED') || codes.includes('INVALID_ARGUMENT')) return { kind: 'invalid-token', reason: description };
    if (response.status === 401) {
      this.accessToken = undefined;
      return { kind: 'retry', reason: description };
    }
    return resultOfStatus(response.status, description);
  }

  close(): void {
    this.http.close();
  }

  private currentAccessToken(): Promise<string> {
    if (this.accessToken && this.options.now() < this.accessToken.expiresAt - ACCESS_TOKEN_MARGIN_MS) return Promise.resolve(this.accessToken.token);
    // Not cancelled with the push that started it: the others wait for it too.
    this.fetching ??= this.exchange().finally(() => (this.fetching = undefined));
    return this.fetching;
  }

  private async exchange(): Promise<string> {
    const { account } = this.options;
    const issuedAt = Math.floor(this.options.now() / 1000);
    const assertion = signJwt(
      'RS256',
      { typ: 'JWT', ...(account.privateKeyId ? { kid: account.privateKeyId } : {}) },
      { iss: account.clientEmail, scope: FCM_SCOPE, aud: account.tokenUri, iat: issuedAt, exp: issuedAt + 3600 },
      account.privateKey,
    );
    const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString();
    const response = await this.http.request(new URL(account.tokenUri), { 'content-type': 'application/x-www-form-urlencoded' }, form);
    const answer = parseJsonBody(response.body) as { access_token?: unknown; expires_in?: unknown; error?: unknown } | undefined;
    if (response.status !== 200 || typeof answer?.access_token !== 'string') {
      throw new Error(`the OAuth2 token endpoint answered ${response.status}${typeof answer?.error === 'string' ? ` ${answer.error}` : ''}`);
    }
    const lifetime = typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : 3600;
    this.accessToken = { token: answer.access_token, expiresAt: this.options.now() + lifetime * 1000 };
    return answer.access_token;
  }
}
