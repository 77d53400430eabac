// Durable per-device delivery: a MESSAGE for a user reaches every device the user was seen
// registering from within devices.remember, written once: the registered devices get it at once,
// and it is stored (one message, one delivery row per device) only for the devices that did not
// take it, before the sender is answered. One that could not be reached (408, 480, 503, 504, a flow
// that failed) or was away keeps its row, and gets its rows when it registers again, or, registered,
// with the next message for it or again on a timer (drain.ts, with a growing back-off after a drain
// it was not reached with):
// normal ones first, then non-urgent ones, each oldest first, a page at a time; one that refused it
// for good does not. A device's messages never overtake what waits for it (see isQueued, store-turns.ts).
import type { Logger } from 'pino';
import { deviceKey, isContactOfDevice, isInstanceDevice, isStoreUnavailable, logBackgroundFailure, type Binding, type DeliveryStore, type RememberedDevice, type StoredMessage } from '../store/index.js';
import { isMadeUp, type Protocol, type SipMessage, type SipStack } from '../sip/index.js';
import type { Flow, Registrar } from '../registrar/registrar.js';
import { isDatagram, likeness, stillRegistered } from './device-recognition.js';
import { Successors, type Successor } from './successors.js';
import { Takeovers, queueOf } from './takeover.js';
import { StoreTurns, Storing } from './store-turns.js';
import { AwaitedLegs, FlowLegs, InFlightLegs } from './in-flight.js';
import { DeviceQueues, UNREACHABLE } from './drain.js';
import { describeDevices, type DeviceSummary } from './device-summary.js';
import { DevicePush } from './device-push.js';
import type { PushService } from '../push/index.js';
import { storedRequest } from './stored-request.js';

export interface DeviceDeliveryOptions {
  /** Seconds a device is remembered after it last registered. */
  remember: number;
  /** Seconds the sender waits for a device to take the message before it gets 202. */
  acceptTimeout: number;
  /** Seconds after a registered device was not reached with a stored message before it is drained again (twice as long after each drain it is not reached with, drain.ts). */
  redeliveryBackoff: number;
  maxPerUser: number;
  /** Wakes devices that are away and registered with push parameters (RFC 8599); absent when push is off. */
  push?: PushService;
}

/**
 * Sends a request to one device over its flows, the next flow when one fails; never rejects. `loop`:
 * the request's loop key when the caller has it (every leg of a message shares it), else it is made.
 */
export type SendToDevice = (message: SipMessage, flows: Flow[], loop?: string) => Promise<SipMessage>;

export interface DeliveryOutcome {
  status: number;
  reason: string;
  response?: SipMessage;
}

export { UNREACHABLE } from './drain.js';
// Where relay.ts takes them from.

/**
 * Once a device took a message, how long at least its user's other registered devices may still
 * answer before it is stored for them (milliseconds; or as long again as the first one took, when
 * longer). Devices that answer together are then written for together, that is not at all, and a
 * device asleep on its registered flow (a phone waiting for a push) delays the sender's 200 by that
 * much, not by relay.accept_timeout.
 */
const AFTER_TAKEN_MS = 50;

/** Users whose remembered devices are kept in memory at most: past it they are all read again. */
const MAX_CACHED_USERS = 100_000;
/** Devices kept as silent at most (DeviceDelivery.silent): past it they are all forgotten. */
const MAX_SILENT = 100_000;

export const ACCEPTED: DeliveryOutcome = { status: 202, reason: 'Accepted (stored for offline delivery)' };
const MAILBOX_FULL: DeliveryOutcome = { status: 486, reason: 'Busy Here (offline mailbox full)' };
/** What needed the store while it was unavailable gets; a sender's outbox tries its leg again. */
export const STORE_UNAVAILABLE: DeliveryOutcome = { status: 503, reason: 'Service Unavailable (store unavailable)' };

/** The devices a message for a user is for: remembered ones, registered ones with their flows, and all of them. */
interface KnownDevices {
  remembered: RememberedDevice[];
  live: Map<string, Flow[]>;
  devices: Set<string>;
}

export interface DeviceDeliveryStats {
  stored: number;
  delivered: number;
  /** Deliveries waiting for a device, as of the last count in the store and what changed since. */
  pending: number;
}

export class DeviceDelivery {
  readonly stats: DeviceDeliveryStats = { stored: 0, delivered: 0, pending: 0 };
  /** The devices' queues: what waits for each in the store, delivered in order (drain.ts). */
  private readonly queues: DeviceQueues;
  /**
   * Deliveries sent now to a registered device: a queue being drained leaves them to that send. A
   * device taken over (recognise) hands its legs on to the one it became: that one's queue waits
   * for their answers.
   */
  private readonly inFlight = new InFlightLegs();
  /** Senders waiting for their message to reach a device through its queue being delivered (sendThenStore). */
  private readonly awaited = new AwaitedLegs();
  /** Every request on its way to a device, sent again over its new flows should it register from others before it answers (sendTo). */
  private readonly flowLegs = new FlowLegs();
  /** Wakes devices that are away and registered with push parameters. */
  private readonly devicePush: DevicePush;
  /**
   * Devices ("aor\ndevice") from whose address nothing came back to the last request they were sent
   * (a timeout, a transport error: no answer, not even 408 or 503), since when, until they answer: a
   * device like one over UDP, not registered again since, registering from a new port gets a copy of
   * what waits there (shareBacklog).
   */
  private readonly silent = new Map<string, number>();
  /** Devices with messages on their way to the store for them: they count as queued meanwhile. */
  private readonly storing = new Storing();
  /** The order in which the messages for each user are stored. */
  private readonly storeTurns = new StoreTurns();
  /**
   * The AORs with a remembered device (or registering since the start): only what is sent to them is
   * kept per device, and only theirs cost a store read for a message or a new address. Each with the
   * sweep during which it was last seen: one that registers while a sweep forgets its devices stays.
   */
  private readonly deviceUsers = new Map<string, number>();
  /**
   * Devices still registered when a device like them registered from a new address, until it is
   * known whether they are that device (successors.ts): the new one's messages may wait meanwhile (isHeld).
   */
  private readonly successors: Successors;
  /** Devices recognised as one that registered from a new address, which took over what waited for them (takeover.ts). */
  private readonly takeovers: Takeovers;
  /**
   * The AORs whose messages kept for whichever device registers (the offline store's, from before
   * devices were remembered) are being delivered, with that delivery: their devices' queues wait for
   * it, as what waits in them came later.
   */
  private readonly storedFirst = new Map<string, Promise<void>>();
  /**
   * Messages forked the old way to a user's only device (soleDevice) and not ended yet, how many by
   * AOR (all to that device: it is the only one). A count rather than a store turn each (StoreTurns):
   * a turn is taken for them only once a device that may be that one registers (soleTurns), and a
   * turn per message would cost every message to such a device about 700 bytes more (bench:hotpath relay).
   */
  private readonly soleSends = new Map<string, number>();
  /** Of those AORs, the ones where a device that may be that one registered since: the store turn their later messages wait in (storeAfterSoleSends). */
  private readonly soleTurns = new Map<string, { release(): void }>();
  /** Counts the sweeps of forgotten devices (forgetStale). */
  private sweeps = 0;
  /**
   * The remembered devices of each AOR read lately, all of them (whatever their last registration):
   * a message to a user (or a copy of one the user sent) costs no store read for them. An AOR's
   * go when one of its devices registers (written before the registrar tells), its push parameters
   * are dropped, or a sweep forgets devices.
   */
  private readonly rememberedOf = new Map<string, RememberedDevice[]>();
  /** Counts what made remembered devices change: a read begun before one is not kept. */
  private deviceChanges = 0;
  /**
   * Whether resume() has loaded what the store held at start (deviceUsers, the queues with
   * deliveries waiting). Until then every AOR is looked up, with what its devices have waiting, so
   * that no message overtakes one stored before the restart.
   */
  private loaded = false;

  constructor(
    private readonly store: DeliveryStore,
    private readonly registrar: Registrar,
    stack: SipStack,
    private readonly send: SendToDevice,
    private readonly options: DeviceDeliveryOptions,
    private readonly log: Logger,
  ) {
    this.devicePush = new DevicePush(options.push, store, (aor) => this.devicesChanged(aor), log);
    this.queues = new DeviceQueues(store, this.inFlight, {
      held: (aor, device) => (this.successors.size > 0 && this.successors.isHeld(aor, device)) || this.storedFirst.has(aor),
      flowsOf: (aor, device) => this.flowsOf(aor, device),
      request: (stored) => storedRequest(stack, stored),
      sendStored: (aor, id, device, message, flows, taken) => this.sendStored(aor, id, device, message, flows, taken),
      recordDone: (aor, ids, device) => this.recordDone(aor, ids, device),
      delivered: () => void this.stats.delivered++,
    }, stack.timers, options.redeliveryBackoff * 1000, log);
    // Its last binding removed: its devices are no longer drained on a timer (expired ones: bindingsExpired).
    registrar.on('unregistered', (aor) => this.queues.stopRetryingGone(aor));
    this.successors = new Successors({
      wasThatDevice: (aor, old, successor, bindings) => this.wasThatDevice(aor, old, successor, bindings),
      released: (aor, device) => {
        const [now] = this.takeovers.followMoves(aor, [device]);
        if (this.isQueued(aor, now!) && this.flowsOf(aor, now!)) void this.queues.drain(aor, now!);
      },
    }, (aor) => this.registrar.lookup(aor));
    this.takeovers = new Takeovers(store, {
      recordTaken: (aor, from) => this.queues.recordTaken(aor, from),
      handOnLegs: (from, device, receivedBefore) => this.inFlight.handOn(from, device, receivedBefore),
      devicesChanged: (aor) => this.devicesChanged(aor),
      moved: (aor, from, device) => {
        for (const old of from) {
          this.queues.forget(aor, old);
          this.silent.delete(queueOf(aor, old));
        }
        // It may have rows now: a new message goes after them.
        this.queues.backlog(aor, device);
      },
    });
  }

  /**
   * Delivers `message` to every device of `aor`, written once: the registered devices with nothing
   * waiting get it at once, and it is stored only for the devices that did not take it (away, with
   * older messages waiting, not reached, or not answering within devices.acceptTimeout), before
   * this resolves: what it resolves with means "durable for every device". Undefined when the AOR
   * has no remembered device: the message is then the offline store's, as before. `written` is told
   * once its requests to the registered devices are under way, with the transports they go over:
   * the next message for this recipient may follow.
   * `keptByCaller`: the caller keeps the message until this resolves (an outbox leg): it is stored
   * after the recipient's earlier messages (`previous`), and not refused when the store is away
   * (STORE_UNAVAILABLE: the caller tries again).
   * `storeFirst`: stored for every device before anything is sent, and resolved without waiting for
   * their answers (a copy of what a user sent: its sender's answer waits only for the store); not
   * kept (undefined) for a user without a device known by +sip.instance.
   * `except`: a device that is not to get it (the one that sent what this copies, relay/sync.ts).
   * `loop`: the message's loop key, when the caller has it (SendToDevice).
   */
  async deliver(
    aor: string, message: SipMessage, record: Omit<StoredMessage, 'id'>, better: (a: number, b: number) => boolean, written?: (protocols: Protocol[]) => void,
    { keptByCaller, storeFirst, except, loop }: { keptByCaller?: { previous: Promise<void> }; storeFirst?: boolean; except?: string; loop?: string } = {},
  ): Promise<DeliveryOutcome | undefined> {
    // A copy of what the user sent goes to users with a device known by +sip.instance only: a client
    // without one (a plain softphone) would show it as a message from its own user.
    const known = await this.devicesOf(aor, storeFirst);
    if (!known) return undefined;
    if (except !== undefined) {
      known.devices.delete(except);
      known.live.delete(except);
      if (known.devices.size === 0) return undefined;
    }
    if (storeFirst) return this.storeThenSend(aor, message, record, written, known);
    return this.sendThenStore(aor, message, record, better, written, known, keptByCaller?.previous, loop);
  }

  /** Whether `aor` may have messages kept per device: false only once it is known to have no remembered device. */
  keepsPerDevice(aor: string): boolean {
    return !this.loaded || this.deviceUsers.has(aor);
  }

  /**
   * Whether a copy of what `aor` sent may be kept for its devices (deliver's storeFirst): false as
   * soon as its remembered devices, known from memory, include none with +sip.instance, so that a
   * plain softphone's every post to a room does not build a copy to learn that it gets none.
   */
  keepsSentCopies(aor: string): boolean {
    if (!this.keepsPerDevice(aor)) return false;
    return this.rememberedOf.get(aor)?.some((device) => isInstanceDevice(device.device)) ?? true;
  }

  /**
   * The device of `aor` when it is its only one, without +sip.instance, registered, with nothing
   * waiting, and known from memory (no store read): the message is then forked to it as before
   * devices were remembered (the sender waits for its answer), with no write unless it is not
   * reached (storeUnreached). Undefined when the message goes through deliver: a device with an
   * instance or one that can be woken by a push answers within relay.accept_timeout or has the
   * message stored.
   */
  soleDevice(aor: string): string | undefined {
    if (!this.loaded) return undefined;
    const remembered = this.rememberedOf.get(aor);
    if (remembered?.length !== 1) return undefined;
    const bindings = this.registrar.lookup(aor);
    if (bindings.length !== 1) return undefined;
    // Registered, it is remembered whenever it was last seen: no look at the clock.
    const { device } = remembered[0]!;
    const { contact, instance } = bindings[0]!;
    if (instance || !isContactOfDevice(contact, device)) return undefined;
    if (this.options.push && contact.includes(';pn-')) return undefined;
    return this.isQueued(aor, device) ? undefined : device;
  }

  /**
   * `sending`, a message forked to `device`, the only device of `aor` (soleDevice), is under way
   * until it settles (soleSends). Its answer, when the device gave one, tells whether a device like
   * it that registered since from a new address is another one (answered); one not reached is told
   * by storeUnreached.
   */
  soleSend<T extends DeliveryOutcome>(aor: string, device: string, sending: Promise<T>): Promise<T> {
    this.soleSends.set(aor, (this.soleSends.get(aor) ?? 0) + 1);
    // then rather than finally: a third of what finally allocates, for every message to such a device.
    return sending.then(
      (outcome) => {
        if (outcome.response) this.answeredBy(aor, device, outcome.response);
        this.soleSendEnded(aor);
        return outcome;
      },
      (error: unknown) => {
        this.soleSendEnded(aor);
        throw error;
      },
    );
  }

  private soleSendEnded(aor: string): void {
    const left = this.soleSends.get(aor)! - 1;
    if (left > 0) return void this.soleSends.set(aor, left);
    this.soleSends.delete(aor);
    this.soleTurns.get(aor)?.release();
    this.soleTurns.delete(aor);
  }

  /**
   * A device registered for `aor` from a new address that may be (or is) the user's only device,
   * which messages are being forked to the old way: one of them not reached is stored for the new
   * one (storeUnreached) only once it ends. Until then the user's later messages wait to be stored,
   * so that the new one gets its messages in the order they came.
   */
  private storeAfterSoleSends(aor: string): void {
    if (this.soleSends.has(aor) && !this.soleTurns.has(aor)) this.soleTurns.set(aor, this.storeTurns.take(aor));
  }

  /**
   * `device`, the only one of `aor` (soleDevice), was not reached (408, 480, 503, 504): the message
   * is kept for it, and it gets it when it registers again. Stored when it failed, as the offline
   * store did: a message that must not overtake the recipient's earlier ones (an outbox leg) is
   * passed once they ended. It takes no store turn: one taken by a later message (StoreTurns) may be
   * waiting for this one to end. `answer`: what it answered, or what Parley made up when nothing did
   * (absent when it was not sent: no longer registered).
   */
  async storeUnreached(
    aor: string, message: SipMessage, record: Omit<StoredMessage, 'id'>, device: string, sendingSince: number, answer?: SipMessage,
  ): Promise<DeliveryOutcome> {
    const marks = this.storing.marks(aor);
    marks.mark(device);
    if (answer) this.answeredBy(aor, device, answer);
    else if (this.successors.size > 0) this.successors.answered(aor, device, false);
    try {
      const id = await this.store.add(record, [...this.takeovers.followMoves(aor, [device])], priorityOf(message), this.options.maxPerUser);
      marks.release();
      if (id === 'full') return MAILBOX_FULL;
      this.stats.stored++;
      this.stats.pending++;
      this.log.debug({ aor, id, device }, 'message stored for the device that was not reached');
      if (this.registeredSince(aor, device, sendingSince)) this.deliverStored(aor, id, device, message, this.rememberedOf.get(aor) ?? []);
      else if (!this.takenOver(aor, device)) this.queues.missed(aor, device);
      return ACCEPTED;
    } finally {
      marks.release();
    }
  }

  /**
   * Forgets the devices not seen registering within devices.remember, with what they had pending;
   * a user left without a device known by +sip.instance costs no store read per message again.
   */
  async forgetStale(): Promise<void> {
    const sweep = ++this.sweeps;
    // Before the sweep and after: no read that overlaps it is kept.
    this.devicesChanged();
    const forgotten = await this.store.removeStale(Date.now() - this.options.remember * 1000).finally(() => this.devicesChanged());
    for (const aor of forgotten) {
      if ((this.deviceUsers.get(aor) ?? sweep) < sweep) this.deviceUsers.delete(aor);
    }
  }

  /**
   * A device registering without +sip.instance from an address the user was not seen at is the one
   * it was before when it matches a remembered device of the user that is gone with nothing but the
   * port changed (device-recognition.ts). It takes their place: what waited for them waits for it,
   * once, in order (takeover.ts), and their bindings are dropped (returned to the registrar), so it
   * is neither a second device nor leaves a ghost behind; one like it still registered is noted
   * (successors.ts). Run by the registrar for the REGISTER of `aor` itself (authenticated when
   * auth.policy is required), before its bindings are written, for the bindings it adds
   * (`fresh`); no store read for a user without a remembered device (the first registration of each).
   */
  recognise(aor: string, fresh: readonly Binding[], current: readonly Binding[]): Promise<Binding[]> | undefined {
    if (!this.keepsPerDevice(aor)) return undefined;
    // Not recognised, it registers as a new device: what waited stays with the one it was.
    return this.takeOverGone(aor, fresh, current).catch((error: unknown) => {
      if (isStoreUnavailable(error)) this.log.info({ aor }, 'device not recognised: store unavailable');
      else this.log.error({ err: error, aor }, 'recognising a device failed');
      return [];
    });
  }

  private async takeOverGone(aor: string, fresh: readonly Binding[], current: readonly Binding[]): Promise<Binding[]> {
    const remembered = await this.store.devicesOf(aor, Date.now() - this.options.remember * 1000);
    const known = new Set(remembered.map((d) => d.device));
    const registered = stillRegistered(current, (binding) => this.registrar.isGone(binding) || this.queues.isBacklogged(aor, deviceKey(binding)));
    const replaced: Binding[] = [];
    for (const binding of fresh) {
      const device = deviceKey(binding);
      if (known.has(device)) continue;
      const { was, mayBe } = likeness(binding, remembered, known, registered);
      if (was.length === 0) {
        // A device like it still registered may be another one (successors).
        for (const old of mayBe) this.successors.note(aor, old, device, binding.updatedAt, current, await this.shareBacklog(aor, old, device, current));
        if (mayBe.length > 0) this.storeAfterSoleSends(aor);
        continue;
      }
      this.storeAfterSoleSends(aor);
      await this.takeovers.takeOver(aor, was, device);
      for (const old of was) known.delete(old);
      known.add(device);
      replaced.push(...current.filter((b) => was.includes(deviceKey(b))));
      this.log.info({ aor, device, was }, 'device registered from a new address recognised: it takes over what waited for it');
    }
    return replaced;
  }

  /**
   * `old` of `aor`, registered over UDP only, like `device` that registers from a new port: when
   * nothing came back from `old`'s address lately (silent: a softphone restarted on a new port
   * without unregistering, or a phone out of coverage), `device` gets a copy of what waits for `old`,
   * before anything that comes after it (its queue starts with them), while `old` keeps its own
   * (two phones of one model behind one NAT stay two devices, each getting every message). A
   * device answering, even 408 or 503, is listening: `device` gets none of its backlog. Returns the
   * highest message id shared, for `old`'s takeover should its binding expire unrefreshed (Successor.sharedUpTo).
   */
  private async shareBacklog(aor: string, old: string, device: string, current: readonly Binding[]): Promise<number | undefined> {
    const silentSince = this.silent.get(queueOf(aor, old));
    // Registered again since, it is listening.
    if (silentSince === undefined || !current.every((b) => deviceKey(b) !== old || (isDatagram(b) && b.updatedAt < silentSince))) return undefined;
    let upTo;
    try {
      upTo = await this.store.share(aor, old, device);
    } catch (error) {
      // It registers without them, as a device of its own: they stay the old port's.
      logBackgroundFailure(this.log, 'sharing what waits at a silent port with a device like it')(error);
      return undefined;
    }
    if (upTo === 0) return undefined;
    this.queues.backlog(aor, device);
    this.log.info({ aor, device, from: old }, 'device registered from a new port while one like it at its old port stopped answering: it gets what waits there first');
    return upTo;
  }

  /**
   * `device` of `aor` answered `response`, or Parley made it up (isMadeUp): nothing came back from
   * its address. Successors are told whether it was reached; silent tells whether anything listens there.
   */
  private answeredBy(aor: string, device: string, response: SipMessage): void {
    const reached = !UNREACHABLE.has(response.status);
    if (this.successors.size > 0) this.successors.answered(aor, device, reached);
    if (!reached && isMadeUp(response)) {
      const queue = queueOf(aor, device);
      if (this.silent.has(queue)) return;
      if (this.silent.size >= MAX_SILENT) this.silent.clear();
      this.silent.set(queue, Date.now());
      this.log.info({ aor, device, status: response.status }, 'nothing came back from the device\'s address');
    } else if (this.silent.size > 0) this.silent.delete(queueOf(aor, device));
  }

  /**
   * `old` of `aor`, noted as maybe `successor.device`, was it (successors): that device takes over
   * what it had waiting from before it came (what came since, that device has itself), in order
   * with those, and `old`'s `bindings` left are dropped.
   */
  /**
   * Bindings of `aor` expired: one of them may show a device was one that registered since from a
   * new address (successors); a device left without one is no longer drained on a timer.
   */
  bindingsExpired(aor: string, expired: readonly Binding[]): void {
    this.successors.expired(aor, expired);
    this.queues.stopRetryingGone(aor);
  }

  private async wasThatDevice(aor: string, old: string, successor: Successor, bindings: readonly Binding[]): Promise<void> {
    const [device] = this.takeovers.followMoves(aor, [successor.device]);
    try {
      await this.takeovers.takeOver(aor, [old], device!, successor.since, successor.sharedUpTo);
      this.log.info({ aor, device, was: old }, 'device recognised as one that registered since from a new address: it takes over what waited for it');
      if (bindings.length > 0) await this.registrar.drop(aor, bindings);
    } catch (error) {
      logBackgroundFailure(this.log, 'recognising a device that is gone')(error);
    }
  }

  /**
   * The devices of `aor`: remembered, registered (with their flows), both; undefined when the
   * message is not to be kept per device (`instanceUsersOnly`: when none is known by +sip.instance).
   * A registered device is remembered (written with its binding).
   */
  private devicesOf(aor: string, instanceUsersOnly = false): KnownDevices | undefined | Promise<KnownDevices | undefined> {
    if (!this.keepsPerDevice(aor)) return undefined;
    // Most often every remembered device of the user is in memory: nothing to wait for.
    const cached = this.loaded ? this.rememberedOf.get(aor) : undefined;
    if (cached) return this.knownDevices(aor, cached, [], instanceUsersOnly);
    return Promise.all([this.rememberedDevices(aor), this.loaded ? [] : this.store.pendingCounts(aor)]).then(
      ([all, waiting]) => this.knownDevices(aor, all, waiting, instanceUsersOnly),
    );
  }

  /** devicesOf, of `all` remembered devices of `aor`, and the devices with deliveries `waiting` in the store (read before resume()). */
  private knownDevices(aor: string, all: readonly RememberedDevice[], waiting: ReadonlyArray<{ device: string }>, instanceUsersOnly: boolean): KnownDevices | undefined {
    const since = Date.now() - this.options.remember * 1000;
    const remembered = all.filter((device) => device.lastSeen >= since);
    if (remembered.length === 0 || (instanceUsersOnly && !remembered.some((d) => isInstanceDevice(d.device)))) return undefined;
    for (const { device } of waiting) this.queues.backlog(aor, device);
    const live = new Map<string, Flow[]>();
    let devices = new Set<string>();
    for (const { device } of remembered) devices.add(device);
    for (const flows of this.registrar.flowsByDevice(this.registrar.lookup(aor))) {
      const device = deviceKey(flows[0]!.binding);
      live.set(device, flows);
      devices.add(device);
    }
    if (this.takeovers.size > 0) devices = this.takeovers.followMoves(aor, devices);
    return { remembered, live, devices };
  }

  /** Every remembered device of `aor`, from memory when it was read since they last changed. */
  private async rememberedDevices(aor: string): Promise<RememberedDevice[]> {
    const cached = this.rememberedOf.get(aor);
    if (cached) return cached;
    const changes = this.deviceChanges;
    const devices = await this.store.devicesOf(aor, 0);
    if (changes === this.deviceChanges) {
      if (this.rememberedOf.size >= MAX_CACHED_USERS) this.rememberedOf.clear();
      this.rememberedOf.set(aor, devices);
    }
    return devices;
  }

  /** Remembered devices changed (all when `aor` is absent): the next message reads them again. */
  private devicesChanged(aor?: string): void {
    this.deviceChanges++;
    if (aor === undefined) this.rememberedOf.clear();
    else this.rememberedOf.delete(aor);
  }

  /**
   * Write-once delivery: the registered devices with nothing waiting get the message at once; once
   * they answered (within acceptTimeout: one still answering then gets a row, which goes when it
   * takes the message) it is stored, in the order the user's messages came (StoreTurns), only for
   * the devices that did not take it. A device that refused it for good does not get it again.
   * While the message is on its way to the store, each device it is to be stored for counts as
   * queued (`storing`): no later message is sent to it live, overtaking it. A registered device
   * whose queue is being delivered takes it through its queue, its sender waiting for that (takenThroughQueue).
   */
  private async sendThenStore(
    aor: string, message: SipMessage, record: Omit<StoredMessage, 'id'>, better: (a: number, b: number) => boolean,
    written: ((protocols: Protocol[]) => void) | undefined, { remembered, live, devices }: KnownDevices, previous?: Promise<void>, loop?: string,
  ): Promise<DeliveryOutcome> {
    const turn = this.storeTurns.take(aor);
    const marks = this.storing.marks(aor);
    try {
      const now: Array<[string, Flow[]]> = [];
      // Away, or with older messages waiting: should it register meanwhile, it still gets this one first.
      const notSent: string[] = [];
      /** Of those, the registered ones whose queue is being delivered now (isBeingDelivered): they take it in a moment. Rare: made when needed. */
      let throughQueue: string[] | undefined;
      for (const device of devices) {
        const flows = live.get(device);
        if (flows && !this.isQueued(aor, device)) now.push([device, flows]);
        else {
          notSent.push(device);
          marks.mark(device);
          if (flows && !previous && this.isBeingDelivered(aor, device)) (throughQueue ??= []).push(device);
        }
      }
      const sendingSince = Date.now();
      const answers = new Map<string, SipMessage>();
      let decided = false;
      const sending = new Map(now.map(([device, flows]) => [device, this.sendTo(aor, device, message, flows, loop).then((response) => {
        this.answeredBy(aor, device, response);
        if (decided) return response;
        answers.set(device, response);
        // Not taken: from now on no later message overtakes it to this device.
        if (UNREACHABLE.has(response.status)) marks.mark(device);
        return response;
      })]));
      written?.(now.map(([, flows]) => flows[0]!.peer.proto));
      // An outbox leg waits for every answer: nobody waits for it, and each answer spares a write.
      if (sending.size > 0) await answersWithin(sending.values(), sending.size, sendingSince, this.options.acceptTimeout * 1000, !previous);
      decided = true;
      /** Sent and not answered yet. */
      const late: string[] = [];
      /** Answered 408, 480, 503 or 504. */
      const unreached: string[] = [];
      let best: SipMessage | undefined;
      for (const [device] of now) {
        const response = answers.get(device);
        if (!response) {
          late.push(device);
          marks.mark(device);
          continue;
        }
        if (UNREACHABLE.has(response.status)) unreached.push(device);
        if (!best || better(response.status, best.status)) best = response;
      }
      const taken = best && best.status < 300 ? { status: best.status, reason: best.reason, response: best } : undefined;
      const left = [...notSent, ...unreached, ...late];
      if (left.length === 0) return taken ?? { status: best!.status, reason: best!.reason, response: best };
      if (previous) await previous;
      await turn.previous;
      let id: number | 'full';
      // A drain leaves the row of a device still answering to that answer (takeLate) from the moment
      // it can be read. Written again alone (its batch failed), the message has another id.
      // Only when some device is still answering (most often none is: nothing made for it).
      const inserted: number[] | undefined = late.length > 0 ? [] : undefined;
      try {
        id = await this.add(record, left, message, turn, inserted && ((stored) => {
          inserted.push(stored);
          for (const device of late) this.inFlight.fly(stored, device);
        }));
      } catch (error) {
        if (inserted) this.notInFlight(inserted, late);
        if (!isStoreUnavailable(error)) throw error;
        // An outbox leg is tried again later (the same request, recognised by the devices that took it).
        if (previous) return STORE_UNAVAILABLE;
        // A message some device took is not refused: what needs no write goes on while the store is away.
        if (!taken) throw error;
        this.log.info({ aor, devices: left.length }, 'message not kept for the devices that did not take it: store unavailable');
        return taken;
      }
      if (inserted) this.notInFlight(inserted.filter((stored) => stored !== id), late);
      // Before they are sent it below: they no longer count as queued for it.
      marks.release();
      if (id === 'full') {
        this.makeRoom(aor, notSent.filter((device) => live.has(device)));
        return taken ?? MAILBOX_FULL;
      }
      this.stats.stored++;
      this.stats.pending += left.length;
      this.log.debug({ aor, id, devices: left.length }, 'message stored for the devices that did not take it');
      this.devicePush.wake(id, remembered, message, (d) => (!live.has(d.device) && notSent.includes(d.device)) || unreached.includes(d.device));
      for (const device of late) this.takeLate(aor, id, device, message, sending.get(device)!, sendingSince, remembered);
      // Not reached: it gets it again when it registers, or with the next message; now only when
      // it registered again meanwhile (that registration's drain came too early for it).
      for (const device of unreached) {
        if (this.registeredSince(aor, device, sendingSince)) this.deliverStored(aor, id, device, message, remembered);
        else this.queues.missed(aor, device);
      }
      // Waited for before they are sent it: a device may answer at once.
      const throughQueueTaken = taken || !throughQueue ? undefined : this.takenThroughQueue(id, throughQueue, sendingSince, better);
      for (const device of notSent) this.deliverStored(aor, id, device, message, remembered);
      if (throughQueueTaken) return (await throughQueueTaken) ?? ACCEPTED;
      return taken ?? ACCEPTED;
    } finally {
      marks.release();
      turn.release();
    }
  }

  /**
   * The mailbox of `aor` refused a message for `devices`, registered: those with messages waiting
   * are sent them now through their queue (its back-off permitting), rather than at their next
   * registration, so that a device that answers again makes room for the messages after.
   */
  private makeRoom(aor: string, devices: Iterable<string>): void {
    for (const device of devices) this.queues.join(aor, device);
  }

  /** Messages `ids` were written for `devices` but are not theirs (a batch that failed, written again alone): no leg of them is on its way. */
  private notInFlight(ids: number[], devices: string[]): void {
    for (const stored of ids) for (const device of devices) this.inFlight.land(stored, device, false);
  }

  /**
   * A message stored for `devices`, registered but with their queue being delivered (a device that
   * just registered, whose queue is read because it may have deliveries waiting): each takes it
   * through its queue, after what waited there, so that order and durability hold. Its sender waits
   * for that as for a live send, within acceptTimeout since `since`, rather than being told "stored
   * for offline delivery" (202) of a message to a user online who takes it at once. The best 2xx,
   * as the device's status (not its response: it answered the stored request, not the sender's);
   * undefined when none took it in time. Their answers are waited for from the call on.
   */
  private async takenThroughQueue(id: number, devices: string[], since: number, better: (a: number, b: number) => boolean): Promise<DeliveryOutcome | undefined> {
    let best: SipMessage | undefined;
    const noted = devices.map((device) => this.awaited.answer(id, device).then((response) => {
      if (response.status < 300 && (!best || better(response.status, best.status))) best = response;
      return response;
    }));
    await answersWithin(noted, noted.length, since, this.options.acceptTimeout * 1000, true);
    for (const device of devices) this.awaited.forget(id, device);
    return best && { status: best.status, reason: best.reason };
  }

  /**
   * Stores the message for every device, then sends it to the registered ones (through their
   * queue when older messages wait there); resolves once it is stored, its requests under way.
   */
  private async storeThenSend(
    aor: string, message: SipMessage, record: Omit<StoredMessage, 'id'>, written: ((protocols: Protocol[]) => void) | undefined, { remembered, live, devices }: KnownDevices,
  ): Promise<DeliveryOutcome> {
    const turn = this.storeTurns.take(aor);
    const marks = this.storing.marks(aor);
    let id;
    try {
      for (const device of live.keys()) marks.mark(device);
      await turn.previous;
      id = await this.add(record, [...devices], message, turn);
    } finally {
      marks.release();
      turn.release();
    }
    if (id === 'full') {
      written?.([]);
      this.makeRoom(aor, live.keys());
      return MAILBOX_FULL;
    }
    this.stats.stored++;
    this.stats.pending += devices.size;
    this.log.debug({ aor, id, devices: devices.size, registered: live.size }, 'message stored for each device');
    this.devicePush.wake(id, remembered, message, (d) => !live.has(d.device));
    for (const device of live.keys()) this.deliverStored(aor, id, device, message, remembered);
    written?.([...live.values()].map((flows) => flows[0]!.peer.proto));
    return ACCEPTED;
  }

  /**
   * Stores `message` for `devices` in its turn: the store commits writes in the order they were
   * asked for, so the next message of the user may ask for its own at once, in the same commit.
   */
  private add(
    record: Omit<StoredMessage, 'id'>, devices: string[], message: SipMessage, turn: { release(): void }, inserted?: (id: number) => void,
  ): Promise<number | 'full'> {
    try {
      // Devices recognised as another since this message was looked up: stored for that one.
      const to = this.takeovers.size > 0 ? [...this.takeovers.followMoves(record.aor, devices)] : devices;
      return this.store.add(record, to, priorityOf(message), this.options.maxPerUser, inserted);
    } finally {
      turn.release();
    }
  }

  /**
   * A device that had not answered when message `id` was stored for it: its row goes when it takes
   * the message; a drain meanwhile leaves the message to this send (inFlight, from the row's
   * commit), so a device that registered again since `sendingSince` and then did not take it gets it now.
   */
  private takeLate(
    aor: string, id: number, device: string, message: SipMessage, answer: Promise<SipMessage>, sendingSince: number, remembered: RememberedDevice[],
  ): void {
    void answer.then((response) => {
      if (!UNREACHABLE.has(response.status)) return this.recordDone(aor, [id], device).finally(() => this.inFlight.land(id, device, true));
      this.inFlight.land(id, device, false);
      if (this.takenOver(aor, device)) return;
      if (this.registeredSince(aor, device, sendingSince)) this.deliverStored(aor, id, device, message, remembered);
      else this.queues.missed(aor, device);
    });
  }

  /**
   * Message `id` is stored for `device`: the device gets it now when it is registered, through its
   * queue when older messages wait there (or are being stored), else sent at once.
   */
  private deliverStored(aor: string, id: number, device: string, message: SipMessage, remembered: RememberedDevice[]): void {
    const flows = this.flowsOf(aor, device);
    if (!flows) return;
    if (this.isQueued(aor, device)) {
      this.queues.backlog(aor, device);
      this.queues.join(aor, device);
      return;
    }
    void this.sendStored(aor, id, device, message, flows, () => this.recordDone(aor, [id], device)).then((response) => {
      // Its flow failed: a device that can be woken is.
      if (UNREACHABLE.has(response.status)) this.devicePush.wake(id, remembered, message, (d) => d.device === device);
    });
  }

  /** The flows of `device` of `aor` now, undefined when it is not registered. */
  private flowsOf(aor: string, device: string): Flow[] | undefined {
    const bindings = this.registrar.lookup(aor);
    // Most often asked for a device away: its user's flows are not grouped for nothing.
    if (!bindings.some((binding) => deviceKey(binding) === device)) return undefined;
    return this.registrar.flowsByDevice(bindings).find((f) => deviceKey(f[0]!.binding) === device);
  }

  /** Whether `device` of `aor` registered (again) at `since` or later. */
  private registeredSince(aor: string, device: string, since: number): boolean {
    return this.flowsOf(aor, device)?.some(({ binding }) => binding.updatedAt >= since) ?? false;
  }

  /**
   * Whether a message for this device goes through its queue: one is being drained, older messages
   * wait, or are being stored, or it may be a device that still looks alive at its old address
   * (isHeld), or its user's messages from before devices were remembered are being delivered (storedFirst).
   */
  private isQueued(aor: string, device: string): boolean {
    if (this.queues.idle && this.storing.size === 0 && this.successors.size === 0 && this.storedFirst.size === 0) return false;
    const queue = queueOf(aor, device);
    return this.queues.has(queue) || this.storing.has(queue) || this.successors.isHeld(aor, device) || this.storedFirst.has(aor);
  }

  /**
   * Whether the queue of `device` of `aor` is being delivered now and will reach a message stored
   * for it without waiting for anything else: it is being drained, or it waits only for its user's
   * messages kept for whichever device registers (storedFirst), delivered since it registered; not
   * while it may be a device still registered at its old address (isHeld: that may take long).
   */
  private isBeingDelivered(aor: string, device: string): boolean {
    return (this.queues.isDraining(aor, device) || this.storedFirst.has(aor)) && !(this.successors.size > 0 && this.successors.isHeld(aor, device));
  }

  /** Counts the deliveries waiting in the store again (after each sweep). */
  async countPending(): Promise<void> {
    this.stats.pending = (await this.store.pendingCounts()).reduce((sum, { pending }) => sum + pending, 0);
  }

  /**
   * At start: counts what waits, and delivers it to the devices still registered (bindings survive
   * a restart); a device's later messages go after what it had waiting.
   */
  async resume(): Promise<void> {
    for (const aor of await this.store.aorsWithDevices(Date.now() - this.options.remember * 1000)) this.deviceUsers.set(aor, this.sweeps);
    const counts = await this.store.pendingCounts();
    // A user whose devices were forgotten may still have deliveries waiting for its others.
    for (const { aor } of counts) this.deviceUsers.set(aor, this.sweeps);
    this.stats.pending = counts.reduce((sum, { pending }) => sum + pending, 0);
    for (const { aor, device } of counts) this.queues.backlog(aor, device);
    this.loaded = true;
    for (const { aor, device } of counts) {
      if (this.registrar.lookup(aor).length > 0) void this.queues.drain(aor, device);
    }
  }

  /** The devices of `aor`: remembered ones and registered ones, with their flows and what each has still to take. */
  describe(aor: string): Promise<DeviceSummary[]> {
    return describeDevices(aor, this.store, this.registrar, this.options.remember);
  }

  /**
   * Delivers what each registered device of `aor` has still to take; called when the AOR registered.
   * Only a device that may have deliveries waiting costs a store read. `storedBefore`: the delivery
   * of the AOR's messages kept for whichever device registers (older than any kept per device), which
   * the devices' queues wait for.
   */
  deliverPending(aor: string, storedBefore?: Promise<void>): void {
    this.devicesChanged(aor);
    // A device of the user may have removed its binding.
    this.queues.stopRetryingGone(aor);
    const bindings = this.registrar.lookup(aor);
    if (bindings.length === 0) return;
    this.deviceUsers.set(aor, this.sweeps);
    if (this.successors.size > 0) this.successors.registered(aor, bindings);
    if (storedBefore) {
      this.storedFirst.set(aor, storedBefore);
      void storedBefore.then(() => {
        if (this.storedFirst.get(aor) !== storedBefore) return;
        this.storedFirst.delete(aor);
        this.drainRegistered(aor, this.registrar.flowsByDevice(this.registrar.lookup(aor)));
      });
    }
    const devices = this.registrar.flowsByDevice(bindings);
    // Registered again itself: it is no longer the one it was recognised as.
    if (this.takeovers.size > 0) for (const flows of devices) this.takeovers.registeredAgain(aor, deviceKey(flows[0]!.binding));
    // Restarted, from a new address: what it was sent at the old one goes again before its queue.
    if (this.flowLegs.size > 0) for (const flows of devices) this.flowLegs.registered(aor, deviceKey(flows[0]!.binding), flows);
    this.drainRegistered(aor, devices);
  }

  /** Drains the queue of each of `devices` of `aor` (their flows) that may have deliveries waiting. */
  private drainRegistered(aor: string, devices: Flow[][]): void {
    for (const flows of devices) {
      const device = deviceKey(flows[0]!.binding);
      if (this.isQueued(aor, device) || this.store.mayHaveWaiting(aor, device)) void this.queues.drain(aor, device);
    }
  }

  /**
   * Sends `message` to `device` of `aor` over `flows`; should the device register from other flows
   * before it answers (a restart), sent again over those at once, their answer being its (FlowLegs).
   */
  private sendTo(aor: string, device: string, message: SipMessage, flows: Flow[], loop?: string): Promise<SipMessage> {
    return this.flowLegs.follow(aor, device, flows, this.send(message, flows, loop), (now) => this.send(message, now, loop));
  }

  /**
   * Sends a stored message to one device; unless the device was not reached, `taken` is told once
   * it answered (removing its row, or noting it for its page's removal). A drain does not send it
   * again meanwhile.
   */
  private async sendStored(
    aor: string, id: number, device: string, message: SipMessage, flows: Flow[], taken: (id: number) => Promise<void> | void,
  ): Promise<SipMessage> {
    this.inFlight.fly(id, device);
    let took = false;
    try {
      const response = await this.sendTo(aor, device, message, flows);
      if (this.awaited.size > 0) this.awaited.answered(id, device, response);
      this.answeredBy(aor, device, response);
      if (UNREACHABLE.has(response.status)) {
        if (!this.takenOver(aor, device)) this.queues.missed(aor, device);
      } else {
        this.options.push?.cancel(String(id), device);
        await taken(id);
        took = true;
      }
      return response;
    } finally {
      this.inFlight.land(id, device, took);
    }
  }

  /**
   * When `device` of `aor`, which did not take what it was sent, was taken over (takeover.ts): the
   * device it became keeps the row, and gets it through its queue. False when it was not.
   */
  private takenOver(aor: string, device: string): boolean {
    if (this.takeovers.size === 0 || !this.takeovers.has(aor, device)) return false;
    const [now] = this.takeovers.followMoves(aor, [device]);
    this.queues.backlog(aor, now!);
    this.queues.join(aor, now!);
    return true;
  }

  /** Removes the rows of what the device took; kept when this fails: the device gets it again when it registers, rather than never. */
  private recordDone(aor: string, ids: number[], device: string): Promise<void> {
    // Taken over since it was sent: the row moved to the device it became (asked after the move, committed after it).
    const [now] = this.takeovers.size > 0 ? this.takeovers.followMoves(aor, [device]) : [device];
    const done = now === device ? this.store.done(ids, device) : Promise.all([this.store.done(ids, device), this.store.done(ids, now!)]);
    return done.then(
      () => void (this.stats.pending -= ids.length),
      logBackgroundFailure(this.log, 'recording a delivery'),
    );
  }
}

/** Priority: non-urgent messages wait behind the others in a device's queue. */
function priorityOf(message: SipMessage): number {
  return message.get('priority')?.trim().toLowerCase() === 'non-urgent' ? 1 : 0;
}


/**
 * Resolves once the `count` `answers` came, or `acceptMs` after `since`, or, `soonAfterTaken`,
 * AFTER_TAKEN_MS (or as long again as it took, if longer) after the first 2xx, whichever is first:
 * one timer at a time, for every message to a user's devices.
 */
function answersWithin(answers: Iterable<Promise<SipMessage>>, count: number, since: number, acceptMs: number, soonAfterTaken: boolean): Promise<void> {
  return new Promise((resolve) => {
    let waiting = count;
    let graced = false;
    let timer = setTimeout(resolve, acceptMs);
    for (const answer of answers) {
      void answer.then((response) => {
        if (--waiting === 0) {
          clearTimeout(timer);
          resolve();
        } else if (soonAfterTaken && response.status < 300 && !graced) {
          graced = true;
          const now = Date.now();
          const grace = Math.max(AFTER_TAKEN_MS, now - since);
          if (now + grace >= since + acceptMs) return;
          clearTimeout(timer);
          timer = setTimeout(resolve, grace);
        }
      });
    }
  });
}
