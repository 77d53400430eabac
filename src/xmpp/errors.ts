// Errors across the gateway (RFC 7247 §8): a SIP failure for a message from XMPP goes back as the
// mapped stanza error, and an XMPP stanza error for a message from SIP is told to the SIP sender with
// the mapped status.
import xml from '@xmpp/xml';

export const STANZAS_NS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

type ErrorType = 'auth' | 'cancel' | 'modify' | 'wait';

/** RFC 6120 §8.3.3: each condition's usual error type. */
const CONDITION_TYPES: Record<string, ErrorType> = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  gone: 'cancel',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  redirect: 'modify',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'subscription-required': 'auth',
  'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
};

/** RFC 7247 §8.1: stanza error condition to SIP response status. */
const STATUS_OF_CONDITION: Record<string, number> = {
  'bad-request': 400,
  conflict: 400,
  'feature-not-implemented': 405,
  forbidden: 403,
  gone: 410,
  'internal-server-error': 500,
  'item-not-found': 404,
  'jid-malformed': 484,
  'not-acceptable': 406,
  'not-allowed': 403,
  'not-authorized': 401,
  'policy-violation': 403,
  'recipient-unavailable': 480,
  redirect: 302,
  'registration-required': 400,
  'remote-server-not-found': 404,
  'remote-server-timeout': 408,
  'resource-constraint': 500,
  'service-unavailable': 503,
  'subscription-required': 400,
  'undefined-condition': 400,
  'unexpected-request': 491,
};

/** RFC 7247 §8.2: SIP response status to stanza error condition. */
const CONDITION_OF_STATUS: Record<number, string> = {
  400: 'bad-request',
  401: 'not-authorized',
  402: 'bad-request',
  403: 'forbidden',
  404: 'item-not-found',
  405: 'feature-not-implemented',
  406: 'not-acceptable',
  407: 'not-authorized',
  408: 'remote-server-timeout',
  410: 'gone',
  413: 'policy-violation',
  414: 'jid-malformed',
  415: 'bad-request',
  416: 'jid-malformed',
  420: 'feature-not-implemented',
  421: 'not-acceptable',
  423: 'resource-constraint',
  430: 'recipient-unavailable',
  433: 'not-allowed',
  480: 'recipient-unavailable',
  481: 'item-not-found',
  482: 'not-acceptable',
  483: 'not-acceptable',
  484: 'item-not-found',
  485: 'item-not-found',
  486: 'recipient-unavailable',
  487: 'service-unavailable',
  488: 'not-acceptable',
  489: 'policy-violation',
  491: 'unexpected-request',
  493: 'bad-request',
  500: 'internal-server-error',
  501: 'feature-not-implemented',
  502: 'remote-server-not-found',
  503: 'service-unavailable',
  504: 'remote-server-timeout',
  505: 'not-acceptable',
  513: 'policy-violation',
  600: 'service-unavailable',
  603: 'service-unavailable',
  604: 'item-not-found',
  606: 'not-acceptable',
};

/** The stanza error condition for a SIP failure; statuses the table lacks map by their class. */
export function conditionForStatus(status: number): string {
  if (CONDITION_OF_STATUS[status]) return CONDITION_OF_STATUS[status];
  if (status < 400) return 'redirect';
  if (status < 500) return 'bad-request';
  if (status < 600) return 'internal-server-error';
  return 'service-unavailable';
}

/** The SIP status for a stanza error condition; an unknown one is undefined-condition's. */
export function statusForCondition(condition: string): number {
  return STATUS_OF_CONDITION[condition] ?? STATUS_OF_CONDITION['undefined-condition']!;
}

export interface StanzaError {
  condition: string;
  text?: string;
}

/** The defined condition and text of an error stanza. */
export function readStanzaError(stanza: xml.Element): StanzaError {
  const error = stanza.getChild('error');
  const condition = error?.getChildElements().find((child) => child.name !== 'text' && child.is(child.name, STANZAS_NS));
  const text = error?.getChildText('text', STANZAS_NS) ?? undefined;
  return { condition: condition?.name ?? 'undefined-condition', text: text || undefined };
}

/** The error reply to `stanza` (RFC 6120 §8.2): addresses swapped, same id. */
export function errorReply(stanza: Pick<xml.Element, 'name' | 'attrs'>, { condition, text }: StanzaError): xml.Element {
  return xml(
    stanza.name,
    { type: 'error', from: stanza.attrs.to, to: stanza.attrs.from, id: stanza.attrs.id },
    xml(
      'error',
      { type: CONDITION_TYPES[condition] ?? 'cancel' },
      xml(condition, { xmlns: STANZAS_NS }),
      text && xml('text', { xmlns: STANZAS_NS }, text),
    ),
  );
}
