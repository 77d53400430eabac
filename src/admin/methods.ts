// The RPC methods: the imc module's MI commands (imc.list_rooms, imc.list_members) and statistic
// (imc.active_rooms) under their Kamailio names, room administration, a look at the server, and
// the per-user gateway's (gateway-methods.ts).
import { formatListener } from '../config/index.js';
import { RoomRefusal, type RoomService } from '../imc/index.js';
import type { Binding } from '../store/index.js';
import { formatPeer } from '../sip/index.js';
import { gatewayMethods } from './gateway-methods.js';
import { RpcError, RpcErrorCode, invalidParams, type RpcMethods } from './rpc.js';
import type { ManagedServer } from './server.js';

const ROOM = { name: 'room' };
const USER = { name: 'user' };

export function parleyMethods(parley: ManagedServer, startedAt: number): RpcMethods {
  const rooms = (): RoomService => {
    if (!parley.rooms) throw new RpcError(RpcErrorCode.REFUSED, 'chat rooms are disabled (imc.enabled is false)');
    return parley.rooms;
  };
  const membersOf = (room: string) => {
    const members = rooms().listMembers(room);
    if (!members) throw new RpcError(RpcErrorCode.REFUSED, `no room ${room}`);
    return members;
  };

  return {
    'imc.list_rooms': {
      params: [],
      call: () => rooms().listRooms().map((room) => ({ ...room, owner: membersOf(room.uri).find((m) => m.role === 'owner')?.uri ?? null })),
    },
    'imc.list_members': { params: [ROOM], call: ({ room }) => membersOf(room!) },
    'imc.active_rooms': { params: [], call: () => rooms().rooms.size },
    'imc.destroy_room': { params: [ROOM], call: ({ room }) => refusalsAsErrors(rooms().adminDestroyRoom(room!)) },
    'imc.add_member': { params: [ROOM, USER], call: ({ room, user }) => refusalsAsErrors(rooms().adminAddMember(room!, user!)) },
    'imc.remove_member': { params: [ROOM, USER], call: ({ room, user }) => refusalsAsErrors(rooms().adminRemoveMember(room!, user!)) },
    'core.status': {
      params: [],
      call: () => ({
        uptime: Math.round((Date.now() - startedAt) / 1000),
        listeners: parley.transports.bound.map(formatListener),
        domains: [...parley.domains],
        aors: parley.registrar.aorCount,
        sip: { ...parley.stack.stats },
        relay: { ...parley.relay.stats },
        imc: parley.rooms ? { rooms: parley.rooms.rooms.size, ...parley.rooms.stats } : null,
      }),
    },
    'xmpp.status': {
      params: [],
      call: () => {
        const xmpp = parley.xmpp;
        if (!xmpp) throw new RpcError(RpcErrorCode.REFUSED, 'the XMPP gateway is disabled (xmpp.enabled is false)');
        const { backend, xmpp_domain: xmppDomain, xmpp_host: host, xmpp_port: port } = parley.config.xmpp;
        return { backend, domain: xmppDomain, server: `${host}:${port}`, ...xmpp.stats, peers: xmpp.peers, presence: xmpp.presenceStats ?? null };
      },
    },
    'registrar.lookup': {
      params: [{ name: 'aor' }],
      call: ({ aor }) => {
        const key = normalizeAor(aor!);
        return { aor: `sip:${key}`, bindings: parley.registrar.lookup(key).map(describeBinding) };
      },
    },
    'users.list': {
      params: [{ name: 'domain', optional: true }],
      call: async ({ domain }) => {
        const users = await parley.store.users.list(domain?.toLowerCase());
        return users.map((user) => ({ user: `sip:${user.username}@${user.domain}`, createdAt: new Date(user.createdAt).toISOString() }));
      },
    },
    ...gatewayMethods(parley),
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

/** "sip:alice@Example.com" or "alice@example.com" -> "alice@example.com", the registrar's key. */
function normalizeAor(text: string): string {
  const bare = text.replace(/^sips?:/i, '');
  const at = bare.lastIndexOf('@');
  if (at <= 0 || at === bare.length - 1) {
    throw invalidParams(`"aor" must be user@domain, got "${text.slice(0, 80)}"`);
  }
  return `${bare.slice(0, at)}@${bare.slice(at + 1).toLowerCase()}`;
}

/** What an operator needs to know about a binding; the registrar's bookkeeping (Call-ID, CSeq, connection id) stays inside. */
function describeBinding(binding: Binding) {
  return {
    contact: binding.contact,
    expires: Math.max(0, Math.round((binding.expiresAt - Date.now()) / 1000)),
    q: binding.q,
    source: formatPeer(binding.source),
    userAgent: binding.userAgent ?? null,
    instance: binding.instance ?? null,
    regId: binding.regId ?? null,
    path: binding.path ?? null,
  };
}
