// The identity of a MESSAGE Parley may send again after a restart (a leg of an outbox row, a stored
// message): derived from what names it in the store instead of drawn at random, so that a copy sent
// just before a kill -9 and again after the restart carries the same Call-ID, From tag and CSeq. A
// UA sees the same request twice (RFC 3261 §8.2.2.2) and may drop the second, not a new message.
import { createHash } from 'node:crypto';

export interface ResendIdentity {
  callId: string;
  fromTag: string;
}

/** `key` must name one message to one recipient for good: a store id with the time it was stored, and the recipient. */
export function resendIdentity(key: string): ResendIdentity {
  const digest = createHash('sha256').update(key).digest('hex');
  return { callId: `${digest.slice(0, 24)}@parley`, fromTag: digest.slice(24, 40) };
}
