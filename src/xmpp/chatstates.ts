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
import xml from '@xmpp/xml';
import { parse, type Element } from 'ltx';

export const ISCOMPOSING_TYPE = 'application/im-iscomposing+xml';
export const CHATSTATES_NS = 'http://jabber.org/protocol/chatstates';
const ISCOMPOSING_NS = 'urn:ietf:params:xml:ns:im-iscomposing';
const HINTS_NS = 'urn:xmpp:hints';

const CHAT_STATES = ['active', 'composing', 'paused', 'inactive', 'gone'] as const;
export type ChatState = (typeof CHAT_STATES)[number];

/** RFC 3994 §4: the states of an isComposing document. */
export type ComposingState = 'active' | 'idle';

/** What an isComposing document says. */
export interface IsComposing {
  state: ComposingState;
  /** Seconds after which an active state lapses unless refreshed. */
  refresh?: number;
  /** The kind of message being composed (e.g. text/plain). */
  contentType?: string;
}

/** How long a composing state from XMPP lasts on SIP: XEP-0085 §5.2 suggests 30 s to 2 min before "paused". */
export const COMPOSING_REFRESH_S = 90;

/** The chat state a <message/> stanza carries, if any. */
export function chatStateOf(stanza: xml.Element): ChatState | undefined {
  return CHAT_STATES.find((state) => stanza.getChild(state, CHATSTATES_NS) !== undefined);
}

/** Reads an isComposing document; undefined when the body is not one. */
export function readIsComposing(body: string): IsComposing | undefined {
  let root: Element;
  try {
    root = parse(body);
  } catch {
    return undefined;
  }
  if (!root.is('isComposing', ISCOMPOSING_NS)) return undefined;
  const state = root.getChild('state', ISCOMPOSING_NS)?.getText().trim();
  if (state !== 'active' && state !== 'idle') return undefined;
  const refresh = Number.parseInt(root.getChild('refresh', ISCOMPOSING_NS)?.getText().trim() ?? '', 10);
  const contentType = root.getChild('contenttype', ISCOMPOSING_NS)?.getText().trim();
  return { state, ...(Number.isFinite(refresh) && refresh > 0 ? { refresh } : {}), ...(contentType ? { contentType } : {}) };
}

/** The isComposing document for a composing state. */
export function isComposingBody(composing: IsComposing): string {
  const document = xml(
    'isComposing',
    { xmlns: ISCOMPOSING_NS },
    xml('state', {}, composing.state),
    composing.contentType !== undefined && xml('contenttype', {}, composing.contentType),
    composing.refresh !== undefined && xml('refresh', {}, String(composing.refresh)),
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n${document.toString()}`;
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
