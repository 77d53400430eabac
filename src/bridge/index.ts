// One bridge between SIP and the other networks (the XMPP gateway, the per-user gateways): the neutral message, the SIP edge, delivery tracking, the outbox step, ordered delivery into SIP.
export { SipBridge, sipAddress, type SipBridgeOptions, type SipOrigin } from './bridge.js';
export {
  TEXT_PLAIN, excerptOf, type Address, type BridgeMessage, type InstantMessage, type MessageKind, type Network, type ReceiptMessage, type TextMessage, type TypingMessage,
} from './message.js';
export {
  LANGUAGE_TAG, readSipMessage, readSipPayload, senderOf, plainSipAddress, sipHeaders, sipRequestOf, type Refusal, type SipPayload,
} from './sip.js';
export { Recent } from './tracker.js';
export { CPIM_TYPE, ContentError, decodeContent, formatCpim, parseCpim } from '../util/cpim.js';
export {
  cpimAskingForImdn, cpimNotification, imdnBody, imdnRequestOf, readImdn, type Disposition, type ImdnRequest, type Notification, type Wanted,
} from './imdn.js';
export { isComposingBody, readIsComposing, type ComposingState, type IsComposing } from './typing.js';
