// The command table (Kamailio's imc_cmd): the #command language of the rooms, one line, a name,
// whitespace-separated arguments. Each command is an entry: its name and aliases (those of the
// original imc module and of current Kamailio), argument syntax, help text, who may run it, and its
// handler. A command's effect is committed to the store before it is confirmed.
import { parseTypedAddress, sipUriOfAor, UriError } from '../sip/index.js';
import type { RoomRole } from '../store/index.js';
import type { RoomFanOut } from './fanout.js';
import type { RoomHistory } from './history.js';
import {
  type Member, type Room, type RoomModel, type RoomRef, MAX_NAME, Refusal, activeMembers, aorOfMember, displayNick, roomUri,
} from './rooms.js';

export type CommandName =
  | 'create' | 'join' | 'invite' | 'add' | 'accept' | 'reject' | 'remove' | 'leave' | 'destroy'
  | 'members' | 'rooms' | 'help' | 'modify' | 'nick' | 'topic';

export interface Command {
  name: CommandName;
  args: string[];
  /** Everything after the command name, for free-text commands. */
  rest: string;
  syntax: string;
}

export type ParsedCommand = { ok: true; command: Command } | { ok: false; error: string };

/** The shared steps of commands and operator actions: joining with its welcome, closing a room. */
export class RoomActions {
  constructor(
    readonly model: RoomModel,
    readonly fanout: RoomFanOut,
    private readonly history: RoomHistory,
    readonly options: { cmdStartChar: string; createOnJoin: boolean },
  ) {}

  /** Makes a user an active member, tells the room and, when `welcome`, sends the user the history. */
  async admit(room: Room, aor: string, invitation: Member | undefined, welcome: boolean): Promise<void> {
    const member = await this.model.admit(room, aor, invitation);
    this.fanout.announce(room, `${displayNick(member)} (${sipUriOfAor(aor)}) has joined the room`, aor);
    if (welcome) await this.sendHistory(room, aor);
  }

  async sendHistory(room: Room, aor: string): Promise<void> {
    for (const entry of await this.history.recent(room)) this.fanout.replay(entry, aor);
  }

  /** Removes a room; the remaining members are told why. */
  async close(room: Room, reason: string): Promise<string> {
    // History rows still to be written would outlive the room's.
    await this.history.flush();
    await this.model.destroy(room);
    this.fanout.announce(room, reason);
    return `${roomUri(room)} destroyed`;
  }
}

/** Who sent a command, to which address, and what running it may use. */
export interface CommandContext {
  sender: string;
  /** Whether the sender gets replies and history (authenticated, or a registered local user). */
  answerable: boolean;
  /** Takes one from the sender's allowance of posts (imc.max_rate): false when over it. */
  takeToken(): boolean;
  /** The domain of the address the command was sent to. */
  domain: string;
  /** The room address the command was sent to; undefined when sent to the manager. */
  here: RoomRef | undefined;
  actions: RoomActions;
}

export interface CommandCall extends CommandContext {
  command: Command;
}

/** A command that acts on a room: the one its room argument names, else the one it was sent to. */
export interface RoomCall extends CommandCall {
  ref: RoomRef;
}

/** A command run by an active member of its room, of the role the command needs. */
export interface MemberCall extends RoomCall {
  room: Room;
  actor: Member;
}

/** What the sender is told, from the address the command was sent to, or from a room the command made. */
export type Answer = string | { text: string; from: Room };

interface Entry {
  name: CommandName;
  aliases: string[];
  syntax: string;
  summary: string;
  /** Arguments that must be present. */
  required: number;
  /** Most arguments; Infinity for commands taking free text. */
  max: number;
}

interface RoomlessEntry extends Entry {
  /** Acts on no room named by the table (the handler reads its arguments). */
  room: 'none';
  may: 'anyone';
  run(call: CommandCall): Promise<Answer> | Answer;
}

interface RoomEntry extends Entry {
  /** Which room it acts on: the optional argument at that index (else the room it was sent to), or only the room it was sent to. */
  room: number | 'sent-to';
}

interface OpenRoomEntry extends RoomEntry {
  /** Anyone may run it; the handler applies the room's rules. */
  may: 'anyone';
  run(call: RoomCall): Promise<Answer> | Answer;
}

interface MemberEntry extends RoomEntry {
  /** Active members of the room only. */
  may: 'member';
  run(call: MemberCall): Promise<Answer> | Answer;
}

interface ModeratorEntry extends RoomEntry {
  /** Active members of the room only, of at least this role. */
  may: 'admin' | 'owner';
  /** What others are told they may not do, e.g. "invite users". */
  deed: string;
  run(call: MemberCall): Promise<Answer> | Answer;
}

type CommandEntry = RoomlessEntry | OpenRoomEntry | MemberEntry | ModeratorEntry;

const COMMANDS: CommandEntry[] = [
  {
    name: 'create', aliases: [], syntax: 'create [room] [private]', summary: 'create a room (named, or the one written to) and become its owner',
    required: 0, max: 2, room: 'none', may: 'anyone', run: create,
  },
  {
    name: 'join', aliases: [], syntax: 'join [room]', summary: 'join a room (created when missing, if allowed)',
    required: 0, max: 1, room: 0, may: 'anyone', run: join,
  },
  {
    name: 'invite', aliases: [], syntax: 'invite <user> [room]', summary: 'invite a user (owner and admins)',
    required: 1, max: 2, room: 1, may: 'admin', deed: 'invite users', run: (call) => enlist(call, true),
  },
  {
    name: 'add', aliases: [], syntax: 'add <user> [room]', summary: 'add a user without invitation (owner and admins)',
    required: 1, max: 2, room: 1, may: 'admin', deed: 'add users', run: (call) => enlist(call, false),
  },
  {
    name: 'accept', aliases: [], syntax: 'accept [room]', summary: 'accept an invitation',
    required: 0, max: 1, room: 0, may: 'anyone', run: accept,
  },
  {
    name: 'reject', aliases: ['deny'], syntax: 'reject [room]', summary: 'decline an invitation',
    required: 0, max: 1, room: 0, may: 'anyone', run: reject,
  },
  {
    name: 'remove', aliases: ['kick'], syntax: 'remove <user> [room]', summary: 'remove a member (owner and admins)',
    required: 1, max: 2, room: 1, may: 'admin', deed: 'remove members', run: remove,
  },
  {
    name: 'leave', aliases: ['exit', 'part'], syntax: 'leave [room]', summary: 'leave a room (the owner leaving destroys it)',
    required: 0, max: 1, room: 0, may: 'member', run: leave,
  },
  {
    name: 'destroy', aliases: [], syntax: 'destroy [room]', summary: 'destroy a room (owner)',
    required: 0, max: 1, room: 0, may: 'owner', deed: 'destroy the room',
    run: ({ actions, room, actor }) => actions.close(room, `the room was destroyed by ${displayNick(actor)}`),
  },
  {
    name: 'members', aliases: ['list'], syntax: 'members [room]', summary: 'list the members and their roles',
    required: 0, max: 1, room: 0, may: 'anyone', run: members,
  },
  {
    name: 'rooms', aliases: [], syntax: 'rooms', summary: 'list the public rooms of this domain',
    required: 0, max: 0, room: 'none', may: 'anyone', run: listPublicRooms,
  },
  {
    name: 'help', aliases: [], syntax: 'help', summary: 'this list',
    required: 0, max: 0, room: 'none', may: 'anyone', run: ({ actions }) => helpText(actions.options.cmdStartChar),
  },
  {
    name: 'modify', aliases: ['role'], syntax: 'modify <user> admin|member [room]', summary: 'grant or revoke admin (owner)',
    required: 2, max: 3, room: 2, may: 'owner', deed: 'change roles', run: modify,
  },
  {
    name: 'nick', aliases: [], syntax: 'nick <name>', summary: 'the name shown for you in this room',
    required: 1, max: 1, room: 'sent-to', may: 'member', run: nick,
  },
  {
    name: 'topic', aliases: [], syntax: 'topic [text]', summary: 'show the topic, or set it (owner and admins)',
    required: 0, max: Infinity, room: 'sent-to', may: 'member', run: topic,
  },
];

const BY_NAME = new Map<string, CommandEntry>();
for (const entry of COMMANDS) for (const name of [entry.name, ...entry.aliases]) BY_NAME.set(name, entry);

const RANK: Record<RoomRole, number> = { member: 0, admin: 1, owner: 2 };

export function parseCommand(line: string, startChar: string): ParsedCommand {
  const text = line.slice(startChar.length).trim();
  const match = /^(\S+)\s*(.*)$/s.exec(text);
  if (!match) return { ok: false, error: `empty command; send ${startChar}help for the list` };
  const word = match[1]!.toLowerCase();
  const entry = BY_NAME.get(word);
  if (!entry) return { ok: false, error: `unknown command "${truncate(match[1]!)}"; send ${startChar}help for the list` };
  const rest = match[2]!.trim();
  const args = rest === '' ? [] : rest.split(/\s+/);
  const syntax = `${startChar}${entry.syntax}`;
  if (args.length < entry.required) return { ok: false, error: `missing argument; usage: ${syntax}` };
  if (args.length > entry.max) return { ok: false, error: `too many arguments; usage: ${syntax}` };
  return { ok: true, command: { name: entry.name, args, rest, syntax } };
}

export function helpText(startChar: string): string {
  const width = Math.max(...COMMANDS.map((s) => s.syntax.length)) + 2;
  const lines = COMMANDS.map((s) => {
    const aliases = s.aliases.length ? ` (also ${s.aliases.map((a) => startChar + a).join(', ')})` : '';
    return `${(startChar + s.syntax).padEnd(width + 1)}${s.summary}${aliases}`;
  });
  return ['Room commands ([room] defaults to the room you write to):', ...lines].join('\n');
}

/** Runs a command line; throws Refusal when it changed nothing. */
export async function runCommand(line: string, context: CommandContext): Promise<Answer> {
  if (/[\r\n]/.test(line)) throw new Refusal('a command must be a single line');
  if (line.includes('\0')) throw new Refusal('a command must not contain NUL characters');
  const parsed = parseCommand(line, context.actions.options.cmdStartChar);
  if (!parsed.ok) throw new Refusal(parsed.error);
  const { command } = parsed;
  const entry = BY_NAME.get(command.name)!;
  if (entry.room === 'none') return entry.run({ ...context, command });
  const ref = entry.room === 'sent-to' ? sentTo(context, command) : roomArg(command.args[entry.room], context, command);
  if (entry.may === 'anyone') return entry.run({ ...context, command, ref });
  const room = context.actions.model.existing(ref);
  const actor = context.actions.model.activeMember(room, context.sender);
  if (entry.may !== 'member' && RANK[actor.role] < RANK[entry.may]) {
    throw new Refusal(`only the owner${entry.may === 'admin' ? ' and admins' : ''} may ${entry.deed}`);
  }
  return entry.run({ ...context, command, ref, room, actor });
}

function sentTo(context: CommandContext, command: Command): RoomRef {
  if (!context.here) throw new Refusal(`send ${context.actions.options.cmdStartChar}${command.name} to the room it is for`);
  return context.here;
}

/** The room an argument names (sip:name@domain, name@domain or a bare name), or the one the command was sent to. */
function roomArg(arg: string | undefined, context: CommandContext, command: Command): RoomRef {
  if (arg === undefined) {
    if (!context.here) throw new Refusal(`name the room, or send the command to the room; usage: ${command.syntax}`);
    return context.here;
  }
  return context.actions.model.refOf(arg, context.domain);
}

/** A user argument: sip:user@domain, user@domain, or a bare user of the room's domain. */
export function userArg(arg: string, domain: string): { username: string; domain: string } {
  try {
    const uri = parseTypedAddress(arg, domain);
    if (!uri.user) throw new UriError('no user part');
    if (uri.user.length > MAX_NAME || uri.host.length > MAX_NAME) throw new UriError('too long');
    return { username: uri.user, domain: uri.host };
  } catch (error) {
    throw new Refusal(`"${arg.slice(0, 80)}" is not a user address (${(error as Error).message})`);
  }
}

/**
 * #create NAME [private] anywhere; sent to a room's address, #create or #create private creates
 * that room (imc takes the name from the Request-URI). The confirmation comes from the new room.
 */
async function create(call: CommandCall): Promise<Answer> {
  const { command } = call;
  const named = command.args.length === 2 || (command.args.length === 1 && !(call.here && isPrivateFlag(command.args[0]!)));
  const flag = named ? command.args[1] : command.args[0];
  if (flag !== undefined && !isPrivateFlag(flag)) throw new Refusal(`unknown option "${flag}"; usage: ${command.syntax}`);
  const ref = roomArg(named ? command.args[0] : undefined, call, command);
  return createRoom(call, ref, flag !== undefined);
}

const isPrivateFlag = (word: string) => word.toLowerCase() === 'private';

async function createRoom(call: CommandContext, ref: RoomRef, isPrivate: boolean): Promise<Answer> {
  const room = await call.actions.model.create(ref, call.sender, isPrivate);
  return { text: `created ${isPrivate ? 'private ' : ''}room ${roomUri(room)}; you are its owner`, from: room };
}

/** #join: refused to the uninvited of a private room, whose owner and admins are told who knocked, so they may invite. */
async function join(call: RoomCall): Promise<Answer> {
  const { actions, sender } = call;
  const room = actions.model.find(call.ref);
  if (!room) {
    if (!actions.options.createOnJoin) throw new Refusal(`no room ${roomUri(call.ref)}`);
    return createRoom(call, call.ref, false);
  }
  // Knocking makes the room write to others: only a sender who could be answered, within its rate.
  if (actions.model.needsInvitation(room, sender) && call.answerable && call.takeToken()) {
    const start = actions.options.cmdStartChar;
    actions.fanout.announceTo(room, actions.model.moderators(room), `${sipUriOfAor(sender)} tried to join; ${start}invite ${sipUriOfAor(sender)} to let them in`);
  }
  const invitation = actions.model.joining(room, sender);
  await actions.admit(room, sender, invitation, call.answerable);
  return `you joined ${roomUri(room)}${room.topic ? `; topic: ${room.topic}` : ''}`;
}

async function enlist(call: MemberCall, invited: boolean): Promise<Answer> {
  const { actions, room, actor } = call;
  const user = userArg(call.command.args[0]!, room.domain);
  const aor = aorOfMember(user);
  await actions.model.enlist(room, user, invited);
  if (invited) {
    const start = actions.options.cmdStartChar;
    actions.fanout.notify(room, aor, `*** ${displayNick(actor)} invites you to ${roomUri(room)}; reply ${start}accept or ${start}reject to this address`);
    actions.fanout.announce(room, `${displayNick(actor)} invited ${sipUriOfAor(aor)}`);
    return `invited ${sipUriOfAor(aor)} to ${roomUri(room)}`;
  }
  actions.fanout.notify(room, aor, `*** ${displayNick(actor)} added you to ${roomUri(room)}`);
  actions.fanout.announce(room, `${displayNick(actor)} added ${sipUriOfAor(aor)}`, aor);
  await actions.sendHistory(room, aor);
  return `added ${sipUriOfAor(aor)} to ${roomUri(room)}`;
}

async function accept(call: RoomCall): Promise<Answer> {
  const { actions, sender } = call;
  const room = actions.model.existing(call.ref);
  await actions.admit(room, sender, actions.model.invitation(room, sender), call.answerable);
  return `you joined ${roomUri(room)}${room.topic ? `; topic: ${room.topic}` : ''}`;
}

async function reject(call: RoomCall): Promise<Answer> {
  const { actions, sender } = call;
  const room = actions.model.existing(call.ref);
  await actions.model.remove(room, actions.model.invitation(room, sender));
  actions.fanout.announce(room, `${sipUriOfAor(sender)} declined the invitation`);
  return `declined the invitation to ${roomUri(room)}`;
}

async function remove(call: MemberCall): Promise<Answer> {
  const { actions, room, actor } = call;
  const aor = aorOfMember(userArg(call.command.args[0]!, room.domain));
  const member = room.members.get(aor);
  if (!member) throw new Refusal(`${sipUriOfAor(aor)} is not in ${roomUri(room)}`);
  actions.model.checkRemoval(actor, member);
  await actions.model.remove(room, member);
  actions.fanout.notify(room, aor, `*** you were removed from ${roomUri(room)} by ${displayNick(actor)}`);
  actions.fanout.announce(room, `${displayNick(member)} was removed by ${displayNick(actor)}`);
  return `removed ${sipUriOfAor(aor)} from ${roomUri(room)}`;
}

async function leave(call: MemberCall): Promise<Answer> {
  const { actions, room, actor } = call;
  if (actor.role === 'owner') return actions.close(room, `${displayNick(actor)}, the owner, left: the room is closed`);
  await actions.model.remove(room, actor);
  actions.fanout.announce(room, `${displayNick(actor)} has left the room`);
  return `you left ${roomUri(room)}`;
}

function members(call: RoomCall): Answer {
  const room = call.actions.model.existing(call.ref);
  if (room.private && !room.members.has(call.sender)) throw new Refusal(`${roomUri(room)} is private`);
  const lines = [...room.members.entries()].map(([aor, m]) => `${displayNick(m)} <${sipUriOfAor(aor)}> ${m.invited ? 'invited' : m.role}`);
  return [`members of ${roomUri(room)} (${lines.length}):`, ...lines].join('\n');
}

function listPublicRooms(call: CommandCall): Answer {
  const rooms = call.actions.model.publicRooms(call.domain);
  if (rooms.length === 0) return `no public rooms in ${call.domain}`;
  const lines = rooms.map((r) => `${roomUri(r)} ${activeMembers(r).length} members${r.topic ? ` - ${r.topic}` : ''}`);
  return [`public rooms in ${call.domain} (${rooms.length}):`, ...lines].join('\n');
}

async function modify(call: MemberCall): Promise<Answer> {
  const { actions, room, command } = call;
  const role = command.args[1]!.toLowerCase();
  if (role !== 'admin' && role !== 'member') throw new Refusal(`role must be admin or member; usage: ${command.syntax}`);
  const aor = aorOfMember(userArg(command.args[0]!, room.domain));
  const updated = await actions.model.setRole(room, aor, role);
  actions.fanout.announce(room, `${displayNick(updated)} is now ${role === 'admin' ? 'an admin' : 'a member'}`);
  return `${sipUriOfAor(aor)} is now ${role}`;
}

async function nick(call: MemberCall): Promise<Answer> {
  const { actions, room, actor, sender } = call;
  const updated = await actions.model.setNick(room, sender, call.command.args[0]!);
  actions.fanout.announce(room, `${displayNick(actor)} is now known as ${displayNick(updated)}`, sender);
  return `your nick in ${roomUri(room)} is ${displayNick(updated)}`;
}

async function topic(call: MemberCall): Promise<Answer> {
  const { actions, room, actor, command } = call;
  if (command.rest === '') return room.topic ? `topic of ${roomUri(room)}: ${room.topic}` : `${roomUri(room)} has no topic`;
  if (actor.role === 'member') throw new Refusal('only the owner and admins may set the topic');
  await actions.model.setTopic(room, command.rest);
  actions.fanout.announce(room, `${displayNick(actor)} set the topic: ${command.rest}`, call.sender);
  return 'topic set';
}

function truncate(text: string): string {
  return text.length > 32 ? `${text.slice(0, 32)}…` : text;
}
