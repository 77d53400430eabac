// One bridge between SIP and the other networks (the XMPP gateway, the per-user gateways): the neutral message, the SIP edge, delivery tracking, the outbox step, ordered delivery into SIP.
export { SipBridge, type SipBridgeOptions, type SipOrigin } from './bridge.js';
export { TEXT_PLAIN, excerptOf, type Address, type BridgeMessage, type InstantMessage, type MessageKind, type Network } from './message.js';
export { LANGUAGE_TAG, mediaTypeOf, readSipMessage, sipHeaders, sipRequestOf, type Refusal } from './sip.js';
export { Recent } from './tracker.js';
