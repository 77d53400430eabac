// Chat rooms over SIP MESSAGE (the imc module): the room service and its command language.
export { RoomService, RoomRefusal, parseExtraHeaders, escapeRegExp, globSource, type ImcOptions, type ImcStats } from './service.js';
export { parseCommand, helpText, type Command, type CommandName } from './commands.js';
export type { Room, Member } from './rooms.js';
