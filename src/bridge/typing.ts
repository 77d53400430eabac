// Typing notifications on SIP: isComposing documents (RFC 3994, application/im-iscomposing+xml), the
// bridge's `typing` kind in SIP's form. XMPP's chat states are src/xmpp/chatstates.ts.
import xml from '@xmpp/xml';
import { documentRoot, xmlBody } from './xml-body.js';

const ISCOMPOSING_NS = 'urn:ietf:params:xml:ns:im-iscomposing';

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

/** Reads an isComposing document; undefined when the body is not one. */
export function readIsComposing(body: string): IsComposing | undefined {
  const root = documentRoot(body, 'isComposing', ISCOMPOSING_NS);
  const state = root?.getChild('state', ISCOMPOSING_NS)?.getText().trim();
  if (!root || (state !== 'active' && state !== 'idle')) return undefined;
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
  return xmlBody(document);
}
