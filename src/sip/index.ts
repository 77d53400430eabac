// Parley's own SIP stack: message model, parser, transports and non-INVITE transactions.
export { SipMessage, createResponse, randomToken, REASONS, EMPTY, type Header } from './message.js';
export { parseMessage, SipParseError } from './parser.js';
export {
  parseNameAddr, formatNameAddr, parseVia, formatVia, parseParams, parseCSeq, splitList, quote, unquote, SIP_METHODS,
  type NameAddr, type Via, type CSeq, type Params,
} from './headers.js';
export { parseUri, parseTypedAddress, formatUri, aorOf, domainOfAor, escapeUser, sipAddress, sipUriOfAor, splitAor, UriError, type SipUri } from './uri.js';
export { TimerQueue, FakeClock, systemClock, type Clock, type TimerHandle } from './timers.js';
export { TransportLayer, type TransportOptions, type TransportStats, type Refusal, type RefusalReason, REFUSAL_REASONS } from './transport/layer.js';
export { type Protocol, type Peer, type Address, type ListenSpec, RELIABLE, formatPeer, parsePeer } from './transport/types.js';
export { SipStack, BRANCH_COOKIE, isMadeUp, type IncomingRequest, type ReplyOptions, type StackOptions } from './stack.js';
