// Push notifications (RFC 8599): the devices' push parameters, the providers (APNs, FCM, a
// webhook) and the service that wakes a device with a message waiting.
export { parsePushTarget, stripPushParams, stripContactPushParams, providerOf, PushParamsError, type PushTarget, type ApnsTarget, type FcmTarget, type OtherTarget, type ProviderName } from './params.js';
export { PushService, PushError, isPushable, type DeliveryKind, type PushRequest, type PushOutcome, type InvalidTokenReport, type PushStats } from './service.js';
export { PUSH, pushPlugin, createPushService } from './plugin.js';
