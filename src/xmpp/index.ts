// The XMPP gateway (the xmpp module): SIP MESSAGE <-> XMPP <message/>, as an XEP-0114 component.
export { XmppGateway, type XmppStats } from './gateway.js';
export { xmppGatewayOptions, gatewayDomainOf, type XmppGatewayOptions } from './options.js';
export { addressMapping, escapeLocal, unescapeLocal, parseJid, formatJid, type AddressMapping, type Jid } from './addresses.js';
export type { LinkState } from './backend.js';
