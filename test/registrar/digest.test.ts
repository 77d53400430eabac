import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DigestAuthenticator, parseDigest, computeHa1, type DigestAlgorithm } from '../../src/registrar/index.js';

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
    assert.equal(auth.verify('REGISTER', answer(algorithm, nonce, 'secret'), stored).ok, false, 'same nc again is a replay');
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
