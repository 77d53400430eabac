// MESSAGE relay with offline storage; also the way every Parley module sends a MESSAGE into SIP.
export { Relay, PreparedMessage, loopKey, STORE_UNAVAILABLE_REASON, type RelayOptions, type DeliveryResult, type MessageContent, type OutgoingMessage, type RelayStats } from './relay.js';
export { SentCopies } from './sync.js';
export { type DeliveryTurn, OrderedDeliveries } from './ordered.js';
export { recipientIdentities, repeatableId, requestKey, resendIdentity, type ResendIdentity } from './resend.js';
export { Outbox, OutboxFull, bodyCodec, jsonCodec, type LegContext, type LegOutcome, type OutboxCodec, type OutboxDelivery, type OutboxLimits } from './outbox.js';
