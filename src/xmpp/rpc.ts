// The XMPP gateway's RPC method: xmpp.status, its link, counts and peers.
import type { RpcMethods } from '../plugin/index.js';
import type { Config } from '../config/index.js';
import type { XmppGateway } from './gateway.js';

export function xmppMethods(gateway: () => XmppGateway, config: Config['xmpp']): RpcMethods {
  return {
    'xmpp.status': {
      params: [],
      call: () => {
        const xmpp = gateway();
        const { backend, xmpp_domain: xmppDomain, xmpp_host: host, xmpp_port: port } = config;
        return { backend, domain: xmppDomain, server: `${host}:${port}`, ...xmpp.stats, peers: xmpp.peers, presence: xmpp.presenceStats ?? null };
      },
    },
  };
}
