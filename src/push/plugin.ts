// Push notifications as a plugin: PUSH, the service through which the delivery of messages to
// devices wakes a device that has a message waiting and no live flow. It routes nothing.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { serviceKey, type Metric, type ParleyPlugin } from '../plugin/index.js';
import { ApnsProvider } from './apns.js';
import { FcmProvider, loadServiceAccount } from './fcm.js';
import { Http2Client, type TlsOptions } from './http.js';
import { loadSigningKey } from './jwt.js';
import type { ProviderName } from './params.js';
import { PushService } from './service.js';
import { WebhookProvider } from './webhook.js';

export const PUSH = serviceKey<PushService>('push');

/** The providers the push section configures; file errors name the option, never the secret. */
export function createPushService(config: Config, log: Logger, now: () => number = Date.now): PushService {
  const push = config.push;
  const timeoutMs = push.timeout * 1000;
  // The operator's CAs add to Node's: a webhook may be a public server as well as a private one.
  const tls: TlsOptions = push.ca !== null ? { ca: [...rootCertificates, readFileSync(push.ca, 'utf8')] } : {};
  const providers: ConstructorParameters<typeof PushService>[0] = {};
  if (push.apns_key !== null || push.apns_cert !== null) {
    const token =
      push.apns_key !== null
        ? { key: loadSigningKey(readFileSync(push.apns_key, 'utf8'), 'ES256', `push.apns_key (${push.apns_key})`), keyId: push.apns_key_id!, teamId: push.apns_team_id! }
        : undefined;
    const certificate = push.apns_cert !== null ? { cert: readFileSync(push.apns_cert, 'utf8'), key: readFileSync(push.apns_cert_key!, 'utf8') } : {};
    providers.apns = new ApnsProvider(
      { url: push.apns_url, sandboxUrl: push.apns_sandbox_url, token, pushType: push.apns_push_type, ttlSeconds: push.ttl, now },
      new Http2Client({ ...tls, ...certificate }, timeoutMs),
    );
  }
  if (push.fcm_service_account !== null) {
    providers.fcm = new FcmProvider({ url: push.fcm_url, account: loadServiceAccount(push.fcm_service_account), ttlSeconds: push.ttl, now }, new Http2Client(tls, timeoutMs));
  }
  if (push.webhook_url !== null) {
    providers.webhook = new WebhookProvider({ urlTemplate: push.webhook_url, authorization: push.webhook_authorization ?? undefined, tls, timeoutMs });
  }
  return new PushService(providers, { retryMinMs: push.retry_min * 1000, retryMaxMs: push.retry_max * 1000, attempts: push.attempts }, log);
}

const byProvider = (counts: Record<ProviderName, number>) => () =>
  (Object.entries(counts) as Array<[ProviderName, number]>).map(([provider, value]) => ({ labels: { provider }, value }));

export function pushPlugin(): ParleyPlugin {
  let service: PushService | undefined;
  const started = (): PushService => service!;
  return {
    name: 'push',
    section: { key: 'push', enabled: (config) => config.push.enabled, disabled: 'push notifications are disabled' },
    provides: [PUSH],
    start(context) {
      service = createPushService(context.config, context.log);
      context.log.info({ providers: service.configured }, 'push notifications enabled');
      context.provide(PUSH, service);
    },
    stop: () => service?.close(),
    metrics: (): Metric[] => [
      { kind: 'counter', name: 'parley_push_sent_total', help: 'Push notifications a provider accepted.', labelNames: ['provider'], read: byProvider(started().stats.sent) },
      { kind: 'counter', name: 'parley_push_failed_total', help: 'Push notifications that failed for good (invalid tokens included).', labelNames: ['provider'], read: byProvider(started().stats.failed) },
      { kind: 'counter', name: 'parley_push_invalid_tokens_total', help: 'Push notifications refused as the device token is no longer valid.', labelNames: ['provider'], read: byProvider(started().stats.invalidTokens) },
      { kind: 'gauge', name: 'parley_push_pending', help: 'Push notifications being sent or waiting to be tried again.', read: () => started().pending },
    ],
    health() {
      const failing = [...started().failingProviders()].map(([provider, reason]) => `${provider}: ${reason}`);
      return failing.length ? { status: 'degraded', reason: `last push failed (${failing.join('; ')})` } : { status: 'ok' };
    },
    status: () => ({ push: { providers: started().configured, pending: started().pending, ...started().stats } }),
  };
}
