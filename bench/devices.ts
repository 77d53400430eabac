// Benchmark (not a test): durable per-device delivery (src/relay/devices.ts). Users with three
// devices each, each device registered with its own +sip.instance, one device of each user asleep
// (registered once, so Parley remembers it, then unregistered).
//
//   npm run bench:devices                            # ~8 minutes with the defaults (--budget-seconds 480)
//   npm run bench:devices -- --users 20 --sleepers 1000 --step-seconds 3 --resolution 0.1 --no-rooms
//
// Phase 1, throughput: --users (100) users; their two awake devices are two sipp processes
// (bench/sipp/device.xml registers every user as device 1, resp. 2, then bench/sipp/member.xml
// answers and times every MESSAGE), the sleeping one this script's own UDP socket. A sender posts
// MESSAGEs to the users in turn with bench/sipp/timed-post.xml at rising rates: each is stored once
// with a delivery row for each of the three devices, and sent to the two awake ones (two legs).
// A step passes on bench/rooms.ts's fan-out criterion: every MESSAGE answered 200 and none
// retransmitted, >= 95 % of the asked rate posted, every leg arrived (each device's sipp received
// exactly one per MESSAGE, none lost, none twice), and the legs' one-way p99 (the sender's send time in
// the body to the device's receipt) <= --max-p99-ms (500). Rates double from --start-deliveries
// until a step fails, then bisection steps narrow the gap until the lowest failing rate is within
// --resolution (4 %) of the highest passing one (--refine, 6, bisections at most; bench/knee.ts); a
// rate fails only when it failed --retries (1) times more, tried again at once (a stall of other work);
// the highest passing step is reported in deliveries (legs) per second, with the failing one above.
//
// Phase 2, waking up: --sleepers (10,000) more users, each with one device known by +sip.instance,
// registered and unregistered by this script's socket; --backlog (3) MESSAGEs for each are stored
// (answered 202). Then every sleeper registers again (--window (200) REGISTERs outstanding at
// most) and Parley sends each its backlog. Reported: REGISTERs/s, deliveries/s (first REGISTER to
// last delivery), p50/p99 from a device's REGISTER to each of its deliveries and to its last one,
// whether every delivery came, once, and in the order stored; the storage one pending delivery
// costs (used pages of the SQLite file and Parley's RSS, before and after the backlog was stored,
// over the delivery rows added; each such message has one row).
//
// Comparison: unless --no-rooms, bench/rooms.ts runs next with rooms of 3 members (a post is two
// legs, as a MESSAGE to two awake devices is), the same step settings and resolution, its search
// starting at phase 1's highest passing rate and moving first to phase 1's lowest failing one, so
// that a limit near phase 1's is bracketed as narrowly in two steps. Both brackets are printed
// side by side with what they say of the ratio (per device over room: its lowest and highest
// possible values); the goal is per-device fan-out no slower than room fan-out.
// Phase 1 gets half the time left for steps once the set-ups and phase 2 are reserved, the
// comparison all that remains.
// Alone: npm run bench:rooms -- --no-kamailio --sizes 3 --step-seconds 4 --refine 6 --resolution 0.04 --retries 1 --start-deliveries 2000
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import SqliteDatabase from 'better-sqlite3';
import { SippProcess, percentile, type SippOptions } from '../test/support/sipp.js';
import {
  CpuMeter, DOMAIN, ROOT, achievedRate, indent, launchParley, legsProblem, loggedLegs, peers, quiet, residentBytes, runBounded, sippProblem,
  sleep, startTimedUas, stepSettings, table, udpDrops, type Found, type PingIds, type Server, type TimedUas,
} from './common.js';
import { bracketWidth, kneeSearch, ratioOf, type Bracket } from './knee.js';

const PING: PingIds = { branch: 'devices', callId: 'bench-devices-ping' };
const DEVICE_SCENARIO = join(ROOT, 'bench', 'sipp', 'device.xml');
const POST_SCENARIO = join(ROOT, 'bench', 'sipp', 'timed-post.xml');
/** Legs of a phase-1 MESSAGE: the two awake devices of its user. */
const LEGS = 2;

const { values: args } = parseArgs({
  options: {
    'step-seconds': { type: 'string', default: '4' },
    refine: { type: 'string', default: '6' },
    /** The search ends once the lowest failing rate is within this share of the highest passing one. */
    resolution: { type: 'string', default: '0.04' },
    /** How many times a failing rate is tried again before it counts as failed (a stall of other work fails one step). */
    retries: { type: 'string', default: '1' },
    'budget-seconds': { type: 'string', default: '480' },
    users: { type: 'string', default: '100' },
    'start-deliveries': { type: 'string', default: '2000' },
    'max-deliveries': { type: 'string', default: '64000' },
    /** Highest p99 one-way latency of the legs, ms, at which a step still passes. */
    'max-p99-ms': { type: 'string', default: '500' },
    sleepers: { type: 'string', default: '10000' },
    /** MESSAGEs stored for each sleeper before it wakes. */
    backlog: { type: 'string', default: '3' },
    /** Requests this script's socket has outstanding at most (REGISTERs, backlog MESSAGEs). */
    window: { type: 'string', default: '200' },
    'no-rooms': { type: 'boolean' },
  },
});
const { STEP_S, REFINE, BUDGET_S } = stepSettings(args);
const wholeNumber = (name: keyof typeof args, min: number): number => {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} ${String(args[name])}: a whole number of at least ${min}`);
  return value;
};
const USERS = wholeNumber('users', 1);
const START = wholeNumber('start-deliveries', LEGS);
const MAX = wholeNumber('max-deliveries', START);
const MAX_P99_MS = wholeNumber('max-p99-ms', 1);
const SLEEPERS = wholeNumber('sleepers', 1);
const BACKLOG = wholeNumber('backlog', 1);
const WINDOW = wholeNumber('window', 1);
const RESOLUTION = Number(args.resolution);
const RETRIES = wholeNumber('retries', 0);
if (!(RESOLUTION >= 0)) throw new Error(`--resolution ${args.resolution}: a share of at least 0, e.g. 0.04 for 4 %`);
/** Seconds a search's set-up takes, Parley or bench/rooms.ts started, devices registered, the warm-up step. */
const SETUP_S = 30;
/** Seconds phase 2 is given: about a minute for 10,000 sleepers. */
const PHASE2_S = 20 + (SLEEPERS * (BACKLOG + 3)) / 1000;

const work = mkdtempSync(join(tmpdir(), 'parley-bench-devices-'));
const log = (text: string) => process.stderr.write(`${text}\n`);

// ---------------------------------------------------------------------------------------------
// Parley and its SQLite file

async function startParley(): Promise<Server> {
  // The sleepers' backlog counts in offline.max_per_user (100): raised out of the way.
  return launchParley(work, ['routes:', '  - { handler: relay }', 'offline:', '  max_per_user: 1000000', ''].join('\n'), PING);
}

/** Parley's SQLite file, read beside it (WAL: a reader sees what was committed). */
class StoreProbe {
  private readonly db = new SqliteDatabase(join(work, 'parley', 'parley.db'), { readonly: true, fileMustExist: true });
  private readonly pendingOf = this.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM message_deliveries WHERE device LIKE ?');
  private readonly devicesOf = this.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM devices WHERE device LIKE ?');

  /** Pending deliveries of the devices of `slot`. */
  pending(slot: number): number {
    return this.pendingOf.get(`urn:uuid:${slotPrefix(slot)}-%`)!.n;
  }

  /** Devices of `slot` Parley remembers. */
  remembered(slot: number): number {
    return this.devicesOf.get(`urn:uuid:${slotPrefix(slot)}-%`)!.n;
  }

  /** Bytes of the file's pages in use, and its delivery and message rows. */
  usage(): { bytes: number; deliveries: number; messages: number } {
    const pragma = (name: string) => this.db.pragma(name, { simple: true }) as number;
    return {
      bytes: (pragma('page_count') - pragma('freelist_count')) * pragma('page_size'),
      deliveries: (this.db.prepare('SELECT count(*) AS n FROM message_deliveries').get() as { n: number }).n,
      messages: (this.db.prepare('SELECT count(*) AS n FROM offline_messages').get() as { n: number }).n,
    };
  }

  close(): void {
    this.db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Devices

/**
 * Each device slot has instance URNs of its own: urn:uuid:<slot, 8 hex digits>-0000-4000-8000-<user
 * number, 12 hex digits>. Slots 1 and 2 are the awake devices of phase 1, 3 its sleepers, 4 phase 2's.
 */
const AWAKE_SLOTS = [1, 2];
const SLEEPING_SLOT = 3;
const WAKING_SLOT = 4;
const slotPrefix = (slot: number) => slot.toString(16).padStart(8, '0');
const instanceOf = (slot: number, user: number) => `${slotPrefix(slot)}-0000-4000-8000-${user.toString(16).padStart(12, '0')}`;

interface Transaction {
  text: string;
  sentMs: number;
  intervalMs: number;
  firstMs: number;
  resolve(status: number): void;
}

/** A backlog MESSAGE as a device received it: which one (its number in the user's backlog) and when. */
interface Receipt {
  seq: number;
  atMs: number;
}

/** Header lines a response copies (RFC 3261 §8.2.6), as bench/udp-responder.ts answers. */
const COPIED = /^(?:via|v|from|f|to|t|call-id|i|cseq)[ \t]*:/i;
const IS_TO = /^(?:to|t)[ \t]*:/i;

/**
 * Devices played by this script over one UDP socket, each with a contact of its own
 * (sip:user@127.0.0.1:port) and an instance URN: REGISTERs and MESSAGEs sent with UDP
 * retransmissions (T1 500 ms doubling to 4 s, 408 after 32 s), every MESSAGE that comes answered
 * 200 at once and recorded by the user it is for.
 */
class DeviceSocket {
  private readonly transactions = new Map<string, Transaction>();
  private readonly cseqs = new Map<string, number>();
  private readonly seenCallIds = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private sequence = 0;
  /** Backlog MESSAGEs received, by user, in the order they came. */
  readonly received = new Map<string, Receipt[]>();
  deliveries = 0;
  /** MESSAGEs received again (a Call-ID seen before): a retransmission or a delivery made twice. */
  repeats = 0;

  private constructor(private readonly socket: Socket, readonly port: number, private readonly serverPort: number) {
    socket.on('message', (data) => this.onDatagram(data.toString('latin1')));
    this.timer = setInterval(() => this.retransmit(), 100);
  }

  static async open(serverPort: number): Promise<DeviceSocket> {
    const socket = createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new DeviceSocket(socket, socket.address().port, serverPort);
  }

  register(user: string, instance: string, expires: number): Promise<number> {
    const cseq = (this.cseqs.get(user) ?? 0) + 1;
    this.cseqs.set(user, cseq);
    return this.request(`REGISTER sip:${DOMAIN} SIP/2.0`, [
      `From: <sip:${user}@${DOMAIN}>;tag=reg-${user}`,
      `To: <sip:${user}@${DOMAIN}>`,
      `Call-ID: reg-${user}@bench-devices`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <sip:${user}@127.0.0.1:${this.port}>;+sip.instance="<urn:uuid:${instance}>"`,
      `Expires: ${expires}`,
    ]);
  }

  message(from: string, to: string, body: string): Promise<number> {
    const n = this.sequence;
    return this.request(`MESSAGE sip:${to}@${DOMAIN} SIP/2.0`, [
      `From: <sip:${from}@${DOMAIN}>;tag=msg-${n}`,
      `To: <sip:${to}@${DOMAIN}>`,
      `Call-ID: msg-${n}@bench-devices`,
      'CSeq: 1 MESSAGE',
      'Content-Type: text/plain',
    ], body);
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.close();
  }

  private request(requestLine: string, headers: string[], body = ''): Promise<number> {
    const branch = `z9hG4bK-dev-${this.sequence++}`;
    const via = `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`;
    const text = [requestLine, via, 'Max-Forwards: 70', ...headers, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
    return new Promise((resolve) => {
      const now = performance.now();
      this.transactions.set(branch, { text, sentMs: now, firstMs: now, intervalMs: 500, resolve });
      this.socket.send(text, this.serverPort, '127.0.0.1');
    });
  }

  private retransmit(): void {
    const now = performance.now();
    for (const [branch, transaction] of this.transactions) {
      if (now - transaction.firstMs > 32_000) {
        this.transactions.delete(branch);
        transaction.resolve(408);
      } else if (now - transaction.sentMs >= transaction.intervalMs) {
        transaction.sentMs = now;
        transaction.intervalMs = Math.min(transaction.intervalMs * 2, 4000);
        this.socket.send(transaction.text, this.serverPort, '127.0.0.1');
      }
    }
  }

  private onDatagram(text: string): void {
    const headEnd = text.indexOf('\r\n\r\n');
    const head = text.slice(0, headEnd < 0 ? text.length : headEnd);
    if (text.startsWith('SIP/2.0 ')) {
      const status = Number(text.slice(8, 11));
      const branch = /branch=([^;\s,]+)/.exec(head)?.[1];
      const transaction = branch === undefined ? undefined : this.transactions.get(branch);
      if (status < 200 || !transaction) return;
      this.transactions.delete(branch!);
      transaction.resolve(status);
      return;
    }
    const atMs = performance.now();
    let response = 'SIP/2.0 200 OK\r\n';
    for (const line of head.split('\r\n')) {
      if (COPIED.test(line)) response += IS_TO.test(line) && !line.includes(';tag=') ? `${line};tag=device\r\n` : `${line}\r\n`;
    }
    this.socket.send(`${response}Content-Length: 0\r\n\r\n`, this.serverPort, '127.0.0.1');
    if (!text.startsWith('MESSAGE ')) return;
    const callId = /^(?:call-id|i)[ \t]*:[ \t]*(.*)$/im.exec(head)?.[1];
    if (callId === undefined) return;
    if (this.seenCallIds.has(callId)) {
      this.repeats++;
      return;
    }
    this.seenCallIds.add(callId);
    const user = /^MESSAGE sip:([^@]+)@/.exec(text)?.[1];
    const seq = /backlog ([0-9]+)/.exec(text.slice(headEnd + 4))?.[1];
    if (user === undefined || seq === undefined) return;
    this.deliveries++;
    let receipts = this.received.get(user);
    if (!receipts) this.received.set(user, (receipts = []));
    receipts.push({ seq: Number(seq), atMs });
  }
}

/** Runs task(0 .. n-1) with at most `window` running at once; statuses other than `want` are counted by status. */
async function windowed(n: number, window: number, want: number, task: (i: number) => Promise<number>): Promise<Map<number, number>> {
  const unexpected = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const status = await task(next++);
      if (status !== want) unexpected.set(status, (unexpected.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, worker));
  return unexpected;
}

/** Throws when some requests of a set-up stage were not answered `want`. */
function expectAll(what: string, unexpected: Map<number, number>, want: number): void {
  if (unexpected.size > 0) throw new Error(`${what}: not all answered ${want}: ${[...unexpected].map(([status, n]) => `${n} x ${status}`).join(', ')}`);
}

/** Registers each user as a device of `slot` and unregisters it again: remembered, asleep. */
async function putToSleep(devices: DeviceSocket, users: string[], slot: number): Promise<void> {
  expectAll('sleepers REGISTER', await windowed(users.length, WINDOW, 200, (i) => devices.register(users[i]!, instanceOf(slot, i), 3600)), 200);
  expectAll('sleepers unREGISTER', await windowed(users.length, WINDOW, 200, (i) => devices.register(users[i]!, instanceOf(slot, i), 0)), 200);
}

// ---------------------------------------------------------------------------------------------
// Phase 1: MESSAGE throughput to users with two awake devices and one asleep

/** One awake device of every user: a sipp process that registers them all and then answers and times what comes. */
function startAwakeDevices(server: Server, users: string[], slot: number): Promise<TimedUas> {
  return startTimedUas(server, DEVICE_SCENARIO, users.map((u, i) => [u, DOMAIN, instanceOf(slot, i)]), {}, BUDGET_S);
}

interface Step {
  /** MESSAGEs per second asked, and the deliveries (legs) per second that makes. */
  messages: number;
  deliveries: number;
  sentRate: number;
  deliveredRate: number;
  received: number;
  expected: number;
  oneWay: { p50: number; p99: number; timed: number };
  /** The sender's response times, ms. */
  rtts: number[];
  serverCpu: number;
  /** Parley's CPU time (all its threads: the SQLite writer's too) over the step, per leg received, µs, as bench/rooms.ts reports it. */
  cpuPerLegUs: number;
  sippCpu: number;
  drops: number;
  /** MESSAGEs answered 200 (each left a delivery row for its user's sleeping device), and sent. */
  answered: number;
  sent: number;
  problem?: string;
}

/**
 * Waits (30 s at most) until the awake devices have nothing waiting in the store; returns what is
 * still waiting. A step that failed leaves rows for them (answers lost, a device's queue then
 * delivered in order): delivered during the next step, they would be legs it did not send.
 */
async function awakeQueuesDrained(store: StoreProbe): Promise<number> {
  const waiting = () => AWAKE_SLOTS.reduce((sum, slot) => sum + store.pending(slot), 0);
  for (const until = Date.now() + 30_000; Date.now() < until; await sleep(200)) if (waiting() === 0) return 0;
  return waiting();
}

async function runStep(server: Server, store: StoreProbe, awake: TimedUas[], users: string[], messages: number): Promise<Step> {
  const calls = Math.round(messages * STEP_S);
  const expected = calls * LEGS;
  const left = await awakeQueuesDrained(store);
  if (left > 0) log(`  ${left} deliveries still wait for the awake devices after 30 s`);
  const receivedNow = () => awake.reduce((sum, device) => sum + device.received().count, 0);
  const before = await quiet(receivedNow, 600, Date.now() + 15_000);
  const eachBefore = awake.map((device) => device.received().count);
  for (const device of awake) device.legs(); // what earlier steps left in the logs
  const dropsBefore = udpDrops();
  const startedS = Date.now() / 1000;
  const options: SippOptions = {
    scenario: POST_SCENARIO,
    remote: { host: '127.0.0.1', port: server.port },
    users: users.map((u) => ['sender', u, DOMAIN]),
    keys: { body: 'benchmark message' },
    rate: messages,
    calls,
    limit: Math.max(200, messages * 2),
    timeoutS: STEP_S + 10,
    rttFreq: Math.max(1, Math.min(100, Math.floor(calls / 20))),
    statsPeriodS: STEP_S + 10,
    extraArgs: ['-buff_size', String(4 << 20)],
  };
  const sipp = await SippProcess.start(options);
  const meteredFrom = Date.now();
  const serverMeter = new CpuMeter(() => server.pids());
  const sippMeter = new CpuMeter(() => [sipp.pid, ...awake.map((device) => device.uas.pid)]);
  const result = await sipp.done;
  // The legs may trail the MESSAGEs: wait for them (10 s at most), then for quiet, which also shows
  // any delivered twice.
  let reachedS: number | undefined;
  const waitUntil = Date.now() + 10_000;
  while (Date.now() < waitUntil && reachedS === undefined) {
    if (receivedNow() - before >= expected) reachedS = Math.max(...awake.map((device) => device.received().atS));
    else await sleep(100);
  }
  const serverCpu = serverMeter.stop();
  const meteredS = (Date.now() - meteredFrom) / 1000;
  const sippCpu = sippMeter.stop();
  const received = (await quiet(receivedNow, 600, Date.now() + 10_000)) - before;
  const cpuPerLegUs = received > 0 ? (serverCpu * meteredS * 1e6) / received : NaN;
  // Each awake device must have had every MESSAGE, not one device some twice and the other fewer.
  const uneven = awake.map((device, i) => device.received().count - eachBefore[i]!).findIndex((count) => count !== calls);
  const eachLegs = await Promise.all(awake.map((device) => loggedLegs(device.legs, calls)));
  const legs = { latencies: eachLegs.flatMap((l) => l.latencies), untimed: eachLegs.flatMap((l) => l.untimed), unlogged: eachLegs.reduce((sum, l) => sum + l.unlogged, 0) };
  const latencies = legs.latencies.sort((a, b) => a - b);
  const legsFault = legsProblem(legs, expected);
  const oneWay = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), timed: latencies.length };
  const sentRate = achievedRate(result);
  const sentFromS = Number(result.stats?.columns.StartTime?.split('\t')[2] ?? startedS);
  const deliveredRate = reachedS !== undefined ? expected / (reachedS - sentFromS) : 0;
  let problem = sippProblem(result, calls);
  if (problem) problem = `MESSAGEs: ${problem}`;
  else if (received < expected) problem = `${expected - received} of ${expected} deliveries lost`;
  else if (received > expected) problem = `${received - expected} deliveries more than ${expected}`;
  else if (uneven >= 0) problem = `device ${AWAKE_SLOTS[uneven]} received ${awake[uneven]!.received().count - eachBefore[uneven]!} of ${calls}`;
  else if (legsFault) problem = legsFault;
  else if (oneWay.p99 > MAX_P99_MS) problem = `one-way p99 ${oneWay.p99.toFixed(0)} ms > ${MAX_P99_MS} ms`;
  else if (sentRate < 0.95 * messages) problem = `sent only ${Math.round(sentRate)}/s`;
  return {
    messages, deliveries: messages * LEGS, sentRate, deliveredRate, received, expected, oneWay, rtts: result.rtts.map((r) => r.ms),
    serverCpu, cpuPerLegUs, sippCpu, drops: udpDrops() - dropsBefore, answered: result.stats?.successful ?? 0, sent: result.stats?.outgoing ?? 0, problem,
  };
}

interface Phase1 {
  found: Found<Step>;
  /**
   * MESSAGEs answered 200 and sent over the phase (warm-up included), and the delivery rows the
   * sleepers hold: one for each answered, and for some of those a failing step left unanswered.
   */
  answered: number;
  sent: number;
  sleeperRows: number;
}

async function phase1(server: Server, store: StoreProbe, devices: DeviceSocket, deadline: number): Promise<Phase1> {
  const users = Array.from({ length: USERS }, (_, i) => `u${i}`);
  const awake = await Promise.all(AWAKE_SLOTS.map((slot) => startAwakeDevices(server, users, slot)));
  await putToSleep(devices, users, SLEEPING_SLOT);
  // Every device remembered (written with its binding) proves every REGISTER of the sipp processes took.
  for (let waited = 0; AWAKE_SLOTS.some((slot) => store.remembered(slot) < USERS); waited += 200) {
    if (waited > 30_000 || awake.some((device) => !device.uas.running)) throw new Error(`phase 1: the awake devices never all registered`);
    await sleep(200);
  }
  log(`phase 1: ${USERS} users, each with devices ${AWAKE_SLOTS.join(' and ')} registered (sipp) and device ${SLEEPING_SLOT} asleep`);
  let answered = 0;
  let sent = 0;
  const tally = (step: Step) => {
    answered += step.answered;
    sent += step.sent;
    return step;
  };
  // Warm-up, not measured: JIT compilation, the first store writes, socket buffers.
  tally(await runStep(server, store, awake, users, Math.max(1, Math.round(200 / LEGS))));
  const search = kneeSearch<Step>((step) => step.messages, {
    start: Math.max(1, Math.round(START / LEGS)), factor: 2, max: Math.floor(MAX / LEGS), resolution: RESOLUTION, refine: REFINE, retries: RETRIES,
  });
  for (let messages = search.next(); messages !== undefined; messages = search.next()) {
    if (Date.now() + (STEP_S + 15) * 1000 > deadline) {
      log(`  out of phase 1's time budget before the ${messages} MESSAGEs/s step`);
      break;
    }
    const step = tally(await runStep(server, store, awake, users, messages));
    log(
      `  ${String(messages).padStart(5)} MESSAGEs/s = ${String(step.deliveries).padStart(6)} deliveries/s  ${(step.problem ?? 'ok').padEnd(40)} ` +
        `sent ${Math.round(step.sentRate)}/s delivered ${Math.round(step.deliveredRate)}/s (${step.received}/${step.expected})  ` +
        `one-way p50 ${step.oneWay.p50.toFixed(1)} ms p99 ${step.oneWay.p99.toFixed(1)} ms  MESSAGE p99 ${percentile(step.rtts, 99)} ms  ` +
        `CPU server ${step.serverCpu.toFixed(2)} (${step.cpuPerLegUs.toFixed(0)} µs/leg) sipp ${step.sippCpu.toFixed(2)}  UDP drops ${step.drops}`,
    );
    search.record(step, !step.problem);
    if (step.problem) {
      const errors = server.log().split('\n').filter((l) => /ERROR|CRITICAL|error/.test(l)).slice(-3);
      if (errors.length) log(indent(`Parley's last errors:\n${errors.join('\n')}`));
    }
    await sleep(500);
  }
  for (const device of awake) {
    peers.delete(device.uas);
    await device.uas.stop();
  }
  return { found: search.found, answered, sent, sleeperRows: store.pending(SLEEPING_SLOT) };
}

// ---------------------------------------------------------------------------------------------
// Phase 2: sleeping devices register and take their backlog

interface Phase2 {
  fillRate: number;
  /** Storage added by the backlog, per delivery row. */
  bytesPerDelivery: number;
  rssPerDelivery: number;
  rowsAdded: number;
  messagesAdded: number;
  registerRate: number;
  registerFailures: Map<number, number>;
  /** Parley's CPU (cores) and the UDP datagrams dropped, from the first REGISTER to the last delivery. */
  serverCpu: number;
  drops: number;
  deliveryRate: number;
  elapsedS: number;
  toEach: { p50: number; p99: number };
  toLast: { p50: number; p99: number };
  delivered: number;
  expected: number;
  repeats: number;
  outOfOrder: number;
  incomplete: number;
  leftPending: number;
}

async function phase2(server: Server, store: StoreProbe, devices: DeviceSocket): Promise<Phase2> {
  const users = Array.from({ length: SLEEPERS }, (_, i) => `z${i}`);
  await putToSleep(devices, users, WAKING_SLOT);
  log(`phase 2: ${SLEEPERS} sleeping devices remembered; storing ${BACKLOG} MESSAGEs for each`);
  const before = store.usage();
  const rssBefore = residentBytes(server.pids()[0]!)!;
  // A user's next backlog MESSAGE is sent only once its previous one was answered (no more than
  // SLEEPERS outstanding), so the order stored is the order sent.
  const fillStart = performance.now();
  const total = SLEEPERS * BACKLOG;
  expectAll('backlog MESSAGE', await windowed(total, Math.min(WINDOW, SLEEPERS), 202, (n) => devices.message('filler', users[n % SLEEPERS]!, `backlog ${Math.floor(n / SLEEPERS)}`)), 202);
  const fillRate = total / ((performance.now() - fillStart) / 1000);
  const after = store.usage();
  const rowsAdded = after.deliveries - before.deliveries;
  const bytesPerDelivery = (after.bytes - before.bytes) / rowsAdded;
  const rssPerDelivery = (residentBytes(server.pids()[0]!)! - rssBefore) / rowsAdded;
  log(`  backlog stored at ${Math.round(fillRate)} MESSAGEs/s: ${rowsAdded} delivery rows, ${Math.round(bytesPerDelivery)} bytes of SQLite pages each; waking them`);

  const registeredAt = new Array<number>(SLEEPERS);
  const dropsBefore = udpDrops();
  const serverMeter = new CpuMeter(() => server.pids());
  const start = performance.now();
  const registerFailures = await windowed(SLEEPERS, WINDOW, 200, (i) => {
    registeredAt[i] = performance.now();
    return devices.register(users[i]!, instanceOf(WAKING_SLOT, i), 3600);
  });
  const registerRate = SLEEPERS / ((performance.now() - start) / 1000);
  const delivered = await quiet(() => devices.deliveries, 3000, Date.now() + 120_000);
  const meteredCores = serverMeter.stop();
  const meteredMs = performance.now() - start;
  const drops = udpDrops() - dropsBefore;
  const toEach: number[] = [];
  const toLast: number[] = [];
  let outOfOrder = 0;
  let incomplete = 0;
  let lastMs = start;
  users.forEach((user, i) => {
    const receipts = devices.received.get(user) ?? [];
    if (receipts.length < BACKLOG) incomplete++;
    if (receipts.some((receipt, n) => receipt.seq !== n)) outOfOrder++;
    for (const receipt of receipts) toEach.push(receipt.atMs - registeredAt[i]!);
    const last = receipts.at(-1);
    if (last) {
      toLast.push(last.atMs - registeredAt[i]!);
      lastMs = Math.max(lastMs, last.atMs);
    }
  });
  toEach.sort((a, b) => a - b);
  toLast.sort((a, b) => a - b);
  const elapsedS = (lastMs - start) / 1000;
  return {
    fillRate, bytesPerDelivery, rssPerDelivery, rowsAdded, messagesAdded: after.messages - before.messages,
    registerRate, registerFailures, drops, deliveryRate: delivered / elapsedS, elapsedS,
    // Over the time to the last delivery: the wait for quiet after it was idle.
    serverCpu: (meteredCores * meteredMs) / Math.max(1, lastMs - start),
    toEach: { p50: percentile(toEach, 50), p99: percentile(toEach, 99) },
    toLast: { p50: percentile(toLast, 50), p99: percentile(toLast, 99) },
    delivered, expected: total, repeats: devices.repeats, outOfOrder, incomplete, leftPending: store.pending(WAKING_SLOT),
  };
}

// ---------------------------------------------------------------------------------------------
// Comparison: bench/rooms.ts with rooms of 3 members

interface RoomsRow {
  deliveries: string;
  /** The cells of its highest passing step: posts/s, one-way p50 and p99, the poster's p99, CPU srv/sipp, server µs per leg. */
  posts: string;
  p50: string;
  p99: string;
  postP99: string;
  cpu: string;
  cpuPerLegUs: string;
  /** Deliveries/s of the highest passing and the lowest failing step. */
  bracket: Bracket;
  command: string;
  problem?: string;
}

/** Phase 1's limit in deliveries/s. */
function bracketOf(found: Found<Step>): Bracket {
  return { passed: found.best?.deliveries, failed: found.failed?.deliveries };
}

/** bench/rooms.ts with rooms of 3, given `seconds`, its search starting at `near` (phase 1's bracket) when it is closed. */
async function roomsOfThree(near: Bracket, seconds: number): Promise<RoomsRow> {
  const start = near.passed ?? START;
  const grow = near.passed !== undefined && near.failed !== undefined ? near.failed / near.passed : 2;
  const argv = [
    '--no-kamailio', '--sizes', '3', '--step-seconds', String(STEP_S), '--refine', String(REFINE), '--resolution', String(RESOLUTION), '--retries', String(RETRIES),
    '--start-deliveries', String(start), '--grow', grow.toFixed(4), '--max-deliveries', String(MAX), '--max-p99-ms', String(MAX_P99_MS),
    '--budget-seconds', String(Math.round(seconds)),
  ];
  const command = `npm run bench:rooms -- ${argv.join(' ')}`;
  log(`rooms of 3 for comparison: ${command}`);
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'rooms.ts'), ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  // | room | Parley deliveries/s | posts/s | one-way p50 ms | one-way p99 ms | post p99 ms | CPU srv/sipp | srv µs/leg |
  const row = output.split('\n').find((line) => line.startsWith('| 3 members'))?.split('|').map((cell) => cell.trim());
  if (!row) {
    return { deliveries: '-', posts: '-', p50: '-', p99: '-', postP99: '-', cpu: '-', cpuPerLegUs: '-', bracket: {}, command, problem: `bench/rooms.ts exited ${code} without a result` };
  }
  // Why each search stopped:
  //   Parley, 3 members: 9000/s (4500 posts/s) failed: ...
  const failed = /Parley, 3 members: ([0-9]+)\/s/.exec(output)?.[1];
  const passed = Number(row[2]);
  return {
    deliveries: row[2]!, posts: row[3]!, p50: row[4]!, p99: row[5]!, postP99: row[6]!, cpu: row[7]!, cpuPerLegUs: row[8]!, command,
    bracket: { passed: Number.isFinite(passed) ? passed : undefined, failed: failed === undefined ? undefined : Number(failed) },
  };
}

// ---------------------------------------------------------------------------------------------
// Report

function report(one: Phase1, two: Phase2, rooms: RoomsRow | undefined, loadBefore: number[]): string {
  const best = one.found.best;
  const failed = one.found.failed;
  const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '-');
  const phase1Rows = [
    ['fan-out', 'deliveries/s', 'MESSAGEs/s', 'one-way p50 ms', 'one-way p99 ms', 'sender p99 ms', 'CPU srv/sipp', 'srv µs/leg'],
    best
      ? [
        'per device (2 awake + 1 asleep)', String(best.deliveries), String(best.messages), ms(best.oneWay.p50), ms(best.oneWay.p99), String(percentile(best.rtts, 99)),
        `${best.serverCpu.toFixed(2)}/${best.sippCpu.toFixed(2)}`, best.cpuPerLegUs.toFixed(0),
      ]
      : ['per device (2 awake + 1 asleep)', `< ${START}`, '-', '-', '-', '-', '-', '-'],
  ];
  phase1Rows[0]!.push('failed at', 'gap');
  phase1Rows[1]!.push(failed ? String(failed.deliveries) : '-', bracketWidth(bracketOf(one.found)));
  if (rooms) {
    phase1Rows.push([
      'room of 3 (2 legs)', rooms.deliveries, rooms.posts, rooms.p50, rooms.p99, rooms.postP99, rooms.cpu, rooms.cpuPerLegUs,
      rooms.bracket.failed === undefined ? '-' : String(rooms.bracket.failed), bracketWidth(rooms.bracket),
    ]);
  }
  const ratio = rooms && best && Number(rooms.deliveries) > 0 ? (best.deliveries / Number(rooms.deliveries)).toFixed(2) : '-';
  const bounds = rooms && ratioOf(bracketOf(one.found), rooms.bracket);
  const within = bounds ? `, between ${bounds.low?.toFixed(2) ?? '?'} and ${bounds.high?.toFixed(2) ?? '?'} by the brackets: goal ${bounds.verdict}` : '';
  const registerFailures = [...two.registerFailures].map(([status, n]) => `${n} x ${status}`).join(', ');
  const checks = [
    two.delivered === two.expected ? 'all delivered' : `${two.expected - two.delivered} of ${two.expected} NOT delivered`,
    two.repeats === 0 ? 'none twice' : `${two.repeats} received again (Parley's retransmissions: answers it read late, or lost)`,
    two.outOfOrder === 0 ? 'each device in the order stored' : `${two.outOfOrder} devices OUT OF ORDER`,
    two.incomplete === 0 ? '' : `${two.incomplete} devices short of their backlog`,
    two.leftPending === 0 ? 'no row left pending' : `${two.leftPending} rows still pending`,
    registerFailures ? `REGISTERs not 200: ${registerFailures}` : '',
  ].filter(Boolean).join(', ');
  return `
Parley per-device delivery benchmark, ${new Date().toISOString()}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), UDP on 127.0.0.1
load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadavg().map((l) => l.toFixed(1)).join(' ')} (sipp and this script share the cores)

Phase 1: MESSAGEs to ${USERS} users with 2 awake devices (sipp) and 1 asleep each; ${STEP_S} s steps from ~${START} deliveries/s, doubling,
then bisections until the failing rate is within ${(RESOLUTION * 100).toFixed(1)} % of the passing one (${REFINE} at most), a failing rate tried ${RETRIES + 1} times;
gap: how far the failing rate lies above the passing one
${table(phase1Rows)}
${rooms ? `per device / room: ${ratio} of the highest passing rates (goal >= 1)${within}${rooms.problem ? `; rooms: ${rooms.problem}` : ''}\nrooms: ${rooms.command}\n` : `room comparison skipped (--no-rooms); run: npm run bench:rooms -- --no-kamailio --sizes 3 --step-seconds ${STEP_S} --refine ${REFINE} --resolution ${RESOLUTION} --retries ${RETRIES} --start-deliveries ${START}\n`}\
stopped: ${failed ? `${failed.deliveries}/s (${failed.messages} MESSAGEs/s) failed: ${failed.problem}` : 'no step failed'}
sleeping devices: ${one.sleeperRows} delivery rows pending for ${one.answered} MESSAGEs answered 200 of ${one.sent} sent (${one.sleeperRows >= one.answered && one.sleeperRows <= one.sent ? 'one each' : 'NOT one each'})

Phase 2: ${SLEEPERS} sleeping devices register (${WINDOW} REGISTERs outstanding at most) and take ${BACKLOG} stored MESSAGEs each
${table([
  ['REGISTERs/s', 'deliveries/s', 'all done in s', 'REGISTER to each delivery p50/p99 ms', 'REGISTER to last delivery p50/p99 ms', 'CPU srv', 'UDP drops'],
  [
    String(Math.round(two.registerRate)), String(Math.round(two.deliveryRate)), two.elapsedS.toFixed(1), `${ms(two.toEach.p50)} / ${ms(two.toEach.p99)}`,
    `${ms(two.toLast.p50)} / ${ms(two.toLast.p99)}`, two.serverCpu.toFixed(2), String(two.drops),
  ],
])}
${two.delivered}/${two.expected} delivered: ${checks}
backlog stored at ${Math.round(two.fillRate)} MESSAGEs/s (202); storage per pending delivery (one row per message here): ${Math.round(two.bytesPerDelivery)} bytes
of SQLite pages in use (${two.rowsAdded} delivery rows, ${two.messagesAdded} messages added), Parley RSS ${Math.round(two.rssPerDelivery)} bytes (noisy)

deliveries/s   phase 1: legs per second of the highest passing step (bench/rooms.ts's fan-out criterion:
               every MESSAGE answered 200, none retransmitted, >= 95 % of the rate sent, every leg
               arrived once, one-way p99 <= ${MAX_P99_MS} ms); phase 2: backlog MESSAGEs delivered over the
               time from the first REGISTER to the last delivery
one-way        from the sender's send time in the body to the awake device's receipt (sipp clocks)
srv µs/leg     Parley's CPU time (all its threads) over that step over the legs delivered: what a leg
               costs, the MESSAGE's own cost and its store write included, which a busy machine
               changes less than the rates (a room post's is its history write, in batches)
REGISTER to    from when a sleeping device sent its REGISTER to when each (or the last) of its
               backlog came; includes the wait for a REGISTER slot of the window`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  const deadline = started + BUDGET_S * 1000;
  // Time for steps: the budget less phase 2 and the set-ups; phase 1 gets half of it, or all without rooms.
  const stepsMs = (BUDGET_S - PHASE2_S - (args['no-rooms'] ? 1 : 2) * SETUP_S) * 1000;
  if (stepsMs < 4 * (STEP_S + 15) * 1000) throw new Error(`--budget-seconds ${BUDGET_S}: too short for phase 2 (${Math.round(PHASE2_S)} s) and a few ${STEP_S} s steps`);
  const loadBefore = loadavg();
  const server = await startParley();
  log(`Parley listening on udp:127.0.0.1:${server.port}`);
  const store = new StoreProbe();
  const devices = await DeviceSocket.open(server.port);
  let one: Phase1;
  let two: Phase2;
  try {
    one = await phase1(server, store, devices, started + SETUP_S * 1000 + (args['no-rooms'] ? stepsMs : stepsMs / 2));
    two = await phase2(server, store, devices);
  } finally {
    devices.close();
    store.close();
    await server.stop();
  }
  const rooms = args['no-rooms'] ? undefined : await roomsOfThree(bracketOf(one.found), (deadline - Date.now()) / 1000);
  console.log(report(one, two, rooms, loadBefore));
}

await runBounded(main, work, BUDGET_S + 120);
