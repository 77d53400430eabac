// Users' devices as an operator sees them: RPC devices.list (`parley devices list USER`). Delivery
// to each device is the relay's (relay/devices.ts), which provides it as DEVICE_DELIVERY; this
// plugin only shows it, under its own name like every plugin's methods.
import { DEVICE_DELIVERY } from '../relay/plugin.js';
import type { DeviceDelivery } from '../relay/devices.js';
import type { ParleyPlugin } from '../plugin/index.js';
import { devicesMethods } from './rpc.js';

export function devicesPlugin(): ParleyPlugin {
  let devices: DeviceDelivery | undefined;
  return {
    name: 'devices',
    requires: [DEVICE_DELIVERY],
    start(context) {
      devices = context.require(DEVICE_DELIVERY);
    },
    rpc: () => devicesMethods(() => devices!),
  };
}
