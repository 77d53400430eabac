// Typing notifications across the gateway (RFC 7572 §7 family): SIP's isComposing documents
// (RFC 3994, application/im-iscomposing+xml) and XMPP chat states (XEP-0085). They are worth
// something now or never: the gateway sends them with a no-store hint (XEP-0334) one way and never
// lets the relay store them offline the other way, and a failure to deliver one is told to nobody.
//
//   SIP -> XMPP: active -> <composing/>; idle -> <paused/>.
//   XMPP -> SIP: <composing/> -> active (refresh 90 s: XEP-0085 repeats nothing, so the state is
//                refreshed by the next one); <paused/>, <active/>, <inactive/>, <gone/> -> idle.
//                A chat state inside a message with a body goes with the message: on SIP a message
//                received ends the composing state by itself (RFC 3994).
// This file is the XMPP side; the SIP side (isComposing, the bridge's `typing` kind) is src/bridge/typing.ts.
import xml from '@xmpp/xml';
import type { IsComposing } from '../bridge/index.js';

export const CHATSTATES_NS = 'http://jabber.org/protocol/chatstates';
const HINTS_NS = 'urn:xmpp:hints';

const CHAT_STATES = ['active', 'composing', 'paused', 'inactive', 'gone'] as const;
export type ChatState = (typeof CHAT_STATES)[number];

/** How long a composing state from XMPP lasts on SIP: XEP-0085 §5.2 suggests 30 s to 2 min before "paused". */
export const COMPOSING_REFRESH_S = 90;

/** The chat state a <message/> stanza carries, if any. */
export function chatStateOf(stanza: xml.Element): ChatState | undefined {
  return CHAT_STATES.find((state) => stanza.getChild(state, CHATSTATES_NS) !== undefined);
}

/** The isComposing state a chat state stands for on SIP. */
export function composingOfChatState(state: ChatState): IsComposing {
  return state === 'composing' ? { state: 'active', contentType: 'text/plain', refresh: COMPOSING_REFRESH_S } : { state: 'idle' };
}

/** The chat state an isComposing state stands for on XMPP. */
export function chatStateOfComposing(composing: IsComposing): ChatState {
  return composing.state === 'active' ? 'composing' : 'paused';
}

/** The bodiless <message/> carrying a chat state; not for storing (XEP-0334), as it is stale once late. */
export function chatStateStanza(state: ChatState, attrs: { from: string; to: string; id: string; type: string }): xml.Element {
  return xml('message', attrs, xml(state, { xmlns: CHATSTATES_NS }), xml('no-store', { xmlns: HINTS_NS }));
}
