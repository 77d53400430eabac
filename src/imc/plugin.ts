// The room service as a plugin: MESSAGEs to the manager and to room addresses of the served
// domains, the imc.* RPC methods and metrics, and ROOMS.
import { RELAY } from '../relay/plugin.js';
import { serviceKey, type ParleyPlugin } from '../plugin/index.js';
import { roomMetrics } from './metrics.js';
import { roomMethods } from './rpc.js';
import { parseExtraHeaders } from './fanout.js';
import { RoomService } from './service.js';

export const ROOMS = serviceKey<RoomService>('rooms');

export function roomsPlugin(): ParleyPlugin {
  let rooms: RoomService | undefined;
  const started = (): RoomService => rooms!;
  return {
    name: 'imc',
    section: { key: 'imc', enabled: (config) => config.imc.enabled, disabled: 'chat rooms are disabled' },
    requires: [RELAY],
    provides: [ROOMS],
    routes: (config) => [{ methods: ['MESSAGE'], domain: { served: true }, user: { names: [config.imc.manager], globs: [config.imc.room_pattern] }, handler: 'imc' }],
    handlers: [{ name: 'imc', methods: ['MESSAGE'], handle: (request) => started().handle(request) }],
    async start(context) {
      const config = context.config;
      const imc = config.imc;
      rooms = new RoomService(
        await context.store.rooms({ rooms: imc.rooms_table, members: imc.members_table }),
        context.store.outbox,
        context.require(RELAY),
        context.isKnownUser,
        {
          domains: new Set(context.domains),
          manager: imc.manager,
          roomPattern: imc.room_pattern,
          cmdStartChar: imc.cmd_start_char,
          createOnJoin: imc.create_on_join,
          checkOnCreate: imc.check_on_create,
          outboundProxy: imc.outbound_proxy ?? undefined,
          extraHeaders: parseExtraHeaders(imc.extra_hdrs),
          history: imc.history,
          cpim: imc.cpim,
          maxMembers: imc.max_members,
          maxRoomsPerUser: imc.max_rooms_per_user,
          maxBody: imc.max_body,
          maxRate: imc.max_rate,
          rateBurst: imc.rate_burst,
          requireIdentity: config.auth.policy === 'required',
          maxBacklog: imc.max_backlog,
          maxPending: imc.max_pending,
        },
        context.log,
      );
      context.provide(ROOMS, rooms);
      await rooms.start();
    },
    // The posts confirmed before the last stop (or kill) and not delivered then; once SIP is up.
    serve: () => started().deliverPending(),
    stop: () => rooms?.stop(),
    rpc: () => roomMethods(started),
    metrics: () => roomMetrics(started),
    status: () => ({ imc: { rooms: started().rooms.size, ...started().stats } }),
  };
}
