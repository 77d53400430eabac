// The push parameters of a contact as RFC 8599 writes them and as Linphone sends them, and the
// URI forwarded without them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePushTarget, PushParamsError, stripContactPushParams, stripPushParams } from '../../src/push/index.js';

const APNS_TOKEN = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const VOIP_TOKEN = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';
const FCM_TOKEN = 'cK1x9:APA91bH-some_token-value';

test('a contact without push parameters has no push target', () => {
  assert.equal(parsePushTarget('sip:alice@192.0.2.1:5060;transport=tcp'), undefined);
});

test('RFC 8599 APNs: pn-param is <team>.<bundle>, the token is for remote notifications', () => {
  assert.deepEqual(parsePushTarget(`sip:alice@192.0.2.1;pn-provider=apns;pn-param=ABCD1234.org.example.chat;pn-prid=${APNS_TOKEN}`), {
    provider: 'apns',
    sandbox: false,
    teamId: 'ABCD1234',
    bundleId: 'org.example.chat',
    remoteToken: APNS_TOKEN,
  });
});

test('RFC 8599 APNs: a topic ending in .voip is the PushKit topic, apns.dev the sandbox', () => {
  const target = parsePushTarget(`sip:alice@192.0.2.1;pn-provider=apns.dev;pn-param=ABCD1234.org.example.chat.voip;pn-prid=${VOIP_TOKEN}`);
  assert.deepEqual(target, { provider: 'apns', sandbox: true, teamId: 'ABCD1234', bundleId: 'org.example.chat', voipToken: VOIP_TOKEN });
});

test('Linphone iOS: two tokens, remote and voip, with pn-msg-str and pn-msg-snd', () => {
  const contact = `sip:alice@192.0.2.1;pn-provider=apns;pn-param=ABCD1234.org.linphone.phone.remote%26voip;pn-prid=${APNS_TOKEN}:remote%26${VOIP_TOKEN}:voip;pn-msg-str=IM_MSG;pn-msg-snd=msg.caf;pn-timeout=0;pn-silent=1`;
  assert.deepEqual(parsePushTarget(contact), {
    provider: 'apns',
    sandbox: false,
    teamId: 'ABCD1234',
    bundleId: 'org.linphone.phone',
    remoteToken: APNS_TOKEN,
    voipToken: VOIP_TOKEN,
    messageKey: 'IM_MSG',
    messageSound: 'msg.caf',
  });
});

test('RFC 8599 FCM: pn-param is the project, the token may hold a colon', () => {
  assert.deepEqual(parsePushTarget(`sip:bob@192.0.2.2;pn-provider=fcm;pn-param=929129227575;pn-prid=${FCM_TOKEN}`), { provider: 'fcm', token: FCM_TOKEN, project: '929129227575' });
});

test('another pn-provider is the webhook\'s', () => {
  assert.deepEqual(parsePushTarget('sip:carol@192.0.2.3;pn-provider=acme;pn-prid=dev42;pn-param=app1'), { provider: 'other', name: 'acme', token: 'dev42', param: 'app1' });
});

test('Linphone\'s legacy parameters: pn-type, app-id, pn-tok', () => {
  assert.deepEqual(parsePushTarget(`sip:alice@192.0.2.1;pn-type=apple;app-id=org.linphone.phone.dev;pn-tok=${APNS_TOKEN}`), {
    provider: 'apns',
    sandbox: true,
    teamId: '',
    bundleId: 'org.linphone.phone',
    remoteToken: APNS_TOKEN,
  });
  assert.deepEqual(parsePushTarget(`sip:bob@192.0.2.2;pn-type=firebase;app-id=929129227575;pn-tok=${FCM_TOKEN}`), { provider: 'fcm', token: FCM_TOKEN, project: '929129227575' });
});

test('incomplete or malformed push parameters are refused, saying what is wrong', () => {
  const refused = (contact: string, message: RegExp) => assert.throws(() => parsePushTarget(contact), (error) => error instanceof PushParamsError && message.test(error.message));
  refused('sip:a@h;pn-provider=apns;pn-param=ABCD1234.org.example', /pn-prid is missing \(required with pn-provider=apns\)/);
  refused(`sip:a@h;pn-provider=apns;pn-prid=${APNS_TOKEN}`, /pn-param is missing/);
  refused(`sip:a@h;pn-provider=fcm;pn-prid=${FCM_TOKEN}`, /pn-param is missing/);
  refused(`sip:a@h;pn-provider=apns;pn-param=ABCD1234;pn-prid=${APNS_TOKEN}`, /is not <team-id>.<bundle-id>/);
  refused(`sip:a@h;pn-provider=apns;pn-param=ABCD1234.org.example.remote%26voip;pn-prid=${APNS_TOKEN}`, /names 2 service\(s\) \(remote, voip\) but pn-prid holds 1 token/);
  refused(`sip:a@h;pn-provider=apns;pn-param=ABCD1234.org.example;pn-prid=${APNS_TOKEN}:voip`, /has a voip token but pn-param names only remote/);
  refused('sip:a@h;pn-provider=apns;pn-param=ABCD1234.org.example;pn-prid=not-hex', /not hexadecimal/);
  refused(`sip:a@h;pn-tok=${APNS_TOKEN};pn-type=apple`, /app-id is missing/);
});

test('stripPushParams removes every pn-* parameter (and Linphone\'s app-id) and keeps the others', () => {
  assert.equal(
    stripPushParams(`sip:alice@192.0.2.1:5060;transport=tcp;pn-provider=apns;pn-param=ABCD1234.org.example;pn-prid=${APNS_TOKEN};ob`),
    'sip:alice@192.0.2.1:5060;transport=tcp;ob',
  );
  assert.equal(stripPushParams(`sip:alice@192.0.2.1;pn-type=apple;app-id=org.linphone.phone;pn-tok=${APNS_TOKEN}`), 'sip:alice@192.0.2.1');
  // Without push parameters the URI is forwarded as it was written, app-id of another meaning included.
  assert.equal(stripPushParams('sip:Alice@192.0.2.1;Transport=TCP;app-id=x'), 'sip:Alice@192.0.2.1;Transport=TCP;app-id=x');
});

test('stripContactPushParams: a Contact header value keeps its display name and header parameters', () => {
  assert.equal(
    stripContactPushParams(`"Alice" <sip:alice@192.0.2.1;transport=tcp;pn-provider=fcm;pn-param=929129227575;pn-prid=${FCM_TOKEN}>;+sip.instance="<urn:uuid:1>";expires=3600`),
    '"Alice" <sip:alice@192.0.2.1;transport=tcp>;+sip.instance="<urn:uuid:1>";expires=3600',
  );
  // In an addr-spec the parameters after the URI are the header's (RFC 3261 §20.10).
  assert.equal(stripContactPushParams(`sip:alice@192.0.2.1;pn-provider=fcm;pn-prid=${FCM_TOKEN};pn-param=1;expires=60`), '<sip:alice@192.0.2.1>;expires=60');
  assert.equal(stripContactPushParams('<sip:alice@192.0.2.1>;expires=60'), '<sip:alice@192.0.2.1>;expires=60');
});
