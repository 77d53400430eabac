// Prometheus metrics. The counts already live in the stats objects of the stack, the relay, the room
// service and the gateways; every metric reads its value from them when scraped, so the message
// path pays nothing.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { activeMembers } from '../imc/rooms.js';
import { internalErrors } from '../log/index.js';
import { REFUSAL_REASONS } from '../sip/index.js';
import type { ManagedServer } from './server.js';

/** Peer states in which stanzas flow: a component online, an s2s stream authenticated or ready. */
const USABLE_PEER_STATES = new Set(['online', 'authenticated', 'ready']);

export function createMetricsRegistry(parley: ManagedServer): Registry {
  // A registry of its own: the process-wide default one would mix servers started in one process.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  // A counter cannot be set, only increased: it is zeroed and raised to the total it mirrors.
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });

  counter('parley_sip_requests_in_total', 'SIP requests received, retransmissions included.', () => parley.stack.stats.requestsIn);
  counter('parley_sip_responses_out_total', 'SIP responses sent.', () => parley.stack.stats.responsesOut);
  counter('parley_sip_malformed_total', 'SIP messages dropped or refused as malformed.', () => parley.stack.stats.malformed);
  counter('parley_sip_overloaded_total', 'Requests answered 503 because sip.max_transactions were in progress.', () => parley.stack.stats.overloaded);
  new Counter({
    name: 'parley_sip_refused_total',
    help: 'SIP traffic turned away, by reason: rate (a message over sip.rate_limit), connections and connections_per_ip (a connection over sip.max_connections or sip.max_connections_per_ip), message_timeout (a connection closed for a message slower than sip.message_timeout), send_buffer (a connection destroyed for more than sip.max_send_buffer bytes its peer did not read).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of REFUSAL_REASONS) this.inc({ reason }, parley.transports.stats.refused[reason]);
    },
  });
  gauge('parley_sip_connections', 'Open TCP, TLS and WebSocket connections.', () => parley.transports.connectionCount);
  counter('parley_relay_relayed_total', 'Requests a registered contact of a local user accepted.', () => parley.relay.stats.relayed);
  counter('parley_relay_stored_total', 'MESSAGE requests stored for offline delivery.', () => parley.relay.stats.stored);
  counter('parley_relay_delivered_total', 'Stored messages delivered after the recipient registered.', () => parley.relay.stats.delivered);
  new Counter({
    name: 'parley_internal_errors_total',
    help: 'Errors that escaped every handler (unhandled rejections), by the Parley module they came from; each was logged. Counted by the last resort of `parley start` (or reportInternalError).',
    labelNames: ['module'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [module, count] of internalErrors) this.inc({ module }, count);
    },
  });
  gauge('parley_registrar_aors', 'Addresses-of-record with bindings.', () => parley.registrar.aorCount);

  const rooms = parley.rooms;
  if (rooms) {
    gauge('parley_imc_active_rooms', 'Chat rooms (the imc active_rooms statistic).', () => rooms.rooms.size);
    gauge('parley_imc_members', 'Members of all chat rooms, invited ones not counted.', () => {
      let members = 0;
      for (const room of rooms.rooms.values()) members += activeMembers(room).length;
      return members;
    });
    counter('parley_imc_messages_in_total', 'Messages posted to chat rooms.', () => rooms.stats.messagesIn);
    counter('parley_imc_messages_out_total', 'Room messages delivered to members.', () => rooms.stats.messagesOut);
    counter('parley_imc_deliveries_failed_total', 'Room messages a member could not be given.', () => rooms.stats.deliveriesFailed);
    gauge('parley_imc_pending', 'Room posts acknowledged and not yet delivered to every member (kept in the outbox; imc.max_pending bounds them).', () => rooms.pendingPosts);
  }

  const xmpp = parley.xmpp;
  if (xmpp) {
    gauge('parley_xmpp_connected', 'Whether the XMPP link (component stream) is up: 1 or 0.', () => (xmpp.stats.state === 'online' ? 1 : 0));
    counter('parley_xmpp_stanzas_in_total', 'Stanzas received from the XMPP server.', () => xmpp.stats.stanzasIn);
    counter('parley_xmpp_stanzas_out_total', 'Stanzas sent to the XMPP server.', () => xmpp.stats.stanzasOut);
    gauge('parley_xmpp_queued', 'Stanzas waiting for the XMPP link.', () => xmpp.stats.queued);
    gauge('parley_xmpp_unconfirmed', 'Stanzas written to the XMPP server and not yet confirmed by it (written again after a reconnection).', () => xmpp.stats.unconfirmed);
    new Gauge({
      name: 'parley_xmpp_peer_up',
      help: 'Streams with XMPP servers (the component server, or s2s peer domains by direction): 1 when usable, 0 otherwise.',
      labelNames: ['domain', 'direction'],
      registers: [registry],
      collect() {
        this.reset();
        for (const peer of xmpp.peers) {
          this.set({ domain: peer.domain, direction: peer.direction }, USABLE_PEER_STATES.has(peer.state) ? 1 : 0);
        }
      },
    });
    new Counter({
      name: 'parley_xmpp_errors_total',
      help: 'XMPP errors, by kind: link (stream and connection errors), stanza (stanza errors returned for messages from SIP), expired (messages from SIP that never reached the XMPP server).',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const stats = xmpp.stats;
        this.reset();
        this.inc({ kind: 'link' }, stats.linkErrors);
        this.inc({ kind: 'stanza' }, stats.stanzaErrors);
        this.inc({ kind: 'expired' }, stats.expired);
      },
    });
  }

  const gateway = parley.gateway;
  if (gateway) {
    new Gauge({
      name: 'parley_gateway_sessions',
      help: 'Sessions of linked accounts of the per-user gateway, by network and state (connecting, online, stopped, failed).',
      labelNames: ['network', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [network, states] of Object.entries(gateway.stats.networks)) {
          for (const [state, count] of Object.entries(states)) this.set({ network, state }, count);
        }
      },
    });
    counter('parley_gateway_messages_to_network_total', 'SIP MESSAGEs the per-user gateway took to a network.', () => gateway.stats.sipToNetwork);
    counter('parley_gateway_messages_to_sip_total', 'Messages from a network the per-user gateway delivered or stored for a SIP user.', () => gateway.stats.networkToSip);
    counter('parley_gateway_commands_total', 'Commands (#link, #accounts...) sent to the per-user gateway.', () => gateway.stats.commands);
    counter('parley_gateway_refused_total', 'SIP requests the per-user gateway refused.', () => gateway.stats.refused);
    counter('parley_gateway_undelivered_total', 'Messages from SIP that never reached their network (the sender was told).', () => gateway.stats.undelivered);
    gauge('parley_gateway_pending', 'MESSAGEs to a network answered 202 and not yet taken by their session (kept in the outbox; gateway.max_queue bounds them per account).', () => gateway.pendingMessages);
    counter('parley_gateway_account_failures_total', 'Linked accounts a network refused (wrong password...), which were then disabled.', () => gateway.stats.accountFailures);
  }
  return registry;
}
