// The XMPP edge of the bridge for text (RFC 7572): an instant message as an XMPP <message/> stanza.
// Body ↔ <body/>, Subject ↔ <subject/>, Content-Language ↔ xml:lang; a MESSAGE's Call-ID names the
// <thread/> (the other way, the relay picks the Call-ID). The SIP side is src/bridge/sip.ts.
import xml from '@xmpp/xml';
import { type InstantMessage, LANGUAGE_TAG, type Wanted } from '../bridge/index.js';
import type { OutboundStanza } from './backend.js';
import { receiptRequests } from './receipts.js';

/**
 * The <message/> stanza for an instant message, as an element; `extra` children (receipt requests)
 * follow the body. For client libraries that work on elements (the per-user gateway's: stream
 * management adds a <delay/> to what it sends again); the gateway's link writes writtenMessage.
 */
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

/** A stanza already written as text, with the attributes a link addresses it by. */
export class WrittenStanza implements OutboundStanza {
  constructor(
    readonly name: string,
    readonly attrs: Readonly<Record<string, string | undefined>>,
    private readonly text: string,
  ) {}

  is(name: string): boolean {
    return this.name === name;
  }

  toString(): string {
    return this.text;
  }
}

/**
 * The stanza of messageStanza (with the requests for the receipts `wanted`), written from a template
 * instead of built as an element and serialised: the gateway writes one for every message from SIP.
 * Read back, it is the same element (test/xmpp/mapping.test.ts).
 */
export function writtenMessage(im: InstantMessage, attrs: { from: string; to: string; id: string; type: string }, wanted?: Wanted): WrittenStanza {
  const { from, to, id, type } = attrs;
  const language = im.language === undefined ? '' : ` xml:lang="${escapeAttribute(im.language)}"`;
  const subject = im.subject === undefined ? '' : `<subject>${escapeText(im.subject)}</subject>`;
  const thread = im.thread === undefined ? '' : `<thread>${escapeText(im.thread)}</thread>`;
  const requests = wanted ? receiptRequests(wanted).join('') : '';
  const text =
    `<message from="${escapeAttribute(from)}" to="${escapeAttribute(to)}" id="${escapeAttribute(id)}" type="${escapeAttribute(type)}"${language}>` +
    `${subject}<body>${escapeText(im.body)}</body>${thread}${requests}</message>`;
  return new WrittenStanza('message', { ...attrs, 'xml:lang': im.language }, text);
}

const TEXT_SPECIALS = /[&<>\r]/;
const TEXT_SPECIALS_ALL = /[&<>\r]/g;
const ATTRIBUTE_SPECIALS = /[&<>"'\t\n\r]/;
const ATTRIBUTE_SPECIALS_ALL = /[&<>"'\t\n\r]/g;
const REFERENCES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' };
const referenceOf = (character: string) => REFERENCES[character]!;

/**
 * Character data as XML text: '&', '<' and '>' (for ']]>') as entities, a carriage return as a
 * reference (a literal one would reach the recipient as a line feed, XML 1.0 §2.11).
 */
function escapeText(text: string): string {
  return TEXT_SPECIALS.test(text) ? text.replace(TEXT_SPECIALS_ALL, referenceOf) : text;
}

/** An attribute value between double quotes: also the quotes, and tabs and line ends as references (attribute value normalisation would make them spaces). */
export function escapeAttribute(value: string): string {
  return ATTRIBUTE_SPECIALS.test(value) ? value.replace(ATTRIBUTE_SPECIALS_ALL, referenceOf) : value;
}

/**
 * The instant message a <message/> stanza carries; undefined when it has no body (chat states,
 * receipts and other payloads that have no SIP form). Of several bodies (RFC 6121 §5.2.3) the one
 * in the stanza's own language is taken.
 */
export function readStanza(stanza: xml.Element): InstantMessage | undefined {
  const stanzaLanguage = stanza.attrs['xml:lang'];
  const body = childInLanguage(stanza, 'body', stanzaLanguage);
  if (!body) return undefined;
  const thread = stanza.getChildText('thread');
  const language = body.attrs['xml:lang'] ?? stanzaLanguage;
  return {
    body: body.text(),
    subject: childInLanguage(stanza, 'subject', stanzaLanguage)?.text(),
    language: language && LANGUAGE_TAG.test(language) ? language : undefined,
    ...(thread === null ? {} : { thread }),
  };
}

/** Of the children `name`, the one in `language` (the stanza's, which they inherit), else the first. */
function childInLanguage(stanza: xml.Element, name: string, language: string | undefined): xml.Element | undefined {
  const candidates = stanza.getChildren(name);
  return candidates.find((child) => (child.attrs['xml:lang'] ?? language) === language) ?? candidates[0];
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
