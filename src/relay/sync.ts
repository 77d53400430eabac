// Own-message sync ("carbon copies"): a MESSAGE a local user sent from one device, once taken (2xx),
// is copied to the user's other devices, From the user and To the peer as it was sent (so it
// threads under the conversation with the peer) with X-Parley-Copy: sent, so that each device
// shows what the user said from the others. The copy goes through the per-device delivery
// (devices.ts): stored for every device of the user but the one that sent it, delivered at once to
// the registered ones and to the others when they register, in order with what they received.
// Receipts (IMDN), is-composing states and Expires: 0 messages are never copied; nothing is pushed
// for a copy. The relay makes copies for local and foreign peers, the bridge for the gateways'
// (XMPP, per-user networks), the rooms for posts (a room sends a post to every member but its sender).
import type { Logger } from 'pino';
import { type IncomingRequest, type Peer, type SipMessage, type SipStack, parseUri } from '../sip/index.js';
import { deviceKey, instanceUrn, isStoreUnavailable, type Binding, type StoredMessage } from '../store/index.js';
import type { Destination, Registrar } from '../registrar/registrar.js';
import { IMDN_TYPE, ISCOMPOSING_TYPE, carriedMediaType } from '../util/media-types.js';
import type { DeviceDelivery } from './devices.js';
import { storedRequest } from './stored-request.js';
import { requestKey, resendIdentity } from './resend.js';

export interface SentCopyOptions {
  /** Whether the users of a local domain get copies of what they send (relay.sync_sent, relay.sync_sent_domains). */
  enabledFor(domain: string): boolean;
  /** The stored message of `message` for `aor`, as the relay stores what it keeps. */
  record(aor: string, message: SipMessage): Omit<StoredMessage, 'id'>;
  /** relay.max_body: the most a deflated body is inflated to, to read the type inside CPIM. */
  maxBody: number;
}

/** What is never copied, also inside CPIM: receipts (RFC 5438) and is-composing states (RFC 3994), which say nothing to the sender's own devices. */
const NOT_COPIED: ReadonlySet<string> = new Set([IMDN_TYPE, ISCOMPOSING_TYPE]);

/** relay.sync_sent and relay.sync_sent_domains. */
export interface SyncSentSettings {
  enabled: boolean;
  domains: Readonly<Record<string, boolean>>;
}

/** Whether the users of a served `domain` get copies of what they send: only with the offline store, which keeps them. */
export function syncsSent(domain: string, offlineEnabled: boolean, settings: SyncSentSettings): boolean {
  return offlineEnabled && (settings.domains[domain] ?? settings.enabled);
}

/** No sender waits on a copy's outcome: no answer is better than another. */
const NONE_BETTER = (): boolean => false;

export class SentCopies {
  constructor(
    private readonly registrar: Registrar,
    private readonly devices: DeviceDelivery,
    private readonly stack: SipStack,
    private readonly options: SentCopyOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Copies `request`, taken from a local user, to the user's other devices: undefined when there is
   * nothing to copy, else a promise (never rejected) of the copy stored, for the sender's answer to
   * wait for, so that an acknowledged message has its copies.
   */
  copy(request: IncomingRequest): Promise<void> | undefined {
    const from = request.message.fromUri;
    if (!this.options.enabledFor(from.host)) return undefined;
    const sender = this.registrar.destinationOf(from);
    if (!sender || !this.devices.keepsSentCopies(sender.aor) || !this.isCopied(request.message, sender.aor)) return undefined;
    return this.store(request, sender);
  }

  private async store(request: IncomingRequest, sender: Destination): Promise<void> {
    const message = request.message;
    const original = this.options.record(sender.aor, message);
    // Derived from the request it copies: the copy is the same request each time it is sent, after a
    // restart or when the sender sent its request again, yet never the request itself.
    const identity = resendIdentity(`sent.${requestKey(message)}`);
    const record: Omit<StoredMessage, 'id'> = { ...original, origin: { ...identity, cseq: message.cseq.seq }, sentCopy: true };
    const except = sender.device ? instanceUrn(sender.device.instance) : this.sendingDevice(request, sender.aor);
    try {
      // Stored for every device first: the sender waits only until the copy is stored and under way
      // (`written`), or nothing was kept, not for the devices' answers.
      await new Promise<void>((resolve, reject) => {
        this.devices.deliver(sender.aor, storedRequest(this.stack, { ...record, id: 0 }), record, NONE_BETTER, () => resolve(), { except, storeFirst: true }).then((outcome) => {
          if (outcome?.status === 486) this.log.info({ aor: sender.aor }, 'copy of a sent message not kept: offline mailbox full');
          resolve();
        }, reject);
      });
    } catch (error) {
      // The message itself went: only its copy is lost.
      if (isStoreUnavailable(error)) this.log.info({ aor: sender.aor }, 'copy of a sent message not kept: store unavailable');
      else this.log.error({ err: error, aor: sender.aor }, 'copy of a sent message failed');
    }
  }

  private isCopied(message: SipMessage, aor: string): boolean {
    if (message.get('expires')?.trim() === '0' || NOT_COPIED.has(carriedMediaType(message, this.options.maxBody))) return false;
    // Written to the user's own address: every device of the user gets the message itself.
    const target = message.requestUri;
    return !(target.host === message.fromUri.host && this.registrar.destinationOf(target)?.aor === aor);
  }

  /**
   * The device key of the device that sent `request`: its +sip.instance or GRUU in Contact, else the
   * binding registered over the flow it came on; undefined when none of the user's matches.
   */
  private sendingDevice(request: IncomingRequest, aor: string): string | undefined {
    for (const contact of request.message.contacts) {
      const instance = contact.params.get('+sip.instance');
      if (instance) return instanceUrn(instance);
      try {
        const gruu = this.registrar.destinationOf(parseUri(contact.uri));
        if (gruu?.device && gruu.aor === aor) return instanceUrn(gruu.device.instance);
      } catch {
        // A Contact that is no SIP URI names no device.
      }
    }
    const binding = this.registrar.lookup(aor).find((b) => sameFlow(b, request.source));
    return binding && deviceKey(binding);
  }
}

/** Whether a request from `source` came over the flow `binding` registered on. */
function sameFlow(binding: Binding, source: Peer): boolean {
  if (source.connectionId !== undefined) return binding.connectionId === source.connectionId;
  return binding.source.proto === source.proto && binding.source.host === source.host && binding.source.port === source.port;
}
