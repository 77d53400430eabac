// The devices plugin's RPC method: devices.list, every device of a user with its flows and what it has still to take.
import type { RpcMethods } from '../plugin/index.js';
import { normalizeAor } from '../registrar/rpc.js';
import { sipUriOfAor } from '../sip/index.js';
import type { DeviceDelivery } from '../relay/devices.js';

export function devicesMethods(devices: () => DeviceDelivery): RpcMethods {
  return {
    'devices.list': {
      params: [{ name: 'user' }],
      call: async ({ user }) => {
        const aor = normalizeAor(user!, 'user');
        return { aor: sipUriOfAor(aor), devices: await devices().describe(aor) };
      },
    },
  };
}
