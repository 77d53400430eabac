// The XMPP gateway's metrics, read from its stats and peers when scraped.
import type { Metric } from '../plugin/index.js';
import type { XmppGateway } from './gateway.js';

/** Peer states in which stanzas flow: a component online, an s2s stream authenticated or ready. */
const USABLE_PEER_STATES = new Set(['online', 'authenticated', 'ready']);

export function xmppMetrics(gateway: () => XmppGateway): Metric[] {
  return [
    { kind: 'gauge', name: 'parley_xmpp_connected', help: 'Whether the XMPP link (component stream) is up: 1 or 0.', read: () => (gateway().stats.state === 'online' ? 1 : 0) },
    { kind: 'counter', name: 'parley_xmpp_stanzas_in_total', help: 'Stanzas received from the XMPP server.', read: () => gateway().stats.stanzasIn },
    { kind: 'counter', name: 'parley_xmpp_stanzas_out_total', help: 'Stanzas sent to the XMPP server.', read: () => gateway().stats.stanzasOut },
    { kind: 'gauge', name: 'parley_xmpp_queued', help: 'Stanzas waiting for the XMPP link.', read: () => gateway().stats.queued },
    { kind: 'gauge', name: 'parley_xmpp_unconfirmed', help: 'Stanzas written to the XMPP server and not yet confirmed by it (written again after a reconnection).', read: () => gateway().stats.unconfirmed },
    {
      kind: 'gauge',
      name: 'parley_xmpp_peer_up',
      help: 'Streams with XMPP servers (the component server, or s2s peer domains by direction): 1 when usable, 0 otherwise.',
      labelNames: ['domain', 'direction'],
      read: () => gateway().peers.map((peer) => ({ labels: { domain: peer.domain, direction: peer.direction }, value: USABLE_PEER_STATES.has(peer.state) ? 1 : 0 })),
    },
    {
      kind: 'counter',
      name: 'parley_xmpp_errors_total',
      help: 'XMPP errors, by kind: link (stream and connection errors), stanza (stanza errors returned for messages from SIP), expired (messages from SIP that never reached the XMPP server).',
      labelNames: ['kind'],
      read: () => {
        const stats = gateway().stats;
        return [
          { labels: { kind: 'link' }, value: stats.linkErrors },
          { labels: { kind: 'stanza' }, value: stats.stanzaErrors },
          { labels: { kind: 'expired' }, value: stats.expired },
        ];
      },
    },
  ];
}
