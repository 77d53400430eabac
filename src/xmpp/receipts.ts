// Delivery and read receipts across the gateway: IMDN (RFC 5438) on SIP, carried in message/cpim
// as Linphone does, and XEP-0184 receipts and XEP-0333 chat markers on XMPP.
//
//   Request:  imdn.Disposition-Notification positive-delivery <-> <request xmlns="urn:xmpp:receipts"/>
//             imdn.Disposition-Notification display           <-> <markable xmlns="urn:xmpp:chat-markers:0"/>
//   Answer:   <delivery-notification> <delivered/>             <-> <received xmlns="urn:xmpp:receipts" id=.../>
//             <display-notification> <displayed/>              <-> <displayed xmlns="urn:xmpp:chat-markers:0" id=.../>
//
// Each side names the message by its own identifier (imdn.Message-ID, the stanza id); the gateway
// remembers which is which for the messages it carried (Correlations, bounded in number and time,
// in the store too so that a receipt after a restart still finds its message).
// This file is the XMPP side; the SIP side (IMDN, the bridge's `receipt` kind) is src/bridge/imdn.ts.
import type { Logger } from 'pino';
import xml from '@xmpp/xml';
import { type Notification, Recent, type Wanted } from '../bridge/index.js';
import { type ReceiptIdStore, logBackgroundFailure } from '../store/index.js';

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

/** Where a gateway keeps its correlations of one direction across restarts. */
export interface DurableCorrelations<Value> {
  store: ReceiptIdStore;
  /** The name of the direction, as the store keeps it. */
  direction: string;
  /** The SIP user an entry concerns: each keeps at most `maxPerOwner` entries in the store. */
  ownerOf(entry: Value): string;
  maxPerOwner: number;
  log: Logger;
}

/** How often the store forgets the entries that expired. */
const STORE_EXPIRY_EVERY_MS = 60_000;

/**
 * Which message on one network is which on the other, for the notifications still to come: at most
 * `max` entries in memory, each for at most `ttlMs` (the oldest go first), and an entry goes once
 * every notification it was asked for has come. With `durable`, entries are written to the store
 * too (bounded per SIP user, expiring the same way), where a notification looks when memory does
 * not know its message: one that comes after a restart, or after its entry left memory.
 */
export class Correlations<Value extends { wanted: Wanted }> {
  private readonly entries: Recent<Value>;
  private lastStoreExpiry = 0;

  constructor(
    max: number,
    private readonly ttlMs: number,
    private readonly durable?: DurableCorrelations<Value>,
  ) {
    this.entries = new Recent(max, ttlMs);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Resolves once the entry is in the store (at once without one); rejects with the store's error.
   * `committed` may be told earlier: once it is committed, before the disk sync (ReceiptIdStore.put).
   */
  remember(id: string, value: Value, now = Date.now(), committed?: () => void): Promise<void> {
    this.entries.remember(id, value, now);
    if (!this.durable) return Promise.resolve();
    const { store, direction, ownerOf, maxPerOwner } = this.durable;
    return store.put({ direction, messageId: id, owner: ownerOf(value), entry: JSON.stringify(value), createdAt: now }, maxPerOwner, committed);
  }

  /**
   * The entry a notification answers, when it asked for that notification (a displayed marker also
   * counts as delivered, XEP-0333 §4) and `from` says it comes from the right party; the entry is
   * forgotten once nothing more is to come.
   */
  async answer(notification: Notification, from: (entry: Value) => boolean, now = Date.now()): Promise<Value | undefined> {
    const id = notification.messageId;
    const entry = this.entries.get(id, now) ?? (await this.fromStore(id, now));
    if (!entry || !from(entry)) return undefined;
    const displayed = notification.disposition === 'displayed';
    if (displayed ? !entry.wanted.display : !entry.wanted.delivery) return undefined;
    const wanted = displayed ? { delivery: false, display: false } : { ...entry.wanted, delivery: false };
    if (wanted.display) {
      const updated = { ...entry, wanted };
      this.entries.update(id, updated);
      this.inBackground('updating a receipt id', (store, direction) => store.update(direction, id, JSON.stringify(updated)));
    } else this.forget(id);
    return entry;
  }

  /** Forgets an entry, in the store too: every notification came, or none will (its message was refused). */
  forget(id: string): void {
    this.entries.forget(id);
    this.inBackground('forgetting a receipt id', (store, direction) => store.remove(direction, id));
  }

  /** Forgets entries older than the limit (in the store, once a minute). */
  sweep(now: number): void {
    this.entries.sweep(now);
    if (now - this.lastStoreExpiry < STORE_EXPIRY_EVERY_MS) return;
    this.lastStoreExpiry = now;
    this.inBackground('expiring receipt ids', (store) => store.expire(now - this.ttlMs));
  }

  /** An entry the store still has (kept in memory again, with its time, for the notifications after it). */
  private async fromStore(id: string, now: number): Promise<Value | undefined> {
    if (!this.durable) return undefined;
    const stored = await this.durable.store.get(this.durable.direction, id, now - this.ttlMs);
    if (!stored) return undefined;
    const value = JSON.parse(stored.entry) as Value;
    this.entries.remember(id, value, stored.createdAt);
    return value;
  }

  private inBackground(task: string, write: (store: ReceiptIdStore, direction: string) => Promise<unknown>): void {
    if (!this.durable) return;
    write(this.durable.store, this.durable.direction).catch(logBackgroundFailure(this.durable.log, task));
  }
}
