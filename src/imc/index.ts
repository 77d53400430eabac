// Chat rooms over SIP MESSAGE (the imc module): the room model, the command table, the fan-out of
// posts and notices, and the service that takes MESSAGEs for the manager and the rooms.
export { RoomService, RoomRefusal, type ImcOptions, type ImcStats } from './service.js';
export { parseCommand, helpText, type Command, type CommandName } from './commands.js';
export { parseExtraHeaders } from './fanout.js';
export { type Room, type Member } from './rooms.js';
