// The relay as a plugin: the `relay` handler (MESSAGE to local users, stored while they are
// offline; foreign domains through the outbound proxy), and RELAY, through which every other
// plugin sends into SIP.
import { realmFor } from '../config/index.js';
import { REGISTRAR } from '../registrar/plugin.js';
import { PUSH } from '../push/plugin.js';
import { serviceKey, type ParleyPlugin } from '../plugin/index.js';
import { Relay } from './relay.js';
import type { DeviceDelivery } from './devices.js';

export const RELAY = serviceKey<Relay>('relay');
/** Delivery to each device of a user, what it has still to take (the devices plugin shows it). */
export const DEVICE_DELIVERY = serviceKey<DeviceDelivery>('device-delivery');

export function relayPlugin(): ParleyPlugin {
  let relay: Relay | undefined;
  const started = (): Relay => relay!;
  return {
    name: 'relay',
    requires: [REGISTRAR],
    uses: [PUSH],
    provides: [RELAY, DEVICE_DELIVERY],
    handlers: [{ name: 'relay', methods: ['MESSAGE'], handle: (request) => started().handle(request) }],
    start(context) {
      const config = context.config;
      relay = new Relay(
        context.stack,
        context.require(REGISTRAR),
        context.store.offline,
        context.store.deliveries,
        {
          domains: new Set(context.domains),
          realms: new Set([...context.domains].map((domain) => realmFor(config, domain))),
          outboundProxy: config.relay.outbound_proxy ?? undefined,
          foreignDomainStatus: config.relay.foreign_domain_status,
          maxBody: config.relay.max_body,
          forkTimeout: config.relay.fork_timeout,
          isKnownUser: context.isKnownUser,
          offline: { enabled: config.offline.enabled, maxPerUser: config.offline.max_per_user, expires: config.offline.expires },
          deliveryWindow: { stream: config.relay.delivery_window, udp: config.relay.delivery_window_udp },
          devices: { remember: config.devices.remember, acceptTimeout: config.relay.accept_timeout, redeliveryBackoff: config.relay.redelivery_backoff, push: context.find(PUSH) },
          syncSent: { enabled: config.relay.sync_sent, domains: config.relay.sync_sent_domains },
          overload: config.relay.overload_backlog === null ? undefined : { receiveBacklog: context.transports.receiveBacklog, refuseAt: config.relay.overload_backlog },
        },
        context.log,
      );
      context.provide(RELAY, relay);
      context.provide(DEVICE_DELIVERY, relay.devices);
    },
    serve: () => started().start(),
    stop: () => relay?.stop(),
    metrics: () => [
      { kind: 'counter', name: 'parley_relay_relayed_total', help: 'Requests a registered contact of a local user accepted.', read: () => started().stats.relayed },
      { kind: 'counter', name: 'parley_relay_stored_total', help: 'MESSAGE requests stored for offline delivery.', read: () => started().stats.stored },
      { kind: 'gauge', name: 'parley_relay_pending_deliveries', help: 'Stored messages waiting for a device of their recipient, one per device.', read: () => started().devices.stats.pending },
      { kind: 'counter', name: 'parley_relay_overloaded_total', help: 'MESSAGE requests answered 503 because the UDP receive buffer was filling past relay.overload_backlog.', read: () => started().stats.overloaded },
      { kind: 'counter', name: 'parley_relay_delivered_total', help: 'Stored messages delivered after the recipient registered.', read: () => started().stats.delivered },
    ],
    status: () => ({ relay: { ...started().stats } }),
    health: () => {
      const warnings = started().backlogWarnings();
      return warnings.length === 0 ? { status: 'ok' } : { status: 'degraded', reason: warnings.join('; ') };
    },
  };
}
