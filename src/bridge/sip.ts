// The bridge's SIP edge: the text a SIP MESSAGE carries, read into an InstantMessage (or why it
// cannot cross), and a BridgeMessage written as the MESSAGE the relay sends into SIP.
import type { OutgoingMessage } from '../relay/index.js';
import { type Header, type SipMessage, parseParams, quote } from '../sip/index.js';
import type { Address, BridgeMessage, InstantMessage } from './message.js';

/** How to answer a SIP MESSAGE the bridge cannot carry. */
export interface Refusal {
  status: number;
  reason: string;
  headers?: Header[];
}

/** XML 1.0 §2.2 Char: what a document may contain at all, escaped or not (XMPP's limit, kept for every network). */
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
export const LANGUAGE_TAG = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/** The media type of a Content-Type value, in lower case, without parameters. */
export function mediaTypeOf(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase();
}

/**
 * The instant message a SIP MESSAGE carries, or why the gateway cannot carry it; `content` is its
 * body and type when they are not the MESSAGE's own (unwrapped from CPIM).
 */
export function readSipMessage(
  message: SipMessage,
  maxBody: number,
  content: { contentType: string; body: Buffer } = { contentType: message.get('content-type') ?? 'text/plain', body: message.body },
): InstantMessage | Refusal {
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

/** The headers of a SIP MESSAGE carrying a text message's subject and language. */
export function sipHeaders(text: Pick<InstantMessage, 'subject' | 'language'>): Header[] {
  const headers: Header[] = [];
  // A header value is one line: a multi-line subject is joined.
  if (text.subject) headers.push({ name: 'subject', value: text.subject.replace(/\s*[\r\n]+\s*/g, ' ') });
  if (text.language) headers.push({ name: 'content-language', value: text.language });
  return headers;
}

/** The MESSAGE the relay sends into SIP for a message crossing the bridge; a typing state is never stored offline. */
export function sipRequestOf(message: BridgeMessage): OutgoingMessage {
  return {
    from: nameAddrOf(message.from),
    to: message.to.id,
    body: message.body,
    contentType: message.contentType,
    ...(message.text ? { headers: sipHeaders(message.text) } : {}),
    ...(message.conversation !== undefined ? { callId: message.conversation } : {}),
    ...(message.kind === 'typing' ? { storeOffline: false } : {}),
  };
}

function nameAddrOf(address: Address): string {
  return address.name === undefined ? `<${address.id}>` : `${quote(address.name)} <${address.id}>`;
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
