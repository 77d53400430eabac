// Delivery and read receipts across the gateway: IMDN (RFC 5438) on SIP, carried in message/cpim
// as Linphone does, and XEP-0184 receipts and XEP-0333 chat markers on XMPP.
//
//   Request:  imdn.Disposition-Notification positive-delivery <-> <request xmlns="urn:xmpp:receipts"/>
//             imdn.Disposition-Notification display           <-> <markable xmlns="urn:xmpp:chat-markers:0"/>
//   Answer:   <delivery-notification> <delivered/>             <-> <received xmlns="urn:xmpp:receipts" id=.../>
//             <display-notification> <displayed/>              <-> <displayed xmlns="urn:xmpp:chat-markers:0" id=.../>
//
// Each side names the message by its own identifier (imdn.Message-ID, the stanza id); the gateway
// remembers which is which for the messages it carried (Correlations, bounded in number and time).
import xml from '@xmpp/xml';
import { parse, type Element } from 'ltx';
import { Recent } from '../bridge/index.js';
import { type CpimHeader, type CpimMessage, formatCpim, headerValue, namespacePrefix } from './cpim.js';

export const IMDN_TYPE = 'message/imdn+xml';
export const RECEIPTS_NS = 'urn:xmpp:receipts';
export const MARKERS_NS = 'urn:xmpp:chat-markers:0';
const IMDN_HEADERS_NS = 'urn:ietf:params:imdn';
const IMDN_NS = 'urn:ietf:params:xml:ns:imdn';

/** The notifications a message asks for, in either network's terms. */
export interface Wanted {
  delivery: boolean;
  display: boolean;
}

export type Disposition = 'delivered' | 'displayed';

/** What an IMDN says: which message, and what became of it. */
export interface Notification {
  messageId: string;
  disposition: Disposition;
}

/** What a CPIM-wrapped message says of IMDN: its Message-ID and the notifications it asks for. */
export interface ImdnRequest {
  messageId: string;
  wanted: Wanted;
}

/** The IMDN Message-ID and requested notifications of a CPIM message; undefined when it asks for none. */
export function imdnRequestOf(cpim: CpimMessage): ImdnRequest | undefined {
  const prefix = namespacePrefix(cpim.headers, IMDN_HEADERS_NS) ?? 'imdn';
  const messageId = headerValue(cpim.headers, `${prefix}.Message-ID`);
  const disposition = headerValue(cpim.headers, `${prefix}.Disposition-Notification`);
  if (!messageId || !disposition) return undefined;
  const asked = new Set(disposition.split(',').map((value) => value.trim().toLowerCase()));
  const wanted = { delivery: asked.has('positive-delivery'), display: asked.has('display') };
  return wanted.delivery || wanted.display ? { messageId, wanted } : undefined;
}

/** Who a CPIM message is from and to (SIP addresses), when, and its IMDN Message-ID. */
export interface CpimEnvelope {
  from: string;
  to: string;
  at: Date;
  messageId: string;
}

/** The message/cpim body of a text message with IMDN headers asking for `wanted` notifications. */
export function cpimAskingForImdn(envelope: CpimEnvelope, wanted: Wanted, contentType: string, text: Buffer): Buffer {
  const dispositions = [wanted.delivery && 'positive-delivery', wanted.display && 'display'].filter(Boolean).join(', ');
  return formatCpim({
    headers: [...envelopeHeaders(envelope), { name: 'imdn.Disposition-Notification', value: dispositions }],
    contentHeaders: [{ name: 'Content-Type', value: contentType }],
    content: text,
  });
}

/** The message/cpim body of an IMDN, as Linphone reads one. */
export function cpimNotification(envelope: CpimEnvelope, notification: Notification): Buffer {
  return formatCpim({
    headers: envelopeHeaders(envelope),
    contentHeaders: [
      { name: 'Content-Type', value: IMDN_TYPE },
      { name: 'Content-Disposition', value: 'notification' },
    ],
    content: Buffer.from(imdnBody(notification, envelope.at)),
  });
}

function envelopeHeaders({ from, to, at, messageId }: CpimEnvelope): CpimHeader[] {
  return [
    { name: 'From', value: `<${from}>` },
    { name: 'To', value: `<${to}>` },
    { name: 'DateTime', value: at.toISOString() },
    { name: 'NS', value: `imdn <${IMDN_HEADERS_NS}>` },
    { name: 'imdn.Message-ID', value: messageId },
  ];
}

/** Reads a message/imdn+xml document; undefined when it is not a delivered or displayed notification. */
export function readImdn(body: string): Notification | undefined {
  let root: Element;
  try {
    root = parse(body);
  } catch {
    return undefined;
  }
  if (!root.is('imdn', IMDN_NS)) return undefined;
  const messageId = root.getChild('message-id', IMDN_NS)?.getText().trim();
  if (!messageId) return undefined;
  const statusOf = (name: string) => root.getChild(name, IMDN_NS)?.getChild('status', IMDN_NS);
  if (statusOf('delivery-notification')?.getChild('delivered', IMDN_NS)) return { messageId, disposition: 'delivered' };
  if (statusOf('display-notification')?.getChild('displayed', IMDN_NS)) return { messageId, disposition: 'displayed' };
  return undefined;
}

/** The message/imdn+xml document of a notification. */
export function imdnBody(notification: Notification, at: Date): string {
  const [element, status] = notification.disposition === 'delivered' ? ['delivery-notification', 'delivered'] : ['display-notification', 'displayed'];
  const document = xml(
    'imdn',
    { xmlns: IMDN_NS },
    xml('message-id', {}, notification.messageId),
    xml('datetime', {}, at.toISOString()),
    xml(element, {}, xml('status', {}, xml(status))),
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n${document.toString()}`;
}

/** The receipts a <message/> stanza asks for (with a body) or gives (without one). */
export interface StanzaReceipts {
  wanted: Wanted;
  /** The stanza id a receipt or marker names. */
  answers?: Notification;
}

export function receiptsOf(stanza: xml.Element): StanzaReceipts {
  const wanted = { delivery: stanza.getChild('request', RECEIPTS_NS) !== undefined, display: stanza.getChild('markable', MARKERS_NS) !== undefined };
  const received = stanza.getChild('received', RECEIPTS_NS)?.attrs.id;
  if (received) return { wanted, answers: { messageId: received, disposition: 'delivered' } };
  const displayed = stanza.getChild('displayed', MARKERS_NS)?.attrs.id;
  if (displayed) return { wanted, answers: { messageId: displayed, disposition: 'displayed' } };
  return { wanted };
}

/** The children asking for `wanted` receipts, for a <message/> with a body. */
export function receiptRequests(wanted: Wanted): xml.Element[] {
  return [...(wanted.delivery ? [xml('request', { xmlns: RECEIPTS_NS })] : []), ...(wanted.display ? [xml('markable', { xmlns: MARKERS_NS })] : [])];
}

/** The bodiless <message/> giving a receipt (delivered) or a marker (displayed) for the stanza `notification.messageId`. */
export function receiptStanza(notification: Notification, attrs: { from: string; to: string; id: string; type: string }): xml.Element {
  const child =
    notification.disposition === 'delivered' ? xml('received', { xmlns: RECEIPTS_NS, id: notification.messageId }) : xml('displayed', { xmlns: MARKERS_NS, id: notification.messageId });
  return xml('message', attrs, child);
}

/**
 * Which message on one network is which on the other, for the notifications still to come: at most
 * `max` entries, each for at most `ttlMs` (the oldest go first), and an entry goes once every
 * notification it was asked for has come.
 */
export class Correlations<Value extends { wanted: Wanted }> {
  private readonly entries: Recent<Value>;

  constructor(max: number, ttlMs: number) {
    this.entries = new Recent(max, ttlMs);
  }

  get size(): number {
    return this.entries.size;
  }

  remember(id: string, value: Value, now = Date.now()): void {
    this.entries.remember(id, value, now);
  }

  /**
   * The entry a notification answers, when it asked for that notification (a displayed marker also
   * counts as delivered, XEP-0333 §4) and `from` says it comes from the right party; the entry is
   * forgotten once nothing more is to come.
   */
  answer(notification: Notification, from: (entry: Value) => boolean, now = Date.now()): Value | undefined {
    const entry = this.entries.get(notification.messageId, now);
    if (!entry || !from(entry)) return undefined;
    const displayed = notification.disposition === 'displayed';
    if (displayed ? !entry.wanted.display : !entry.wanted.delivery) return undefined;
    const wanted = displayed ? { delivery: false, display: false } : { ...entry.wanted, delivery: false };
    if (wanted.display) this.entries.update(notification.messageId, { ...entry, wanted });
    else this.entries.forget(notification.messageId);
    return entry;
  }

  /** Forgets entries older than the limit. */
  sweep(now: number): void {
    this.entries.sweep(now);
  }
}
