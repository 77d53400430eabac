// The room model (Kamailio's imc_mng): rooms and their members in memory, mirrored from the store
// at start and kept in step with it (the store is written first, so what a command confirmed
// survives a crash), and the rules of membership: names, capacity, who joins how, who removes whom.
import { type SipUri, UriError, escapeUser, parseTypedAddress, sipAddress, sipUriOfAor, splitAor } from '../sip/index.js';
import type { RoomHistoryEntry, RoomMemberRecord, RoomRecord, RoomRole, RoomStore } from '../store/types.js';

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

/** A room by its address, whether or not it exists. */
export interface RoomRef {
  name: string;
  domain: string;
}

/** A refusal the sender is told about; nothing was changed. */
export class Refusal extends Error {}

export const aorOfMember = (m: { username: string; domain: string }) => `${m.username}@${m.domain}`;
export const roomKey = (name: string, domain: string) => `${name}@${domain}`;
/** The room's address; a name taken from a command's text may hold what a URI user part must escape (`%`, spaces...). */
export const roomUri = (room: RoomRef) => sipAddress(room.name, room.domain);
/** A member's nick, else the user part of its address: unescaped when it is a nick setNick would take, else as its URI writes it. */
export const displayNick = (m: Member) => m.nick ?? (isShowableNick(m.username) ? m.username : escapeUser(m.username));

/** Members who take part in the room: everyone but those still invited. */
export function activeMembers(room: Room): Member[] {
  return [...room.members.values()].filter((m) => !m.invited);
}

/** The AORs of the active members but `except`, read off the members' keys: a post to a large room makes no list of members first, nor a string each. */
export function activeMemberAors(room: Room, except: string): string[] {
  const aors: string[] = [];
  for (const [aor, member] of room.members) if (!member.invited && aor !== except) aors.push(aor);
  return aors;
}

export function toRecord(room: Room): RoomRecord {
  return { name: room.name, domain: room.domain, private: room.private, topic: room.topic, createdAt: room.createdAt };
}

export function toMemberRecord(room: Room, member: Member): RoomMemberRecord {
  return { roomName: room.name, roomDomain: room.domain, ...member };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The regular expression source of a "chat-*" style pattern. */
function globSource(glob: string): string {
  return glob.split('*').map(escapeRegExp).join('.*');
}

export interface RoomRules {
  /** The local domains, where rooms live. */
  domains: ReadonlySet<string>;
  manager: string;
  /** Glob of room user parts, e.g. "chat-*". */
  roomPattern: string;
  maxMembers: number;
  maxRoomsPerUser: number;
  /** Whether a room may not take the address of a known user (imc check_on_create). */
  checkOnCreate: boolean;
}

export const MAX_NAME = 64;
const MAX_NICK = 32;
const MAX_TOPIC = 256;
/**
 * What no room name or nick holds, though a user part may, escaped: control characters and line
 * separators would break the lines the room sends, and bidirectional overrides would make them read
 * as something else (a nick that shows as another, a name whose text runs backwards).
 */
const UNSHOWABLE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Whether `nick` can stand as "<nick>" before a line and quoted as a display name. */
function isShowableNick(nick: string): boolean {
  return !/[<>"\\]/.test(nick) && !UNSHOWABLE.test(nick);
}

export class RoomModel {
  readonly rooms = new Map<string, Room>();
  /** Rooms being created: their names are taken, though not yet stored. */
  private readonly creating = new Set<string>();
  readonly domains: ReadonlySet<string>;
  private readonly namePattern: RegExp;

  constructor(
    private readonly store: RoomStore,
    private readonly rules: RoomRules,
    private readonly isKnownUser: (aor: string) => Promise<boolean>,
  ) {
    this.domains = rules.domains;
    this.namePattern = new RegExp(`^${globSource(rules.roomPattern)}$`);
  }

  async load(): Promise<void> {
    const { rooms, members } = await this.store.loadAll();
    for (const r of rooms) this.rooms.set(roomKey(r.name, r.domain), { ...r, members: new Map() });
    for (const m of members) {
      const room = this.rooms.get(roomKey(m.roomName, m.roomDomain));
      if (!room) continue;
      room.members.set(aorOfMember(m), { username: m.username, domain: m.domain, role: m.role, invited: m.invited, nick: m.nick });
    }
  }

  find(ref: RoomRef): Room | undefined {
    return this.rooms.get(roomKey(ref.name, ref.domain));
  }

  existing(ref: RoomRef): Room {
    const room = this.find(ref);
    if (!room) throw new Refusal(`no room ${roomUri(ref)}`);
    return room;
  }

  /** The sender as an active member of the room. */
  activeMember(room: Room, aor: string): Member {
    const member = room.members.get(aor);
    if (!member || member.invited) throw new Refusal(`you are not a member of ${roomUri(room)}`);
    return member;
  }

  /**
   * The room `text` names: sip:name@domain, name@domain, or a bare name of `domain`, read as a URI
   * is (its name unescaped, as a MESSAGE's Request-URI names the room; parameters left out).
   * Refused when it is no room's address.
   */
  refOf(text: string, domain: string): RoomRef {
    let uri: SipUri;
    try {
      // A room named without its domain is one of the domain the command was sent to, "sip:" before its name or not.
      uri = parseTypedAddress(text.replace(/^sips?:/i, ''), domain);
    } catch (error) {
      if (!(error instanceof UriError)) throw error;
      throw new Refusal(`"${text.slice(0, 80)}" is no room's address (${error.message.slice(0, 120)}); characters a URI cannot hold are written escaped (%20 for a space)`);
    }
    if (!this.domains.has(uri.host)) throw new Refusal(`rooms live only in ${[...this.domains].join(', ')}, not ${uri.host.slice(0, 80)}`);
    this.checkName(uri.user);
    return { name: uri.user, domain: uri.host };
  }

  /** Refuses a room name (unescaped) no room may have; every room created is checked, whichever way it was named. */
  private checkName(name: string): void {
    if (name.length === 0 || name.length > MAX_NAME) throw new Refusal(`a room name has 1 to ${MAX_NAME} characters`);
    if (UNSHOWABLE.test(name)) throw new Refusal('a room name has no control characters');
    if (name === this.rules.manager) throw new Refusal('the manager address is not a room');
    if (!this.namePattern.test(name)) throw new Refusal(`room names must match ${this.rules.roomPattern}`);
  }

  async create(ref: RoomRef, ownerAor: string, isPrivate: boolean): Promise<Room> {
    const key = roomKey(ref.name, ref.domain);
    // A room is in the map only once stored: two creations of one name in flight at once (the
    // store's write yields to the network) must not both get as far as the store.
    if (this.find(ref) || this.creating.has(key)) throw new Refusal(`${roomUri(ref)} exists already`);
    // A room created by writing to its address was named by the Request-URI, which the route matched against the pattern only.
    this.checkName(ref.name);
    this.creating.add(key);
    try {
      if (this.rules.checkOnCreate && (await this.isKnownUser(`${ref.name}@${ref.domain}`))) {
        throw new Refusal(`${roomUri(ref)} is a user's address`);
      }
      let owned = 0;
      for (const room of this.rooms.values()) if (room.members.get(ownerAor)?.role === 'owner') owned++;
      if (owned >= this.rules.maxRoomsPerUser) throw new Refusal(`you own ${owned} rooms, the most allowed`);
      const { user: username, domain } = splitAor(ownerAor);
      const room: Room = { ...ref, private: isPrivate, createdAt: Date.now(), members: new Map(), history: [] };
      const owner: Member = { username, domain, role: 'owner', invited: false };
      await this.store.createRoom(toRecord(room), toMemberRecord(room, owner));
      room.members.set(ownerAor, owner);
      this.rooms.set(key, room);
      return room;
    } finally {
      this.creating.delete(key);
    }
  }

  /** Whether joining by oneself is closed to this user: a private room takes invited users only. */
  needsInvitation(room: Room, aor: string): boolean {
    return room.private && !room.members.has(aor);
  }

  /** The invitation of a user joining by oneself, if any; refused to members and, in a private room, to the uninvited. */
  joining(room: Room, aor: string): Member | undefined {
    const member = room.members.get(aor);
    if (member && !member.invited) throw new Refusal(`you are already a member of ${roomUri(room)}`);
    if (this.needsInvitation(room, aor)) throw new Refusal(`${roomUri(room)} is private: you need an invitation`);
    return member;
  }

  invitation(room: Room, aor: string): Member {
    const member = room.members.get(aor);
    if (!member?.invited) throw new Refusal(`you have no invitation to ${roomUri(room)}`);
    return member;
  }

  /** Makes a user an active member: new (if the room has space), or one whose invitation is accepted. */
  async admit(room: Room, aor: string, invitation: Member | undefined): Promise<Member> {
    if (!invitation) this.checkSpace(room);
    const { user: username, domain } = splitAor(aor);
    return this.put(room, aor, invitation ? { ...invitation, invited: false } : { username, domain, role: 'member', invited: false });
  }

  /** Adds a user who is not in the room yet, as a member or as invited. */
  async enlist(room: Room, user: { username: string; domain: string }, invited: boolean): Promise<Member> {
    const aor = aorOfMember(user);
    const existing = room.members.get(aor);
    if (existing) throw new Refusal(`${sipUriOfAor(aor)} is ${existing.invited ? 'invited' : 'a member'} already`);
    this.checkSpace(room);
    return this.put(room, aor, { ...user, role: 'member', invited });
  }

  /** Who may remove whom: the owner and admins remove members, only the owner removes admins, nobody the owner. */
  checkRemoval(actor: Member, member: Member): void {
    if (member.role === 'owner') throw new Refusal('the owner cannot be removed');
    if (member.role === 'admin' && actor.role !== 'owner') throw new Refusal('only the owner may remove an admin');
  }

  async remove(room: Room, member: Member): Promise<void> {
    await this.store.removeMember(room.name, room.domain, member.username, member.domain);
    room.members.delete(aorOfMember(member));
  }

  async setRole(room: Room, aor: string, role: Exclude<RoomRole, 'owner'>): Promise<Member> {
    const member = room.members.get(aor);
    if (!member || member.invited) throw new Refusal(`${sipUriOfAor(aor)} is not a member of ${roomUri(room)}`);
    if (member.role === 'owner') throw new Refusal("the owner's role cannot change");
    return this.put(room, aor, { ...member, role });
  }

  async setNick(room: Room, aor: string, nick: string): Promise<Member> {
    if (nick.length > MAX_NICK || !isShowableNick(nick)) {
      throw new Refusal(`a nick has at most ${MAX_NICK} characters and no <, >, " or control characters`);
    }
    for (const [other, member] of room.members) {
      if (other !== aor && displayNick(member).toLowerCase() === nick.toLowerCase()) throw new Refusal(`"${nick}" is taken in this room`);
    }
    return this.put(room, aor, { ...room.members.get(aor)!, nick });
  }

  async setTopic(room: Room, topic: string): Promise<void> {
    if (topic.length > MAX_TOPIC) throw new Refusal(`a topic has at most ${MAX_TOPIC} characters`);
    await this.store.setTopic(room.name, room.domain, topic);
    room.topic = topic;
  }

  async destroy(room: Room): Promise<void> {
    await this.store.destroyRoom(room.name, room.domain);
    this.rooms.delete(roomKey(room.name, room.domain));
  }

  /** The owner and the admins: those who may invite. */
  moderators(room: Room): Member[] {
    return activeMembers(room).filter((m) => m.role !== 'member');
  }

  publicRooms(domain: string): Room[] {
    return [...this.rooms.values()].filter((r) => r.domain === domain && !r.private);
  }

  private checkSpace(room: Room): void {
    if (room.members.size >= this.rules.maxMembers) throw new Refusal(`${roomUri(room)} is full (${this.rules.maxMembers} members)`);
  }

  private async put(room: Room, aor: string, member: Member): Promise<Member> {
    await this.store.putMember(toMemberRecord(room, member));
    room.members.set(aor, member);
    return member;
  }
}
