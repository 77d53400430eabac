// The link to XMPP the configuration asks for (backend.ts says what either gives the gateway).
import type { Logger } from 'pino';
import type { XmppLink } from './backend.js';
import { ComponentLink } from './link.js';
import type { XmppGatewayOptions } from './options.js';
import { S2sLink } from './s2s/link.js';

export function createLink(options: XmppGatewayOptions, log: Logger): XmppLink {
  if (options.backend === 'server') {
    if (!options.server) throw new Error('xmpp.backend server: no s2s options');
    return new S2sLink(options.server, log);
  }
  return new ComponentLink(options.link, log);
}
