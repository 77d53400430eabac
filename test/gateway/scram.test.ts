// The salted password of the XMPP sessions' SCRAM-SHA-1 logins, computed by node:crypto instead of
// the sasl-scram-sha-1 package's WebCrypto loop: the same bytes (RFC 5802's own example included).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { installFastScram } from '../../src/gateway/scram.js';

type Hi = (text: string, salt: Uint8Array, iterations: number) => Promise<Uint8Array>;
const bitops = createRequire(import.meta.url)('sasl-scram-sha-1/lib/bitops') as { Hi: Hi };

test('Hi() gives what the package computed, and RFC 5802\'s example proof', async () => {
  const original = bitops.Hi;
  const salt = Buffer.from('QSXCR+Q6sek8bf92', 'base64');
  const expected = Buffer.from(await original('pencil', salt, 4096));
  installFastScram();
  assert.notEqual(bitops.Hi, original);
  const fast = Buffer.from(await bitops.Hi('pencil', salt, 4096));
  assert.deepEqual(fast, expected);
  // RFC 5802 §5: ClientProof of the example exchange, from the salted password.
  const { createHash, createHmac } = await import('node:crypto');
  const clientKey = createHmac('sha1', fast).update('Client Key').digest();
  const storedKey = createHash('sha1').update(clientKey).digest();
  const authMessage = 'n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j';
  const signature = createHmac('sha1', storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
  assert.equal(proof.toString('base64'), 'v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
  // The same inputs again come from the cache, a different password does not.
  assert.deepEqual(Buffer.from(await bitops.Hi('pencil', salt, 4096)), expected);
  assert.notDeepEqual(Buffer.from(await bitops.Hi('pencil!', salt, 4096)), expected);
});
