// The identity of a MESSAGE Parley may send more than once: a leg of an outbox row or a stored
// message delivered again after a restart, or a message taken twice because its sender retransmitted
// it to the restarted process. Derived from what names the message (the sender's request, else its
// row in the store) instead of drawn at random, every copy carries the same Call-ID, From tag and
// CSeq (or stanza id): a UA sees the same request again (RFC 3261 §8.2.2.2), not a new message.
import { hash } from 'node:crypto';
import type { SipMessage } from '../sip/index.js';
import { fnv1a } from '../sip/message.js';
import type { RequestOrigin } from '../store/index.js';

export interface ResendIdentity {
  callId: string;
  fromTag: string;
}

/** What names the request a message came in (Call-ID, From tag, CSeq): the same for each of its retransmissions. */
export function requestKey(message: SipMessage): string {
  return `${message.callId}|${message.from.params.get('tag') ?? ''}|${message.cseq.seq}`;
}

/** The Call-ID, From tag and CSeq of the request a message came in: kept with it when it is stored, to send it again as that very request. */
export function requestOrigin(message: SipMessage): RequestOrigin {
  return { callId: message.callId, fromTag: message.from.params.get('tag') ?? '', cseq: message.cseq.seq };
}

/** `key` must name one message to one recipient for good (see requestKey). */
export function resendIdentity(key: string): ResendIdentity {
  const digest = digestOf(key);
  return { callId: `${digest.slice(0, 24)}@parley`, fromTag: digest.slice(24, 40) };
}

/**
 * The identities of one message's copies, one per recipient, as resendIdentity's are: `key` names
 * the message (not a copy) and is digested once; each recipient is told apart in the Call-ID by a
 * fast hash of its name, so that a post to a hundred members costs one digest, not a hundred.
 */
export function recipientIdentities(key: string): (recipient: string) => ResendIdentity {
  const digest = digestOf(key);
  const callId = digest.slice(0, 24);
  const fromTag = digest.slice(24, 32);
  return (recipient) => {
    const mark = fnv1a(recipient);
    return { callId: `${callId}${mark}@parley`, fromTag: `${fromTag}${mark}` };
  };
}

/** An id that is the same each time for what `key` names: the stanza id of a message, say. */
export function repeatableId(key: string): string {
  return digestOf(key).slice(0, 24);
}

/** One call, no Hash object: every leg of a room post makes one, so the cheaper form counts. */
function digestOf(key: string): string {
  return hash('sha256', key, 'hex');
}
