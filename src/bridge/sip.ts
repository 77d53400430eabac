// The bridge's SIP edge: what a SIP MESSAGE carries, read as the bridge's kinds (text, an
// isComposing state, an IMDN; or why it cannot cross), and a BridgeMessage written as the MESSAGE
// the relay sends into SIP.
import type { OutgoingMessage } from '../relay/index.js';
import { type Header, type SipMessage, type SipUri, parseParams, parseUri, quote, sipAddress } from '../sip/index.js';
import { CPIM_TYPE, ContentError } from '../util/cpim.js';
import { IMDN_TYPE, ISCOMPOSING_TYPE, carriedContent, mediaTypeOf } from '../util/media-types.js';
import { type CpimEnvelope, type ImdnRequest, type Notification, cpimAskingForImdn, cpimNotification, imdnRequestOf, readImdn } from './imdn.js';
import type { Address, BridgeMessage, InstantMessage, ReceiptMessage, TextMessage } from './message.js';
import { type IsComposing, isComposingBody, readIsComposing } from './typing.js';

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

/** Who sent a SIP MESSAGE, from its From URI; or the 400 for a From no one can be answered at. */
export function senderOf(message: SipMessage): SipUri | Refusal {
  try {
    return parseUri(message.from.uri);
  } catch {
    return { status: 400, reason: 'Bad Request (From URI)' };
  }
}

/** A SIP user's address as the gateways write it: "sip:user@domain", without port or parameters. */
export function plainSipAddress(uri: SipUri): string {
  return sipAddress(uri.user, uri.host);
}

/** What a SIP MESSAGE carries once its Content-Encoding and CPIM wrapper (RFC 3862) are undone. */
interface SipContent {
  contentType: string;
  body: Buffer;
  /** The IMDN Message-ID and notifications the CPIM wrapper asks for. */
  imdn?: ImdnRequest;
}

/** The content of a SIP MESSAGE: inflated (at most maxBody bytes) and unwrapped from message/cpim; or why it cannot be read. */
function sipContentOf(message: SipMessage, maxBody: number): SipContent | Refusal {
  try {
    const { contentType, body, cpim } = carriedContent(message, maxBody);
    return { contentType, body, imdn: cpim && imdnRequestOf(cpim) };
  } catch (error) {
    if (!(error instanceof ContentError)) throw error;
    return { status: 415, reason: `Unsupported Media Type (${error.message})`, headers: [{ name: 'accept-encoding', value: 'deflate, identity' }] };
  }
}

/** What a SIP MESSAGE carries, as the bridge's kinds (its addresses aside). */
export type SipPayload =
  | { kind: 'text'; text: InstantMessage; imdn?: ImdnRequest }
  | { kind: 'typing'; typing: IsComposing }
  | { kind: 'receipt'; receipt: Notification };

/**
 * What a SIP MESSAGE carries, read as a text (unwrapped from CPIM, with the IMDN notifications it
 * asks for), a typing state or a receipt; or why the bridge cannot carry it.
 */
export function readSipPayload(message: SipMessage, maxBody: number): SipPayload | Refusal {
  const content = sipContentOf(message, maxBody);
  if ('status' in content) return content;
  switch (mediaTypeOf(content.contentType)) {
    case ISCOMPOSING_TYPE: {
      const typing = readIsComposing(content.body.toString('utf8'));
      return typing ? { kind: 'typing', typing } : { status: 400, reason: 'Bad Request (not an isComposing document)' };
    }
    case IMDN_TYPE: {
      const receipt = readImdn(content.body.toString('utf8'));
      return receipt ? { kind: 'receipt', receipt } : { status: 400, reason: 'Bad Request (not a delivered or displayed IMDN)' };
    }
  }
  const text = readSipMessage(message, maxBody, content);
  if ('status' in text) return text;
  return { kind: 'text', text, ...(content.imdn ? { imdn: content.imdn } : {}) };
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

/**
 * The MESSAGE the relay sends into SIP for a message crossing the bridge: a text as it is, or in
 * CPIM asking for the IMDNs its sender wants; a typing state as an isComposing document, never
 * stored offline (stale once late); a receipt as an IMDN in CPIM, as Linphone reads one.
 */
export function sipRequestOf(message: BridgeMessage): OutgoingMessage {
  const from = nameAddrOf(message.from);
  const to = message.to.id;
  switch (message.kind) {
    case 'typing':
      return { from, to, body: isComposingBody(message.typing), contentType: ISCOMPOSING_TYPE, storeOffline: false };
    case 'receipt':
      return { from, to, body: cpimNotification(envelopeOf(message, message.id), message.receipt), contentType: CPIM_TYPE };
    case 'text':
      return { from, to, ...textContentOf(message), headers: sipHeaders(message), ...(message.conversation !== undefined ? { callId: message.conversation } : {}) };
  }
}

function textContentOf(message: TextMessage): { body: Buffer | string; contentType: string } {
  const { wanted, id } = message;
  if (!wanted || id === undefined || !(wanted.delivery || wanted.display)) return { body: message.body, contentType: message.contentType };
  return { body: cpimAskingForImdn(envelopeOf(message, id), wanted, message.contentType, Buffer.from(message.body, 'utf8')), contentType: CPIM_TYPE };
}

function envelopeOf(message: TextMessage | ReceiptMessage, messageId: string): CpimEnvelope {
  return { from: message.from.id, to: message.to.id, at: new Date(message.at ?? Date.now()), messageId };
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

/** Stateless between calls (each decode is whole): one for every message. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}
