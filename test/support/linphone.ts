// Message bodies as Linphone writes them (CPIM with IMDN headers, RFC 5438), and how tests read
// the IMDNs Parley sends.
import { formatCpim, parseCpim, readImdn } from '../../src/bridge/index.js';
import type { SipMessage } from '../../src/sip/index.js';

/** A MESSAGE body as Linphone writes one: CPIM with IMDN headers around `contentType` content. */
export function linphoneCpim(from: string, to: string, headers: Array<[string, string]>, contentType: string, content: string, disposition?: string): Buffer {
  return formatCpim({
    headers: [['From', `<${from}>`], ['To', `<${to}>`], ['DateTime', new Date().toISOString()], ['NS', 'imdn <urn:ietf:params:imdn>'], ...headers].map(([name, value]) => ({ name, value })),
    contentHeaders: [{ name: 'Content-Type', value: contentType }, ...(disposition ? [{ name: 'Content-Disposition', value: disposition }] : [])],
    content: Buffer.from(content),
  });
}

/** The IMDN Linphone sends about the message `messageId`. */
export function linphoneImdn(from: string, to: string, messageId: string, disposition: 'delivered' | 'displayed'): Buffer {
  const [element, status] = disposition === 'delivered' ? ['delivery-notification', 'delivered'] : ['display-notification', 'displayed'];
  const imdn = `<?xml version="1.0" encoding="UTF-8"?><imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>${messageId}</message-id><datetime>${new Date().toISOString()}</datetime><${element}><status><${status}/></status></${element}></imdn>`;
  return linphoneCpim(from, to, [['imdn.Message-ID', `n-${Math.random().toString(36).slice(2)}`]], 'message/imdn+xml', imdn, 'notification');
}

export const contentTypeOf = (request: SipMessage) => (request.get('content-type') ?? '').toLowerCase();
/** The notification in an IMDN MESSAGE, if it is one. */
export function imdnIn(request: SipMessage) {
  if (!contentTypeOf(request).startsWith('message/cpim')) return undefined;
  const cpim = parseCpim(request.body);
  return readImdn(cpim.content.toString());
}
