// One instant message in its two forms (RFC 7572): a SIP MESSAGE with a text/plain body, and an XMPP
// <message/> stanza. Body ↔ <body/>, Subject ↔ <subject/>, Content-Language ↔ xml:lang; a MESSAGE's
// Call-ID names the <thread/> (the other way, the relay picks the Call-ID). Only text XML 1.0 can
// carry crosses: a SIP body is bytes, an XML document is not.
import xml from '@xmpp/xml';
import { type Header, type SipMessage, parseParams } from '../sip/index.js';
import { CPIM_TYPE, ContentError, decodeContent, headerValue, parseCpim } from './cpim.js';
import { type ImdnRequest, imdnRequestOf } from './receipts.js';

export interface InstantMessage {
  body: string;
  subject?: string;
  /** XMPP thread: from SIP, the Call-ID; from XMPP, the Call-ID when it can be one (see callIdOfThread). */
  thread?: string;
  /** Language tag of the text (xml:lang, Content-Language). */
  language?: string;
}

/** How to answer a SIP MESSAGE the gateway cannot carry. */
export interface Refusal {
  status: number;
  reason: string;
  headers?: Header[];
}

export const TEXT_PLAIN = 'text/plain;charset=utf-8';

/** XML 1.0 §2.2 Char: what a document may contain at all, escaped or not. */
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const LANGUAGE_TAG = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/** What a SIP MESSAGE carries once its Content-Encoding and CPIM wrapper (RFC 3862) are undone. */
export interface SipContent {
  contentType: string;
  body: Buffer;
  /** The IMDN Message-ID and notifications the CPIM wrapper asks for. */
  imdn?: ImdnRequest;
}

/** The content of a SIP MESSAGE: inflated (at most maxBody bytes) and unwrapped from message/cpim; or why it cannot be read. */
export function sipContentOf(message: SipMessage, maxBody: number): SipContent | Refusal {
  try {
    const body = decodeContent(message.body, message.get('content-encoding'), maxBody);
    const contentType = message.get('content-type') ?? 'text/plain';
    if (mediaTypeOf(contentType) !== CPIM_TYPE) return { contentType, body };
    const cpim = parseCpim(body);
    const inner = decodeContent(cpim.content, headerValue(cpim.contentHeaders, 'content-encoding'), maxBody);
    return { contentType: headerValue(cpim.contentHeaders, 'content-type') ?? 'text/plain', body: inner, imdn: imdnRequestOf(cpim) };
  } catch (error) {
    if (!(error instanceof ContentError)) throw error;
    return { status: 415, reason: `Unsupported Media Type (${error.message})`, headers: [{ name: 'accept-encoding', value: 'deflate, identity' }] };
  }
}

/** The media type of a Content-Type value, in lower case, without parameters. */
export function mediaTypeOf(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase();
}

/**
 * The instant message a SIP MESSAGE carries, or why the gateway cannot carry it; `content` is its
 * body and type when they are not the MESSAGE's own (unwrapped from CPIM).
 */
export function readSipMessage(message: SipMessage, maxBody: number, content: SipContent = { contentType: message.get('content-type') ?? 'text/plain', body: message.body }): InstantMessage | Refusal {
  const contentType = parseContentType(content.contentType);
  if (contentType?.type !== 'text/plain' || !UTF8_CHARSETS.has(contentType.charset ?? 'utf-8')) {
    return { status: 415, reason: 'Unsupported Media Type (XMPP carries text/plain in UTF-8 only)', headers: [{ name: 'accept', value: 'text/plain' }] };
  }
  if (content.body.length > maxBody) return { status: 413, reason: 'Request Entity Too Large' };
  if (content.body.length === 0) return { status: 400, reason: 'Bad Request (empty message)' };
  const body = decodeUtf8(content.body);
  if (body === undefined) return { status: 415, reason: 'Unsupported Media Type (body is not UTF-8)' };
  const subject = message.get('subject');
  if (NOT_XML_CHAR.test(body) || (subject !== undefined && NOT_XML_CHAR.test(subject))) {
    return { status: 400, reason: 'Bad Request (control characters XML cannot carry)' };
  }
  const language = message.get('content-language')?.split(',')[0]!.trim();
  return {
    body,
    subject: subject || undefined,
    thread: message.callId,
    language: language && LANGUAGE_TAG.test(language) ? language : undefined,
  };
}

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

/** The headers of a SIP MESSAGE carrying an instant message; its body is `im.body` as TEXT_PLAIN. */
export function sipHeaders(im: InstantMessage): Header[] {
  const headers: Header[] = [];
  // A header value is one line: a multi-line subject is joined.
  if (im.subject) headers.push({ name: 'subject', value: im.subject.replace(/\s*[\r\n]+\s*/g, ' ') });
  if (im.language) headers.push({ name: 'content-language', value: im.language });
  return headers;
}

function parseContentType(value: string): { type: string; charset?: string } | undefined {
  const semi = value.indexOf(';');
  try {
    const params = semi < 0 ? new Map<string, string | null>() : parseParams(value.slice(semi));
    const charset = params.get('charset')?.replace(/^"|"$/g, '').toLowerCase();
    return { type: (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase(), charset };
  } catch {
    return undefined;
  }
}

function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

const EXCERPT_LENGTH = 80;

/** The start of a message on one line, cut between characters (code points), not inside one: what an error notification quotes. */
export function excerptOf(text: string): string {
  const characters = [...text.replace(/\s+/g, ' ').trim()];
  return characters.length > EXCERPT_LENGTH ? `${characters.slice(0, EXCERPT_LENGTH - 1).join('')}…` : characters.join('');
}
