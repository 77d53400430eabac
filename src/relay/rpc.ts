// The relay's RPC method: devices.list, every device of a user with its flows and what it has still to take.
import type { RpcMethods } from '../plugin/index.js';
import { normalizeAor } from '../registrar/rpc.js';
import type { Relay } from './relay.js';

export function relayMethods(relay: () => Relay): RpcMethods {
  return {
    'devices.list': {
      params: [{ name: 'user' }],
      call: async ({ user }) => {
        const aor = normalizeAor(user!, 'user');
        return { aor: `sip:${aor}`, devices: await relay().devices.describe(aor) };
      },
    },
  };
}
