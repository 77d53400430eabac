// The room service's metrics, read from its stats when scraped.
import type { Metric } from '../plugin/index.js';
import { activeMembers } from './rooms.js';
import type { RoomService } from './service.js';

export function roomMetrics(service: () => RoomService): Metric[] {
  return [
    { kind: 'gauge', name: 'parley_imc_active_rooms', help: 'Chat rooms (the imc active_rooms statistic).', read: () => service().rooms.size },
    {
      kind: 'gauge',
      name: 'parley_imc_members',
      help: 'Members of all chat rooms, invited ones not counted.',
      read: () => {
        let members = 0;
        for (const room of service().rooms.values()) members += activeMembers(room).length;
        return members;
      },
    },
    { kind: 'counter', name: 'parley_imc_messages_in_total', help: 'Messages posted to chat rooms.', read: () => service().stats.messagesIn },
    { kind: 'counter', name: 'parley_imc_messages_out_total', help: 'Room messages delivered to members.', read: () => service().stats.messagesOut },
    { kind: 'counter', name: 'parley_imc_deliveries_failed_total', help: 'Room messages a member could not be given.', read: () => service().stats.deliveriesFailed },
    { kind: 'gauge', name: 'parley_imc_pending', help: 'Room posts acknowledged and not yet delivered to every member (kept in the outbox; imc.max_pending bounds them).', read: () => service().pendingPosts },
  ];
}
