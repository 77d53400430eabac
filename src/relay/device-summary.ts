// What an operator sees of a user's devices (RPC devices.list, `parley devices list`): the devices
// remembered and those registered, with their flows and what each has still to take.
import { deviceKey, isInstanceDevice, type DeliveryStore } from '../store/index.js';
import { formatPeer } from '../sip/index.js';
import type { Registrar } from '../registrar/registrar.js';

/** A device of a user as an operator sees it (RPC devices.list). */
export interface DeviceSummary {
  /** The instance URN, or the contact's address (URI without parameters) of a device registered without one. */
  device: string;
  instance: string | null;
  contact: string;
  userAgent: string | null;
  /** When it last registered, ISO 8601. */
  lastSeen: string;
  /** The ways it is reached now, first one first; none when it is not registered. */
  flows: Array<{ contact: string; source: string; regId: number | null; expires: number }>;
  /** Messages it has still to take. */
  pending: number;
}

/**
 * The devices of `aor`: those registering within `remember` seconds and those registered now, with
 * their flows and what each has still to take.
 */
export async function describeDevices(aor: string, store: DeliveryStore, registrar: Registrar, remember: number): Promise<DeviceSummary[]> {
  const now = Date.now();
  const [remembered, counts] = await Promise.all([store.devicesOf(aor, now - remember * 1000), store.pendingCounts(aor)]);
  const flows = new Map(registrar.flowsByDevice(registrar.lookup(aor)).map((f) => [deviceKey(f[0]!.binding), f]));
  const pending = new Map(counts.map((c) => [c.device, c.pending]));
  const summaries = new Map<string, DeviceSummary>();
  for (const device of remembered) {
    summaries.set(device.device, {
      device: device.device, instance: isInstanceDevice(device.device) ? device.device : null, contact: device.contact, userAgent: device.userAgent ?? null,
      lastSeen: new Date(device.lastSeen).toISOString(), flows: [], pending: pending.get(device.device) ?? 0,
    });
  }
  for (const [device, deviceFlows] of flows) {
    const latest = deviceFlows.reduce((a, b) => (a.binding.updatedAt >= b.binding.updatedAt ? a : b)).binding;
    const summary = summaries.get(device) ?? {
      device, instance: isInstanceDevice(device) ? device : null, contact: latest.contact, userAgent: latest.userAgent ?? null,
      lastSeen: new Date(latest.updatedAt).toISOString(), flows: [], pending: pending.get(device) ?? 0,
    };
    summary.flows = deviceFlows.map(({ binding }) => ({
      contact: binding.contact,
      source: formatPeer(binding.source),
      regId: binding.regId ?? null,
      expires: Math.max(0, Math.round((binding.expiresAt - now) / 1000)),
    }));
    summaries.set(device, summary);
  }
  return [...summaries.values()];
}
