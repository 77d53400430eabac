// The neutral instant message the bridge carries between SIP and another network. Each network's
// edge converts its own form to it and from it (SIP: sip.ts, typing.ts, imdn.ts; XMPP:
// src/xmpp/messages.ts, chatstates.ts, receipts.ts; the per-user networks: their sessions), so what
// crosses the bridge is one shape whichever way it goes.
import type { Notification, Wanted } from './imdn.js';
import type { IsComposing } from './typing.js';

/** The networks a bridge connects; a per-user gateway's own network ids too. */
export type Network = 'sip' | 'xmpp' | 'irc';

/** An address on one network, typed by it: a SIP URI, a JID, an IRC nick or channel. */
export interface Address {
  network: Network;
  /** The address as the network writes it: "sip:alice@example.com", "bob@example.org/phone", "#room". */
  id: string;
  /** A name to show with it (the speaker's nick in a group chat). */
  name?: string;
}

/**
 * What a message is: `text` (a body to read), `typing` (a composing state, stale once late: never
 * stored offline), `receipt` (a delivery or read notification for an earlier message).
 */
export type MessageKind = 'text' | 'typing' | 'receipt';

/** Text as every network can carry it: a body, with what goes with it where the network has a place for it. */
export interface InstantMessage {
  body: string;
  subject?: string;
  /** XMPP thread: from SIP, the Call-ID; from XMPP, the Call-ID when it can be one (see callIdOfThread). */
  thread?: string;
  /** Language tag of the text (xml:lang, Content-Language). */
  language?: string;
}

interface Envelope {
  from: Address;
  to: Address;
  /** The message's id where it is going (an IMDN Message-ID, a stanza id), for what comes back about it. */
  id?: string;
  /** When it was sent (ms since the epoch); absent: now. */
  at?: number;
}

export interface TextMessage extends Envelope, InstantMessage {
  kind: 'text';
  /** The body's type; text/plain in UTF-8 is what every network carries. */
  contentType: string;
  /** The receipts its sender asks for (delivered, displayed); `id` names it in them. */
  wanted?: Wanted;
  /** The conversation it belongs to as the receiving side names one (a SIP Call-ID); absent: a new one. */
  conversation?: string;
}

export interface TypingMessage extends Envelope {
  kind: 'typing';
  typing: IsComposing;
}

export interface ReceiptMessage extends Envelope {
  kind: 'receipt';
  /** The receipt's own id (its IMDN Message-ID). */
  id: string;
  /** Which message (by the id it reached the receipt's sender with) and what became of it. */
  receipt: Notification;
}

/** One message crossing the bridge. */
export type BridgeMessage = TextMessage | TypingMessage | ReceiptMessage;

export const TEXT_PLAIN = 'text/plain;charset=utf-8';

const EXCERPT_LENGTH = 80;

/** The start of a message on one line, cut between characters (code points), not inside one: what a failure notice quotes. */
export function excerptOf(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  // No more code units than the limit: no more characters either, and nothing to cut.
  if (line.length <= EXCERPT_LENGTH) return line;
  const characters = [...line];
  return characters.length > EXCERPT_LENGTH ? `${characters.slice(0, EXCERPT_LENGTH - 1).join('')}…` : characters.join('');
}
