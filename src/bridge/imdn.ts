// Delivery and read notifications on SIP: IMDN (RFC 5438), carried in message/cpim as Linphone
// does; the bridge's `receipt` kind, and a text's request for one, in SIP's form. XMPP's receipts
// and markers are src/xmpp/receipts.ts.
import xml from '@xmpp/xml';
import { type CpimHeader, type CpimMessage, formatCpim, headerValue, namespacePrefix } from '../util/cpim.js';
import { IMDN_TYPE } from '../util/media-types.js';
import { documentRoot, xmlBody } from './xml-body.js';

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
  const root = documentRoot(body, 'imdn', IMDN_NS);
  const messageId = root?.getChild('message-id', IMDN_NS)?.getText().trim();
  if (!root || !messageId) return undefined;
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
  return xmlBody(document);
}

