// The per-user gateway's metrics, read from its stats when scraped.
import type { Metric } from '../plugin/index.js';
import type { GatewayService } from './service.js';

export function gatewayMetrics(gateway: () => GatewayService): Metric[] {
  const counter = (name: string, help: string, read: () => number): Metric => ({ kind: 'counter', name, help, read });
  return [
    {
      kind: 'gauge',
      name: 'parley_gateway_sessions',
      help: 'Sessions of linked accounts of the per-user gateway, by network and state (connecting, online, stopped, failed).',
      labelNames: ['network', 'state'],
      read: () => Object.entries(gateway().stats.networks).flatMap(([network, states]) => Object.entries(states).map(([state, count]) => ({ labels: { network, state }, value: count }))),
    },
    counter('parley_gateway_messages_to_network_total', 'SIP MESSAGEs the per-user gateway took to a network.', () => gateway().stats.sipToNetwork),
    counter('parley_gateway_messages_to_sip_total', 'Messages from a network the per-user gateway delivered or stored for a SIP user.', () => gateway().stats.networkToSip),
    counter('parley_gateway_commands_total', 'Commands (#link, #accounts...) sent to the per-user gateway.', () => gateway().stats.commands),
    counter('parley_gateway_refused_total', 'SIP requests the per-user gateway refused.', () => gateway().stats.refused),
    counter('parley_gateway_undelivered_total', 'Messages from SIP that never reached their network (the sender was told).', () => gateway().stats.undelivered),
    { kind: 'gauge', name: 'parley_gateway_pending', help: 'MESSAGEs to a network answered 202 and not yet taken by their session (kept in the outbox; gateway.max_queue bounds them per account).', read: () => gateway().pendingMessages },
    counter('parley_gateway_account_failures_total', 'Linked accounts a network refused (wrong password...), which were then disabled.', () => gateway().stats.accountFailures),
  ];
}
