// What the admin endpoint reports of the core itself: core.status (with each plugin's fields),
// users.list, and the SIP, transport and internal-error metrics.
import { formatListener } from '../config/index.js';
import { internalErrors } from '../log/index.js';
import { REFUSAL_REASONS, sipAddress } from '../sip/index.js';
import type { Metric, PluginContext, PluginHealth, RpcMethods } from '../plugin/index.js';

export function coreMethods(context: PluginContext, startedAt: number, statusFields: () => Record<string, unknown>): RpcMethods {
  return {
    'core.status': {
      params: [],
      call: () => ({
        uptime: Math.round((Date.now() - startedAt) / 1000),
        listeners: context.transports.bound.map(formatListener),
        domains: [...context.domains],
        sip: { ...context.stack.stats },
        ...statusFields(),
      }),
    },
    'users.list': {
      params: [{ name: 'domain', optional: true }],
      call: async ({ domain }) => {
        const users = await context.store.users.list(domain?.toLowerCase());
        return users.map((user) => ({ user: sipAddress(user.username, user.domain), createdAt: new Date(user.createdAt).toISOString() }));
      },
    },
  };
}

export function coreMetrics(context: PluginContext): Metric[] {
  const { stack, transports } = context;
  const counter = (name: string, help: string, read: () => number): Metric => ({ kind: 'counter', name, help, read });
  return [
    counter('parley_sip_requests_in_total', 'SIP requests received, retransmissions included.', () => stack.stats.requestsIn),
    counter('parley_sip_responses_out_total', 'SIP responses sent.', () => stack.stats.responsesOut),
    counter('parley_sip_malformed_total', 'SIP messages dropped or refused as malformed.', () => stack.stats.malformed),
    counter('parley_sip_answered_statelessly_total', 'Requests answered statelessly (reply and reject routes; a retransmission is answered, and counted, again).', () => stack.stats.answeredStatelessly),
    counter('parley_sip_overloaded_total', 'Requests answered 503 because sip.max_transactions were in progress.', () => stack.stats.overloaded),
    {
      kind: 'counter',
      name: 'parley_sip_refused_total',
      help: 'SIP traffic turned away, by reason: rate (a message over sip.rate_limit), connections, connections_per_ip and pending_connections_per_ip (a connection over sip.max_connections, sip.max_connections_per_ip or sip.max_pending_connections_per_ip), message_timeout (a connection closed for a message slower than sip.message_timeout), send_buffer (a connection destroyed for more than sip.max_send_buffer bytes its peer did not read).',
      labelNames: ['reason'],
      read: () => REFUSAL_REASONS.map((reason) => ({ labels: { reason }, value: transports.stats.refused[reason] })),
    },
    { kind: 'gauge', name: 'parley_sip_connections', help: 'Open TCP, TLS and WebSocket connections.', read: () => transports.connectionCount },
    {
      kind: 'counter',
      name: 'parley_internal_errors_total',
      help: 'Errors that escaped every handler (unhandled rejections), by the Parley module they came from; each was logged. Counted by the last resort of `parley start` (or reportInternalError).',
      labelNames: ['module'],
      read: () => [...internalErrors].map(([module, count]) => ({ labels: { module }, value: count })),
    },
  ];
}

/** The store's health, reported beside the plugins': degraded while it is unavailable. */
export function storeHealth(context: PluginContext): PluginHealth {
  const outage = context.store.outage();
  if (!outage) return { status: 'ok' };
  return { status: 'degraded', reason: `the store is unavailable since ${new Date(outage.since).toISOString()}: ${outage.reason}` };
}
