// In-memory model of rooms and members, mirrored from the store at start and kept in step
// with it by the room service (which writes the store first).
import { escapeUser } from '../sip/index.js';
import type { RoomHistoryEntry, RoomMemberRecord, RoomRecord, RoomRole } from '../store/types.js';

export interface Member {
  username: string;
  domain: string;
  role: RoomRole;
  invited: boolean;
  nick?: string;
}

export interface Room {
  name: string;
  domain: string;
  private: boolean;
  topic?: string;
  createdAt: number;
  /** Keyed by "user@domain", in joining order. */
  members: Map<string, Member>;
  /** The last messages, oldest first; undefined until loaded from the store. */
  history?: RoomHistoryEntry[];
}

export const aorOfMember = (m: { username: string; domain: string }) => `${m.username}@${m.domain}`;
export const roomKey = (name: string, domain: string) => `${name}@${domain}`;
/** The room's address; a name taken from a command's text may hold what a URI user part must escape (`%`, spaces...). */
export const roomUri = (room: { name: string; domain: string }) => `sip:${escapeUser(room.name)}@${room.domain}`;
export const displayNick = (m: Member) => m.nick ?? m.username;

/** Members who take part in the room: everyone but those still invited. */
export function activeMembers(room: Room): Member[] {
  return [...room.members.values()].filter((m) => !m.invited);
}

export function toRecord(room: Room): RoomRecord {
  return { name: room.name, domain: room.domain, private: room.private, topic: room.topic, createdAt: room.createdAt };
}

export function toMemberRecord(room: Room, member: Member): RoomMemberRecord {
  return { roomName: room.name, roomDomain: room.domain, ...member };
}
