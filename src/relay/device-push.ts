// Push for per-device delivery (RFC 8599): a device away, registered with push parameters, is
// woken when a message waits for it; a token its provider no longer knows drops them.
import type { Logger } from 'pino';
import { logBackgroundFailure, type DeliveryStore, type RememberedDevice } from '../store/index.js';
import type { SipMessage } from '../sip/index.js';
import { PushError, parsePushTarget, stripPushParams, type DeliveryKind, type PushService } from '../push/index.js';
import { IMDN_TYPE, mediaTypeOf } from '../util/media-types.js';
import { SENT_COPY } from './stored-request.js';

export class DevicePush {
  /**
   * `service`: absent when push is off. `devicesChanged` is told before and after the push
   * parameters of a device of an AOR are dropped: a read of its devices begun meanwhile is not kept.
   */
  constructor(
    private readonly service: PushService | undefined,
    private readonly store: DeliveryStore,
    private readonly devicesChanged: (aor: string) => void,
    private readonly log: Logger,
  ) {}

  /**
   * Pushes to each of `devices` it is `for` that registered with push parameters that message `id`
   * waits for it; an invalid token drops the device's push parameters. Receipts (IMDN) and copies
   * of what the user sent (nothing new to read) wake no one. With push off, nothing is looked at.
   */
  wake(id: number, devices: readonly RememberedDevice[], message: SipMessage, isFor: (device: RememberedDevice) => boolean): void {
    const push = this.service;
    if (!push) return;
    const kind = deliveryKind(message);
    if (kind !== 'message' || message.has(SENT_COPY.name)) return;
    for (const device of devices) {
      if (!isFor(device)) continue;
      let target;
      try {
        target = parsePushTarget(device.contact);
      } catch (error) {
        this.log.debug({ aor: device.aor, device: device.device, reason: (error as Error).message }, 'device not pushed: bad push parameters');
      }
      if (!target) continue;
      try {
        void push.notify(target, { deliveryId: String(id), device: device.device, from: message.from.uri, callId: message.callId, kind }).then(async (outcome) => {
          if (outcome.status !== 'invalid-token') return;
          this.devicesChanged(device.aor);
          await this.store.setContact(device.aor, device.device, stripPushParams(device.contact)).finally(() => this.devicesChanged(device.aor)).then(
            () => this.log.info({ aor: device.aor, device: device.device }, 'push parameters of the device dropped: its token is no longer valid'),
            logBackgroundFailure(this.log, 'dropping the push parameters of a device'),
          );
        });
      } catch (error) {
        if (!(error instanceof PushError)) throw error;
        this.log.debug({ aor: device.aor, device: device.device, reason: error.message }, 'device not pushed');
      }
    }
  }
}

/** What a message is for push: a receipt (IMDN, RFC 5438, also inside CPIM) or a message. */
function deliveryKind(message: SipMessage): DeliveryKind {
  const type = mediaTypeOf(message.get('content-type') ?? '');
  if (type === IMDN_TYPE) return 'imdn';
  if (type === 'message/cpim' && /content-type:\s*message\/imdn\+xml/i.test(message.body.toString('utf8'))) return 'imdn';
  return 'message';
}
