// The push service against local stand-ins for APNs, FCM (with Google's token endpoint) and a
// webhook: the exact requests, what each answer leads to, retries, cancel, and the kinds never
// pushed. The stand-ins are all that is not Parley's own code.
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, beforeEach, test } from 'node:test';
import { configSchema } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { createPushService, parsePushTarget, PushError, type InvalidTokenReport, type PushRequest, type PushService } from '../../src/push/index.js';
import { eventually } from '../support/eventually.js';
import { freeTcpPort } from '../support/process.js';
import { selfSignedCertificate, startHttp2StandIn, startHttpStandIn, type RecordedRequest, type StandIn } from '../support/push-providers.js';

const APNS_TOKEN = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const VOIP_TOKEN = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';
const FCM_TOKEN = 'cK1x9:APA91bH-device-token';
const ACCESS_TOKEN = 'ya29.stand-in-access-token';
const WEBHOOK_SECRET = 'Bearer webhook-secret-0123456789';
const KEY_ID = 'KEYID12345';
const TEAM_ID = 'TEAMID1234';
const START = Date.UTC(2026, 0, 1, 12, 0, 0);

const LINPHONE_IOS = `sip:alice@192.0.2.1;pn-provider=apns;pn-param=${TEAM_ID}.org.linphone.phone.remote%26voip;pn-prid=${APNS_TOKEN}:remote%26${VOIP_TOKEN}:voip;pn-msg-str=IM_MSG`;
const ANDROID = `sip:bob@192.0.2.2;pn-provider=fcm;pn-param=929129227575;pn-prid=${FCM_TOKEN}`;

let dir: string;
let standInTls: { cert: string; key: string };
let providers: StandIn;
let hook: StandIn;
let apnsPublicKey: KeyObject;
let googlePublicKey: KeyObject;
let p8: string;
let serviceAccountKey: string;
const files: Record<string, string> = {};
const logs: string[] = [];
let now = START;
let service: PushService | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'parley-push-'));
  standInTls = await selfSignedCertificate();
  providers = await startHttp2StandIn(standInTls);
  hook = await startHttpStandIn();
  const apns = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  apnsPublicKey = apns.publicKey;
  p8 = apns.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const google = generateKeyPairSync('rsa', { modulusLength: 2048 });
  googlePublicKey = google.publicKey;
  serviceAccountKey = google.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  files.ca = join(dir, 'ca.pem');
  files.p8 = join(dir, `AuthKey_${KEY_ID}.p8`);
  files.account = join(dir, 'service-account.json');
  writeFileSync(files.ca, standInTls.cert);
  writeFileSync(files.p8, p8);
  writeFileSync(
    files.account,
    JSON.stringify({
      type: 'service_account',
      project_id: 'parley-test',
      private_key_id: 'key-1',
      private_key: serviceAccountKey,
      client_email: 'push@parley-test.iam.gserviceaccount.com',
      token_uri: `${providers.url}/token`,
    }),
  );
});

after(async () => {
  service?.close();
  await providers.close();
  await hook.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  service?.close();
  service = undefined;
  providers.requests.length = 0;
  hook.requests.length = 0;
  now = START;
});

function start(push: Record<string, unknown> = {}): PushService {
  const config = configSchema.parse({
    push: {
      enabled: true,
      ca: files.ca,
      retry_min: 0.01,
      retry_max: 0.02,
      apns_url: providers.url,
      apns_sandbox_url: `${providers.url}/sandbox`,
      apns_key: files.p8,
      apns_key_id: KEY_ID,
      apns_team_id: TEAM_ID,
      fcm_url: providers.url,
      fcm_service_account: files.account,
      webhook_url: `${hook.url}/wake/$provider?token=$token&from=$from&call=$call_id`,
      webhook_authorization: WEBHOOK_SECRET,
      ...push,
    },
  });
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  service = createPushService(config, createLogger('debug', sink), () => now);
  return service;
}

let deliveries = 0;
function message(device = 'urn:uuid:device-1'): PushRequest {
  return { deliveryId: `delivery-${++deliveries}`, device, from: 'sip:bob@example.com', callId: `call-${deliveries}@example.com`, kind: 'message' };
}

function decodeJwt(jwt: string, publicKey: KeyObject, algorithm: 'ES256' | 'RS256'): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [header, claims, signature] = jwt.split('.');
  const signed = Buffer.from(`${header}.${claims}`);
  const valid = verify('sha256', signed, algorithm === 'ES256' ? { key: publicKey, dsaEncoding: 'ieee-p1363' } : publicKey, Buffer.from(signature!, 'base64url'));
  assert.ok(valid, `the ${algorithm} signature verifies with the test's public key`);
  return { header: JSON.parse(Buffer.from(header!, 'base64url').toString()), claims: JSON.parse(Buffer.from(claims!, 'base64url').toString()) };
}

const bearer = (request: RecordedRequest, scheme: string) => {
  const value = String(request.headers.authorization);
  assert.ok(value.startsWith(`${scheme} `), `authorization is "${scheme} ..."`);
  return value.slice(scheme.length + 1);
};

test('APNs: an alert to the remote token, with the topic, push type, priority, expiration and collapse ID, and an ES256 provider token', async () => {
  const push = start();
  const request = message();
  assert.deepEqual(await push.notify(parsePushTarget(LINPHONE_IOS)!, request), { status: 'sent' });
  assert.equal(providers.requests.length, 1);
  const [sent] = providers.requests;
  assert.equal(sent!.method, 'POST');
  assert.equal(sent!.path, `/3/device/${APNS_TOKEN}`);
  assert.equal(sent!.headers['apns-topic'], 'org.linphone.phone');
  assert.equal(sent!.headers['apns-push-type'], 'alert');
  assert.equal(sent!.headers['apns-priority'], '10');
  assert.equal(sent!.headers['apns-expiration'], String(START / 1000 + 3600));
  assert.match(String(sent!.headers['apns-collapse-id']), /^[A-Za-z0-9_-]{32}$/);
  assert.deepEqual(JSON.parse(sent!.body), {
    aps: { alert: { 'loc-key': 'IM_MSG', 'loc-args': ['sip:bob@example.com'] }, 'mutable-content': 1 },
    'from-uri': 'sip:bob@example.com',
    'call-id': request.callId,
  });
  const jwt = decodeJwt(bearer(sent!, 'bearer'), apnsPublicKey, 'ES256');
  assert.deepEqual(jwt.header, { alg: 'ES256', kid: KEY_ID });
  assert.deepEqual(jwt.claims, { iss: TEAM_ID, iat: START / 1000 });
  assert.equal(push.stats.sent.apns, 1);
});

test('APNs: voip to the PushKit token and topic; the provider token is kept 50 minutes, then renewed', async () => {
  const push = start({ apns_push_type: 'voip' });
  const target = parsePushTarget(LINPHONE_IOS)!;
  await push.notify(target, message());
  now += 49 * 60_000;
  await push.notify(target, message());
  now += 2 * 60_000;
  await push.notify(target, message());
  const [first, second, third] = providers.requests;
  assert.equal(first!.path, `/3/device/${VOIP_TOKEN}`);
  assert.equal(first!.headers['apns-topic'], 'org.linphone.phone.voip');
  assert.equal(first!.headers['apns-push-type'], 'voip');
  assert.deepEqual(JSON.parse(first!.body).aps, {});
  assert.equal(bearer(second!, 'bearer'), bearer(first!, 'bearer'));
  const renewed = decodeJwt(bearer(third!, 'bearer'), apnsPublicKey, 'ES256');
  assert.equal(renewed.claims.iat, START / 1000 + 51 * 60);
});

test('APNs with a client certificate: the connection presents it, and no provider token is sent', async () => {
  const client = await selfSignedCertificate();
  const certificateApns = await startHttp2StandIn(standInTls, client.cert);
  const certFile = join(dir, 'apns-cert.pem');
  const keyFile = join(dir, 'apns-cert-key.pem');
  writeFileSync(certFile, client.cert);
  writeFileSync(keyFile, client.key);
  try {
    const push = start({ apns_key: null, apns_key_id: null, apns_team_id: null, apns_cert: certFile, apns_cert_key: keyFile, apns_url: certificateApns.url });
    assert.deepEqual(await push.notify(parsePushTarget(LINPHONE_IOS)!, message()), { status: 'sent' });
    const [sent] = certificateApns.requests;
    assert.equal(sent!.path, `/3/device/${APNS_TOKEN}`);
    assert.equal(sent!.clientCertificate, new X509Certificate(client.cert).fingerprint256);
    assert.equal(sent!.headers.authorization, undefined);
  } finally {
    await certificateApns.close();
  }
});

test('APNs: a development build goes to the sandbox; a background push has priority 5', async () => {
  const push = start({ apns_push_type: 'background' });
  await push.notify(parsePushTarget(`sip:alice@192.0.2.1;pn-provider=apns.dev;pn-param=${TEAM_ID}.org.example.chat;pn-prid=${APNS_TOKEN}`)!, message());
  const [sent] = providers.requests;
  assert.equal(sent!.path, `/sandbox/3/device/${APNS_TOKEN}`);
  assert.equal(sent!.headers['apns-push-type'], 'background');
  assert.equal(sent!.headers['apns-priority'], '5');
  assert.deepEqual(JSON.parse(sent!.body).aps, { 'content-available': 1 });
});

test('APNs 410 Unregistered and 400 BadDeviceToken: the token is reported invalid and not tried again', async () => {
  const push = start();
  const reports: InvalidTokenReport[] = [];
  push.onInvalidToken((report) => reports.push(report));
  providers.answer('/3/device/', { status: 410, body: '{"reason":"Unregistered","timestamp":1700000000000}' }, { status: 400, body: '{"reason":"BadDeviceToken"}' });
  const target = parsePushTarget(LINPHONE_IOS)!;
  const first = message('urn:uuid:phone');
  assert.deepEqual(await push.notify(target, first), { status: 'invalid-token', reason: 'APNs 410 Unregistered' });
  assert.deepEqual(await push.notify(target, message('urn:uuid:phone')), { status: 'invalid-token', reason: 'APNs 400 BadDeviceToken' });
  assert.equal(providers.requests.length, 2);
  assert.deepEqual(reports[0], { deliveryId: first.deliveryId, device: 'urn:uuid:phone', target, reason: 'APNs 410 Unregistered' });
  assert.equal(reports.length, 2);
  assert.deepEqual([push.stats.invalidTokens.apns, push.stats.failed.apns, push.stats.sent.apns], [2, 2, 0]);
});

test('a provider\'s 503 is tried again after a wait, then sent', async () => {
  const push = start();
  providers.answer('/3/device/', { status: 503, body: '{"reason":"ServiceUnavailable"}' }, { status: 429, body: '{"reason":"TooManyRequests"}' });
  assert.deepEqual(await push.notify(parsePushTarget(LINPHONE_IOS)!, message()), { status: 'sent' });
  assert.equal(providers.requests.length, 3);
  assert.deepEqual([push.stats.sent.apns, push.stats.failed.apns], [1, 0]);
});

test('after its last attempt a push fails, is counted and the provider is reported failing until a push succeeds', async () => {
  const push = start({ attempts: 2 });
  providers.answer('/3/device/', { status: 500, body: '{"reason":"InternalServerError"}' }, { status: 500, body: '{"reason":"InternalServerError"}' });
  const target = parsePushTarget(LINPHONE_IOS)!;
  assert.deepEqual(await push.notify(target, message()), { status: 'failed', reason: 'APNs 500 InternalServerError' });
  assert.equal(providers.requests.length, 2);
  assert.deepEqual([...push.failingProviders()], [['apns', 'APNs 500 InternalServerError']]);
  assert.equal(push.stats.failed.apns, 1);
  assert.deepEqual(await push.notify(target, message()), { status: 'sent' });
  assert.equal(push.failingProviders().size, 0);
});

test('an unreachable provider is tried again, then the push fails naming why', async () => {
  const push = start({ attempts: 2, apns_url: `https://127.0.0.1:${await freeTcpPort()}` });
  const outcome = await push.notify(parsePushTarget(LINPHONE_IOS)!, message());
  assert.equal(outcome.status, 'failed');
  assert.match((outcome as { reason: string }).reason, /ECONNREFUSED/);
  assert.ok(logs.some((line) => line.includes('push failed, trying again') && line.includes('ECONNREFUSED')));
});

test('FCM: an OAuth2 token from a signed RS256 assertion, kept for the next push; a data-only message of high priority', async () => {
  const push = start();
  providers.answer('/token', { status: 200, body: JSON.stringify({ access_token: ACCESS_TOKEN, expires_in: 3599, token_type: 'Bearer' }) });
  const target = parsePushTarget(ANDROID)!;
  const request = message();
  assert.deepEqual(await push.notify(target, request), { status: 'sent' });
  assert.deepEqual(await push.notify(target, message()), { status: 'sent' });
  const [exchange, send, again] = providers.requests;
  assert.equal(providers.requests.length, 3, 'one token exchange for two pushes');
  assert.equal(exchange!.path, '/token');
  assert.equal(exchange!.headers['content-type'], 'application/x-www-form-urlencoded');
  const form = new URLSearchParams(exchange!.body);
  assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:jwt-bearer');
  const assertion = decodeJwt(form.get('assertion')!, googlePublicKey, 'RS256');
  assert.deepEqual(assertion.header, { alg: 'RS256', typ: 'JWT', kid: 'key-1' });
  assert.deepEqual(assertion.claims, {
    iss: 'push@parley-test.iam.gserviceaccount.com',
    scope: 'https://www.googleapis.com/auth/firebase.messaging',
    aud: `${providers.url}/token`,
    iat: START / 1000,
    exp: START / 1000 + 3600,
  });
  assert.equal(send!.path, '/v1/projects/parley-test/messages:send');
  assert.equal(bearer(send!, 'Bearer'), ACCESS_TOKEN);
  assert.equal(send!.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(send!.body), {
    message: { token: FCM_TOKEN, data: { 'from-uri': 'sip:bob@example.com', 'call-id': request.callId }, android: { priority: 'high', ttl: '3600s' } },
  });
  assert.equal(bearer(again!, 'Bearer'), ACCESS_TOKEN);
  assert.equal(push.stats.sent.fcm, 2);
});

test('FCM: a 401 gets a new access token and the push is tried again; UNREGISTERED and INVALID_ARGUMENT are invalid tokens', async () => {
  const push = start();
  const token = (value: string) => ({ status: 200, body: JSON.stringify({ access_token: value, expires_in: 3599 }) });
  providers.answer('/token', token('ya29.first'), token('ya29.second'));
  providers.answer(
    '/v1/',
    { status: 401, body: JSON.stringify({ error: { code: 401, status: 'UNAUTHENTICATED' } }) },
    { status: 200, body: '{"name":"projects/parley-test/messages/1"}' },
    { status: 404, body: JSON.stringify({ error: { code: 404, status: 'NOT_FOUND', details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }] } }) },
    { status: 400, body: JSON.stringify({ error: { code: 400, status: 'INVALID_ARGUMENT', message: 'The registration token is not a valid FCM registration token' } }) },
  );
  const target = parsePushTarget(ANDROID)!;
  assert.deepEqual(await push.notify(target, message()), { status: 'sent' });
  const sends = providers.requests.filter((request) => request.path.startsWith('/v1/'));
  assert.deepEqual(sends.map((request) => bearer(request, 'Bearer')), ['ya29.first', 'ya29.second']);
  assert.deepEqual(await push.notify(target, message()), { status: 'invalid-token', reason: 'FCM 404 NOT_FOUND UNREGISTERED' });
  assert.deepEqual(await push.notify(target, message()), { status: 'invalid-token', reason: 'FCM 400 INVALID_ARGUMENT' });
  assert.deepEqual([push.stats.sent.fcm, push.stats.invalidTokens.fcm], [1, 2]);
});

test('webhook: a POST to the URL template with the token, sender and Call-ID, and the configured Authorization', async () => {
  const push = start();
  const request = message();
  const target = parsePushTarget('sip:carol@192.0.2.3;pn-provider=acme;pn-prid=dev%2F42;pn-param=app1')!;
  assert.deepEqual(await push.notify(target, request), { status: 'sent' });
  const [sent] = hook.requests;
  assert.equal(sent!.method, 'POST');
  assert.equal(sent!.path, `/wake/acme?token=dev%2F42&from=sip%3Abob%40example.com&call=${encodeURIComponent(request.callId)}`);
  assert.equal(sent!.headers.authorization, WEBHOOK_SECRET);
  assert.deepEqual(JSON.parse(sent!.body), { provider: 'acme', token: 'dev/42', param: 'app1', from: 'sip:bob@example.com', call_id: request.callId });
  hook.answer('/wake/', { status: 410 });
  assert.deepEqual(await push.notify(target, message()), { status: 'invalid-token', reason: 'webhook 410' });
  assert.equal(push.stats.sent.webhook, 1);
});

test('cancel: a push on its way is aborted, and one waiting to be tried again is not sent', async () => {
  const push = start({ retry_min: 60, retry_max: 60 });
  const target = parsePushTarget(LINPHONE_IOS)!;
  providers.answer('/3/device/', 'hold', { status: 503, body: '{"reason":"ServiceUnavailable"}' });
  const inFlight = message();
  const arrived = providers.nextRequest();
  const closed = providers.heldClosed();
  const outcome = push.notify(target, inFlight);
  await arrived;
  assert.equal(push.cancel(inFlight.deliveryId), 1);
  assert.deepEqual(await outcome, { status: 'cancelled' });
  await closed;

  const waiting = message();
  const retrying = push.notify(target, waiting);
  await eventually(() => logs.some((line) => line.includes(waiting.deliveryId) && line.includes('push failed, trying again')), 'the push waits to be tried again');
  assert.equal(push.pending, 1);
  assert.equal(push.cancel(waiting.deliveryId, 'urn:uuid:device-1'), 1);
  assert.deepEqual(await retrying, { status: 'cancelled' });
  assert.equal(push.pending, 0);
  assert.equal(providers.requests.length, 2);
  assert.deepEqual([push.stats.sent.apns, push.stats.failed.apns], [0, 0]);
});

test('one push per delivery and device: a second notify for the same pair sends nothing', async () => {
  const push = start();
  const target = parsePushTarget(LINPHONE_IOS)!;
  const request = message();
  assert.deepEqual(await push.notify(target, request), { status: 'sent' });
  assert.deepEqual(await push.notify(target, request), { status: 'duplicate' });
  assert.deepEqual(await push.notify(target, { ...request, device: 'urn:uuid:device-2' }), { status: 'sent' });
  assert.equal(providers.requests.length, 2);
});

test('IMDNs, is-composing notifications and own-message copies are never pushed', () => {
  const push = start();
  for (const kind of ['imdn', 'is-composing', 'copy'] as const) {
    assert.throws(() => push.notify(parsePushTarget(LINPHONE_IOS)!, { ...message(), kind }), (error) => error instanceof PushError && error.message === `${kind} deliveries are never pushed`);
  }
  assert.equal(push.pending, 0);
  assert.equal(providers.requests.length + hook.requests.length, 0);
});

test('a provider that is not configured: the push fails at once, saying so', async () => {
  const push = start({ fcm_service_account: null });
  assert.deepEqual(await push.notify(parsePushTarget(ANDROID)!, message()), { status: 'failed', reason: 'fcm is not configured' });
  assert.equal(providers.requests.length, 0);
});

test('the push section is checked: a provider is needed, and a key needs its IDs', () => {
  const issues = (push: Record<string, unknown>) => {
    const result = configSchema.safeParse({ push });
    return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  };
  assert.deepEqual(issues({ enabled: true }), ['push.enabled: needs a provider: apns_key or apns_cert (APNs), fcm_service_account (FCM) or webhook_url']);
  assert.deepEqual(issues({ enabled: true, apns_key: files.p8 }), ['push.apns_key_id: required with apns_key', 'push.apns_team_id: required with apns_key']);
  assert.deepEqual(issues({ apns_url: 'http://api.push.apple.com' }), ['push.apns_url: expected a URL starting with https://']);
  assert.deepEqual(issues({ webhook_url: 'ftp://hook/$token' }), ['push.webhook_url: expected a URL starting with https:// or http://']);
  assert.throws(() => createPushService(configSchema.parse({ push: { enabled: true, apns_key: files.account, apns_key_id: KEY_ID, apns_team_id: TEAM_ID } }), createLogger('silent')), /push.apns_key \(.*service-account.json\) is not a PEM private key/);
});

test('no key, token or credential ever reaches the logs', () => {
  const text = logs.join('');
  assert.ok(text.includes('push sent'), 'the tests above logged their pushes');
  const secrets = [APNS_TOKEN, VOIP_TOKEN, FCM_TOKEN, ACCESS_TOKEN, 'ya29.first', 'ya29.second', WEBHOOK_SECRET, 'webhook-secret', 'dev/42', 'dev%2F42', 'eyJ'];
  const keyLines = [...p8.split('\n'), ...serviceAccountKey.split('\n')].filter((line) => line.length > 20 && !line.startsWith('-----'));
  for (const secret of [...secrets, ...keyLines]) assert.ok(!text.includes(secret), `the logs hold ${secret.slice(0, 12)}...`);
});
