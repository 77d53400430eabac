// The XMPP edge of the bridge for text (RFC 7572): an instant message as an XMPP <message/> stanza.
// Body ↔ <body/>, Subject ↔ <subject/>, Content-Language ↔ xml:lang; a MESSAGE's Call-ID names the
// <thread/> (the other way, the relay picks the Call-ID). The SIP side is src/bridge/sip.ts.
import xml from '@xmpp/xml';
import { type InstantMessage, LANGUAGE_TAG } from '../bridge/index.js';

/** The <message/> stanza for an instant message; `extra` children (receipt requests) follow the body. */
export function messageStanza(im: InstantMessage, attrs: { from: string; to: string; id: string; type: string }, ...extra: xml.Element[]): xml.Element {
  return xml(
    'message',
    { ...attrs, 'xml:lang': im.language },
    im.subject !== undefined && xml('subject', {}, im.subject),
    xml('body', {}, im.body),
    im.thread !== undefined && xml('thread', {}, im.thread),
    ...extra,
  );
}

/**
 * The instant message a <message/> stanza carries; undefined when it has no body (chat states,
 * receipts and other payloads that have no SIP form). Of several bodies (RFC 6121 §5.2.3) the one
 * in the stanza's own language is taken.
 */
export function readStanza(stanza: xml.Element): InstantMessage | undefined {
  const stanzaLanguage = stanza.attrs['xml:lang'];
  const pick = (name: string) => {
    const candidates = stanza.getChildren(name);
    return candidates.find((child) => (child.attrs['xml:lang'] ?? stanzaLanguage) === stanzaLanguage) ?? candidates[0];
  };
  const body = pick('body');
  if (!body) return undefined;
  const thread = stanza.getChildText('thread');
  const language = body.attrs['xml:lang'] ?? stanzaLanguage;
  return {
    body: body.text(),
    subject: pick('subject')?.text(),
    language: language && LANGUAGE_TAG.test(language) ? language : undefined,
    ...(thread === null ? {} : { thread }),
  };
}

/** RFC 3261 §25.1 Call-ID: word ["@" word]. */
const CALL_ID = /^[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}]+)?$/;
const MAX_CALL_ID = 256;

/**
 * The Call-ID of the SIP MESSAGE carrying a message of this XMPP thread, so that SIP clients see
 * the conversation as one (RFC 7572 §6); undefined (a new Call-ID) when the thread cannot be one.
 */
export function callIdOfThread(thread: string | undefined): string | undefined {
  return thread !== undefined && thread.length <= MAX_CALL_ID && CALL_ID.test(thread) ? thread : undefined;
}
