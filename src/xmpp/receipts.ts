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
// This file is the XMPP side; the SIP side (IMDN, the bridge's `receipt` kind) is src/bridge/imdn.ts.
import xml from '@xmpp/xml';
import { type Notification, Recent, type Wanted } from '../bridge/index.js';

export const RECEIPTS_NS = 'urn:xmpp:receipts';
export const MARKERS_NS = 'urn:xmpp:chat-markers:0';

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
