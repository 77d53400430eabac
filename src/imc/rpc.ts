// The room service's RPC methods: the imc module's MI commands (imc.list_rooms, imc.list_members)
// and statistic (imc.active_rooms) under their Kamailio names, and room administration.
import { RpcError, RpcErrorCode, type RpcMethods } from '../plugin/index.js';
import { RoomRefusal, type RoomService } from './service.js';

const ROOM = { name: 'room' };
const USER = { name: 'user' };

export function roomMethods(service: () => RoomService): RpcMethods {
  const membersOf = (room: string) => {
    const members = service().listMembers(room);
    if (!members) throw new RpcError(RpcErrorCode.REFUSED, `no room ${room}`);
    return members;
  };
  return {
    'imc.list_rooms': {
      params: [],
      call: () => service().listRooms().map((room) => ({ ...room, owner: membersOf(room.uri).find((m) => m.role === 'owner')?.uri ?? null })),
    },
    'imc.list_members': { params: [ROOM], call: ({ room }) => membersOf(room!) },
    'imc.active_rooms': { params: [], call: () => service().rooms.size },
    'imc.destroy_room': { params: [ROOM], call: ({ room }) => refusalsAsErrors(service().adminDestroyRoom(room!)) },
    'imc.add_member': { params: [ROOM, USER], call: ({ room, user }) => refusalsAsErrors(service().adminAddMember(room!, user!)) },
    'imc.remove_member': { params: [ROOM, USER], call: ({ room, user }) => refusalsAsErrors(service().adminRemoveMember(room!, user!)) },
  };
}

/** Room commands refuse what users are told about; a caller of the RPC gets the same message. */
async function refusalsAsErrors<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof RoomRefusal) throw new RpcError(RpcErrorCode.REFUSED, error.message);
    throw error;
  }
}
