// A stored message as the MESSAGE that delivers it, each time the same request (see storedRequest).
import { parseNameAddr, type SipMessage, type SipStack } from '../sip/index.js';
import type { StoredMessage } from '../store/index.js';
import { resendIdentity } from './resend.js';

/** What marks a copy of a message its user sent from another device (own-message sync, relay/sync.ts). */
export const SENT_COPY = { name: 'x-parley-copy', value: 'sent' };

/** The MESSAGE that delivers a stored message, with the Date it was sent (and, on a copy of the user's own, SENT_COPY). */
export function storedRequest(stack: SipStack, stored: StoredMessage): SipMessage {
  // Each time it is sent, the same Call-ID, From tag and CSeq as the request it came in as (the one
  // a registered device was given at once): a UA given it twice sees one request again.
  const identity = stored.origin ?? { ...resendIdentity(`offline.${stored.id}.${stored.receivedAt}.${stored.aor}`), cseq: undefined };
  return stack.createRequest({
    method: 'MESSAGE',
    uri: stripToUri(stored.toHeader),
    from: `${stored.fromHeader};tag=${identity.fromTag}`,
    callId: identity.callId,
    cseq: identity.cseq,
    to: stored.toHeader,
    headers: [{ name: 'date', value: new Date(stored.sentAt ?? stored.receivedAt).toUTCString() }, ...(stored.sentCopy ? [SENT_COPY] : [])],
    body: stored.body,
    contentType: stored.contentType,
  });
}

/** The URI of a name-addr header value, or the value itself when it is a bare URI. */
export function stripToUri(value: string): string {
  // A bare URI without parameters (a room leg's "sip:user@domain") is its own URI: nothing to parse.
  if (!/[<;"\s,]/.test(value)) return value;
  try {
    return parseNameAddr(value).uri;
  } catch {
    return value;
  }
}
