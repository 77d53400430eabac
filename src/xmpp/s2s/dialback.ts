// Server Dialback keys (XEP-0220), generated as XEP-0185 recommends: HMAC-SHA256 keyed with the
// hex SHA-256 of a secret only this server knows, over "Receiving Server, ' ', Originating Server,
// ' ', Stream ID", hex encoded. Any server holding the secret can check a key without state.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export function dialbackKey(secret: string, receiving: string, originating: string, streamId: string): string {
  const hashedSecret = createHash('sha256').update(secret, 'utf8').digest('hex');
  return createHmac('sha256', hashedSecret).update(`${receiving} ${originating} ${streamId}`, 'utf8').digest('hex');
}

/** Whether `key` is the one this server (holding `secret`) would have sent for that stream. */
export function verifyDialbackKey(secret: string, receiving: string, originating: string, streamId: string, key: string): boolean {
  const expected = Buffer.from(dialbackKey(secret, receiving, originating, streamId), 'utf8');
  const given = Buffer.from(key.trim(), 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
