import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { AuthPolicy, DigestAuthenticator, parseDigest, computeHa1, type DigestAlgorithm } from '../../src/registrar/index.js';
import { createResponse, parseMessage, type IncomingRequest, type SipMessage } from '../../src/sip/index.js';
import type { UserStore } from '../../src/store/types.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function answer(algorithm: DigestAlgorithm, nonce: string, password: string, nc = '00000001') {
  const h = algorithm === 'MD5' ? md5 : sha256;
  const ha1 = h(`alice:example.com:${password}`);
  const ha2 = h('REGISTER:sip:example.com');
  const response = h(`${ha1}:${nonce}:${nc}:0a4f113b:auth:${ha2}`);
  return parseDigest(
    `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", response="${response}", algorithm=${algorithm}, qop=auth, nc=${nc}, cnonce="0a4f113b"`,
  )!;
}

test('HA1 values are the RFC 7616 hashes of user:realm:password', () => {
  const pair = computeHa1('Mufasa', 'http-auth@example.org', 'Circle of Life');
  assert.equal(pair.ha1Md5, md5('Mufasa:http-auth@example.org:Circle of Life'));
  assert.equal(pair.ha1Sha256, '7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232');
});

test('challenges offer SHA-256 before MD5 with qop=auth', () => {
  const auth = new DigestAuthenticator({ realm: 'example.com', algorithms: ['SHA-256', 'MD5'], nonceExpires: 300 });
  const [first, second] = auth.challenges();
  assert.match(first!, /^Digest realm="example.com", nonce="[^"]+", algorithm=SHA-256, qop="auth"$/);
  assert.match(second!, /algorithm=MD5/);
});

for (const algorithm of ['MD5', 'SHA-256'] as const) {
  test(`${algorithm}: right password passes, wrong one fails, replayed nc fails`, () => {
    const auth = new DigestAuthenticator({ realm: 'example.com', algorithms: ['SHA-256', 'MD5'], nonceExpires: 300 });
    const stored = computeHa1('alice', 'example.com', 'secret');
    const nonce = auth.createNonce();
    assert.deepEqual(auth.verify('REGISTER', answer(algorithm, nonce, 'secret'), stored), { ok: true, username: 'alice' });
    assert.deepEqual(auth.verify('REGISTER', answer(algorithm, nonce, 'secret'), stored), { ok: false, stale: true, reason: 'nonce count reused' }, 'same nc again is a replay');
    assert.equal(auth.verify('REGISTER', answer(algorithm, nonce, 'secret', '00000002'), stored).ok, true);
    const wrong = auth.verify('REGISTER', answer(algorithm, auth.createNonce(), 'guess'), stored);
    assert.deepEqual(wrong, { ok: false, stale: false, reason: 'wrong password' });
  });
}

test('an expired nonce with the right password is stale; a forged nonce is refused', () => {
  let now = 1_000_000;
  const auth = new DigestAuthenticator({ realm: 'example.com', algorithms: ['MD5'], nonceExpires: 60, now: () => now });
  const stored = computeHa1('alice', 'example.com', 'secret');
  const nonce = auth.createNonce();
  now += 61_000;
  assert.deepEqual(auth.verify('REGISTER', answer('MD5', nonce, 'secret'), stored), { ok: false, stale: true, reason: 'nonce expired' });
  const forged = auth.verify('REGISTER', answer('MD5', Buffer.alloc(28, 1).toString('base64url'), 'secret'), stored);
  assert.equal(forged.ok, false);
});

test('parseDigest reads quoted and bare parameters and refuses other schemes', () => {
  const d = parseDigest('Digest username="bob", realm="r", nonce="n", uri="sip:r", response="abc", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="x, y"');
  assert.equal(d?.cnonce, 'x, y');
  assert.equal(d?.algorithm, 'SHA-256');
  assert.equal(parseDigest('Basic Zm9vOmJhcg=='), undefined);
  assert.equal(parseDigest('Digest realm="r"'), undefined);
});

/** A Digest answer without qop, nc and cnonce, as RFC 2069 computed it: right password, no nonce count. */
function rfc2069Answer(algorithm: DigestAlgorithm, nonce: string, password: string) {
  const h = algorithm === 'MD5' ? md5 : sha256;
  const response = h(`${h(`alice:example.com:${password}`)}:${nonce}:${h('REGISTER:sip:example.com')}`);
  return parseDigest(`Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", response="${response}", algorithm=${algorithm}`)!;
}

test('an RFC 2069 answer (no qop, nc or cnonce) is refused even with the right password', () => {
  const auth = new DigestAuthenticator({ realm: 'example.com', algorithms: ['SHA-256', 'MD5'], nonceExpires: 300 });
  const stored = computeHa1('alice', 'example.com', 'secret');
  for (const algorithm of ['SHA-256', 'MD5'] as const) {
    const refused = auth.verify('REGISTER', rfc2069Answer(algorithm, auth.createNonce(), 'secret'), stored);
    assert.deepEqual(refused, { ok: false, stale: false, reason: 'qop=auth with nc and cnonce required' });
  }
  const garbledCount = { ...answer('MD5', auth.createNonce(), 'secret'), nc: 'zz' };
  assert.equal(auth.verify('REGISTER', garbledCount, stored).ok, false);
});

test('the nonce-count table never holds more than its cap, and a forgotten nonce cannot be replayed', () => {
  let now = 1_000_000;
  const auth = new DigestAuthenticator({ realm: 'example.com', algorithms: ['MD5'], nonceExpires: 300, maxTrackedNonces: 3, now: () => now });
  const stored = computeHa1('alice', 'example.com', 'secret');
  const nonces = Array.from({ length: 10 }, () => {
    now += 10;
    return auth.createNonce();
  });
  for (const nonce of nonces) {
    assert.equal(auth.verify('REGISTER', answer('MD5', nonce, 'secret'), stored).ok, true);
    assert.ok(auth.trackedNonces <= 3, `${auth.trackedNonces} nonces tracked`);
  }
  assert.equal(auth.trackedNonces, 3);
  // The first nonce was dropped from the table: its captured answer is still refused, as stale.
  assert.deepEqual(auth.verify('REGISTER', answer('MD5', nonces[0]!, 'secret'), stored), { ok: false, stale: true, reason: 'nonce count reused' });
  // A nonce still tracked goes on counting.
  assert.equal(auth.verify('REGISTER', answer('MD5', nonces[9]!, 'secret', '00000002'), stored).ok, true);
});

test('expired nonces leave the nonce-count table', () => {
  let now = 1_000_000;
  const auth = new DigestAuthenticator({ realm: 'example.com', algorithms: ['MD5'], nonceExpires: 60, now: () => now });
  const stored = computeHa1('alice', 'example.com', 'secret');
  for (let i = 0; i < 5; i++) assert.equal(auth.verify('REGISTER', answer('MD5', auth.createNonce(), 'secret'), stored).ok, true);
  assert.equal(auth.trackedNonces, 5);
  now += 61_000;
  assert.equal(auth.verify('REGISTER', answer('MD5', auth.createNonce(), 'secret'), stored).ok, true);
  assert.equal(auth.trackedNonces, 1);
});

describe('AuthPolicy with algorithms [SHA-256, MD5]', () => {
  const users: UserStore = {
    get: async (username: string, domain: string) => (username === 'alice' && domain === 'example.com' ? { username, domain, ...computeHa1('alice', 'example.com', 'secret') } : undefined),
  } as unknown as UserStore;
  const policy = new AuthPolicy(users, { policy: 'required', realmFor: () => 'example.com', algorithms: ['SHA-256', 'MD5'], nonceExpires: 300, checkUri: true });

  /** A REGISTER of alice@example.com carrying `authorization`; resolves with whether it passed and what was answered. */
  async function register(authorization?: string): Promise<{ passed: boolean; response?: SipMessage }> {
    const message = parseMessage(Buffer.from([
      'REGISTER sip:example.com SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-digest', 'From: <sip:alice@example.com>;tag=a',
      'To: <sip:alice@example.com>', 'Call-ID: digest-1', 'CSeq: 1 REGISTER', ...(authorization ? [`Authorization: ${authorization}`] : []),
      'Content-Length: 0', '', '',
    ].join('\r\n')));
    let response: SipMessage | undefined;
    const request: IncomingRequest = {
      message,
      source: { proto: 'udp', host: '127.0.0.1', port: 5070 },
      get replied() {
        return response !== undefined;
      },
      reply(status, reason, options) {
        response = createResponse(message, status, reason);
        if (options?.headers) response.headers.push(...options.headers);
      },
      respond(r) {
        response = r;
      },
    };
    const passed = await policy.verify(request, 'alice', 'example.com');
    return { passed, response };
  }

  const nonceOf = (challenge: string) => /nonce="([^"]+)"/.exec(challenge)![1]!;
  const authorization = (algorithm: DigestAlgorithm, nonce: string, nc: string) => {
    const h = algorithm === 'MD5' ? md5 : sha256;
    const response = h(`${h('alice:example.com:secret')}:${nonce}:${nc}:0a4f113b:auth:${h('REGISTER:sip:example.com')}`);
    return `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", response="${response}", algorithm=${algorithm}, qop=auth, nc=${nc}, cnonce="0a4f113b"`;
  };

  for (const algorithm of ['SHA-256', 'MD5'] as const) {
    test(`${algorithm}: a reused nonce count is challenged again with stale=true for every algorithm`, async () => {
      const first = await register();
      assert.equal(first.response?.status, 401);
      const nonce = nonceOf(first.response!.getAll('www-authenticate')[0]!);
      assert.equal((await register(authorization(algorithm, nonce, '00000001'))).passed, true);
      const reused = await register(authorization(algorithm, nonce, '00000001'));
      assert.equal(reused.passed, false);
      assert.equal(reused.response?.status, 401);
      const challenges = reused.response!.getAll('www-authenticate');
      assert.deepEqual(challenges.map((c) => /algorithm=([\w-]+)/.exec(c)![1]), ['SHA-256', 'MD5']);
      for (const challenge of challenges) assert.match(challenge, /, stale=true$/);
      assert.notEqual(nonceOf(challenges[0]!), nonce, 'a fresh nonce');
      // The UA answers the new challenge with the same password, without asking its user again.
      assert.equal((await register(authorization(algorithm, nonceOf(challenges[0]!), '00000001'))).passed, true);
    });
  }

  test('an RFC 2069 answer gets 401 with a fresh challenge that is not stale', async () => {
    const nonce = nonceOf((await register()).response!.getAll('www-authenticate')[0]!);
    const h = sha256;
    const response = h(`${h('alice:example.com:secret')}:${nonce}:${h('REGISTER:sip:example.com')}`);
    const refused = await register(`Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", response="${response}", algorithm=SHA-256`);
    assert.equal(refused.passed, false);
    assert.equal(refused.response?.status, 401);
    const challenges = refused.response!.getAll('www-authenticate');
    assert.equal(challenges.length, 2);
    for (const challenge of challenges) {
      assert.doesNotMatch(challenge, /stale/);
      assert.match(challenge, /qop="auth"/);
      assert.notEqual(nonceOf(challenge), nonce);
    }
  });
});
