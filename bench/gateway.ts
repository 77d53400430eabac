// Benchmark (not a test): the per-user gateway (src/gateway/) with 1,000 linked XMPP accounts on a
// real Prosody, each its own @xmpp/client session inside Parley.
//
//   npm run bench:gateway
//   npm run bench:gateway -- --users 200 --online-timeout 60 --step-seconds 5 --heap
//
// Set-up: Prosody (test/support/prosody.ts, test/fixtures/prosody/prosody.cfg.lua) with the accounts
// u0..u<N-1> and the receivers rx0..rx<R-1> written into its data directory before it starts
// (internal storage, plain passwords: Prosody derives SCRAM-SHA-1 from them at each login). Parley's
// account map is filled through the library (store.gatewayAccounts.put, passwords sealed with
// SecretBox): u<i>@xmpp.test linked to sip:u<i>@localhost through 127.0.0.1:<c2s> with tls none,
// so the gateway logs in with SCRAM-SHA-1 (never PLAIN without TLS). Parley runs in a process of its
// own (bench/gateway-server.ts), with gateway.allow_unauthenticated so that the load needs no digest.
//
// (1) Online: sipp registers the N SIP users (test/sipp/register.xml); each REGISTER brings its
//     user's session online. Measured: the time until the gateway counts N sessions online, and
//     Parley's RSS before (accounts stored, nobody registered) and with the N sessions online and
//     idle, each after two full GCs: memory per idle session = RSS growth / N.
// (2) SIP -> XMPP: sipp (bench/sipp/xmpp-message.xml) sends MESSAGEs from the N users in turn to
//     sip:rx<i % R>*xmpp.test@xmpp.localhost, each answered 202 and carried by the sender's own
//     session to one of R @xmpp/client receivers, which time the arrival against sipp's send time in
//     the body. Rates double from --start-rate until a step loses a message or falls behind, then
//     --refine bisection steps narrow the gap (bench/common.ts).
// (3) Restart: Parley stopped gracefully and started again on the same database, where the
//     registrations are stored: the time until the N sessions are online again without any new
//     REGISTER, or the report that they did not come online.
// Each bring-up waits at most --online-timeout seconds. A Parley that dies is reported with the
// error it printed, and the phases after it are not run.
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { SecretBox, sealContext, xmppAliasOf } from '../src/gateway/index.js';
import { openStore } from '../src/store/index.js';
import { Prosody } from '../test/support/prosody.js';
import { freePort, percentile, runSipp } from '../test/support/sipp.js';
import {
  CpuMeter, DOMAIN, ROOT, XmppSession, achievedRate, arrivalStats, compiledDist, deliveryProblem, gatewayMessages, indent, launch, packageVersion, quiet,
  rateSearch, runBounded, sippProblem, sleep, stepSettings, table, type Arrival, type Delivery, type Found,
} from './common.js';
import type { Operation, Status } from './gateway-server.js';

const XMPP_DOMAIN = 'xmpp.test';
const PASSWORD = 'bench-password';
const SECRET_KEY = 'bench-gateway-secret-key';
/** The issue's goals. */
const GOAL_ONLINE_S = 30;
const GOAL_KIB_PER_SESSION = 256;
/** How long the sessions sit idle before the second memory reading. */
const IDLE_MS = 5000;
/** A bring-up with nothing connecting this long after its start is over: nobody is starting sessions. */
const NOTHING_STARTED_MS = 15_000;

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '1000' },
    receivers: { type: 'string', default: '4' },
    'register-rate': { type: 'string', default: '200' },
    'online-timeout': { type: 'string', default: '90' },
    'step-seconds': { type: 'string', default: '3' },
    refine: { type: 'string', default: '2' },
    'budget-seconds': { type: 'string', default: '300' },
    'start-rate': { type: 'string', default: '200' },
    'max-rate': { type: 'string', default: '16000' },
    // Heap snapshots before and after (1), and the object kinds that grew most per session; they
    // take memory of their own, so the RSS figures of such a run are not the ones to quote.
    heap: { type: 'boolean' },
  },
});
const { STEP_S, REFINE, BUDGET_S } = stepSettings(args);
const USERS = Number(args.users);
const RECEIVERS = Number(args.receivers);
const REGISTER_RATE = Number(args['register-rate']);
const ONLINE_TIMEOUT_MS = Number(args['online-timeout']) * 1000;
const START_RATE = Number(args['start-rate']);
const MAX_RATE = Number(args['max-rate']);

const work = mkdtempSync(join(tmpdir(), 'parley-bench-gateway-'));
const log = (text: string) => process.stderr.write(`${text}\n`);
const users = Array.from({ length: USERS }, (_, i) => `u${i}`);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

// ---------------------------------------------------------------------------------------------
// Prosody's accounts and Parley's account map, written directly

/** A name as Prosody's internal storage (util.datamanager) writes it: other than [A-Za-z0-9] as %xx. */
const storageName = (name: string) => name.replace(/[^A-Za-z0-9]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

function writeProsodyAccounts(dir: string, names: string[]): void {
  const accounts = join(dir, 'data', storageName(XMPP_DOMAIN), 'accounts');
  mkdirSync(accounts, { recursive: true });
  const file = `return {\n\t["password"] = ${JSON.stringify(PASSWORD)};\n};\n`;
  for (const name of names) writeFileSync(join(accounts, `${storageName(name)}.dat`), file);
}

async function linkAccounts(database: string, prosody: Prosody): Promise<void> {
  const store = await openStore(database);
  const box = new SecretBox(SECRET_KEY);
  try {
    for (const user of users) {
      const identity = { sipUser: `sip:${user}@${DOMAIN}`, extProt: 'xmpp', extUser: `${user}@${XMPP_DOMAIN}` };
      const extPass = box.seal(PASSWORD, sealContext(identity));
      await store.gatewayAccounts.put({ ...identity, extPass, server: '127.0.0.1', port: prosody.c2sPort, tls: 'none' });
    }
  } finally {
    await store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Parley in its own process (bench/gateway-server.ts), asked over IPC

class Parley {
  private lastId = 0;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  private constructor(private readonly launched: ReturnType<typeof launch>) {
    const child = launched.child;
    child.on('message', (message: { id?: number; result?: unknown; error?: string }) => {
      const waiter = message.id === undefined ? undefined : this.waiting.get(message.id);
      if (!waiter) return;
      this.waiting.delete(message.id!);
      if (message.error) waiter.reject(new Error(`Parley: ${message.error}`));
      else waiter.resolve(message.result);
    });
    child.once('exit', (code, signal) => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`Parley exited (${code ?? signal})\n${indent(this.log().slice(-2000))}`));
      this.waiting.clear();
    });
  }

  /** Starts it and resolves once it has started (its SIP listener bound, the gateway running). */
  static async start(configFile: string): Promise<Parley> {
    // --experimental-strip-types: the default from Node 22.18 on, needed before it (engines: >= 22.12).
    const launched = launch(process.execPath, ['--expose-gc', '--experimental-strip-types', join(ROOT, 'bench', 'gateway-server.ts'), compiledDist(), configFile], ROOT, { ipc: true });
    const parley = new Parley(launched);
    await new Promise<void>((resolve, reject) => {
      launched.child.on('message', (message: { started?: boolean }) => message.started && resolve());
      launched.child.once('exit', (code, signal) => reject(new Error(`Parley exited (${code ?? signal}) while starting\n${indent(parley.log().slice(-2000))}`)));
    });
    return parley;
  }

  get running(): boolean {
    const child = this.launched.child;
    return child.exitCode === null && child.signalCode === null;
  }

  get pid(): number {
    return this.launched.child.pid!;
  }

  log(): string {
    return this.launched.log();
  }

  private request<T>(op: Operation, extra: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.lastId;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      // A send to a Parley that has exited fails here (the exit handler tells the others).
      this.launched.child.send({ id, op, ...extra }, (error) => {
        if (!error) return;
        this.waiting.delete(id);
        reject(new Error(`Parley: ${error.message}\n${indent(this.log().slice(-2000))}`));
      });
    });
  }

  status = () => this.request<Status>('status');
  /** The status after two full collections: the memory that stays. */
  collected = () => this.request<Status>('gc');
  snapshot = (file: string) => this.request<string>('snapshot', { file });

  /** Its own graceful stop (SIGKILL after 60 s); resolves with how long it took. */
  async stop(): Promise<number> {
    const child = this.launched.child;
    const started = Date.now();
    if (!this.running) return 0;
    const exited = once(child, 'exit');
    child.send({ id: 0, op: 'stop' }, (error) => error && child.kill('SIGTERM'));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
    return Date.now() - started;
  }
}

interface Bringup {
  /** Whether every session came online; `ms` is then when, from the start, else when it was given up. */
  complete: boolean;
  ms: number;
  /** The sessions by state at the end, and how many were online at the goal's time. */
  sessions: Status['sessions'];
  onlineAtGoal: number;
  /** Cores busy meanwhile. */
  parleyCpu: number;
  prosodyCpu: number;
  /** What Parley printed when it died meanwhile. */
  crashed?: string;
}

/** What a Parley that died printed: the error thrown and where, or its last line. */
function crashOf(parley: Parley): string {
  const lines = parley.log().split('\n').map((line) => line.trim()).filter(Boolean);
  const error = lines.findIndex((line) => /^\w*Error\b/.test(line));
  const text = error < 0 ? lines[lines.length - 1] ?? 'no output' : `${lines[error]} ${lines[error + 1] ?? ''}`;
  return text.replaceAll(`file://${ROOT}/`, '').replaceAll(`${ROOT}/`, '');
}

/**
 * Polls the gateway until `USERS` sessions are online, at most ONLINE_TIMEOUT_MS from `startedAt`;
 * gives up earlier once none is connecting NOTHING_STARTED_MS after the start (nothing more will
 * come online by itself), or when Parley dies. Progress every 5 s on standard error.
 */
async function bringup(parley: Parley, prosody: Prosody, startedAt: number): Promise<Bringup> {
  const parleyMeter = new CpuMeter(() => [parley.pid]);
  const prosodyMeter = new CpuMeter(() => [prosody.pid!]);
  let onlineAtGoal = 0;
  let logged = 0;
  let sessions: Status['sessions'] = { connecting: 0, online: 0, stopped: 0, failed: 0 };
  const end = (complete: boolean, crashed?: string): Bringup => {
    const ms = Date.now() - startedAt;
    const result = { complete, ms, sessions, onlineAtGoal, parleyCpu: parleyMeter.stop(), prosodyCpu: prosodyMeter.stop(), crashed };
    log(`  ${describe(result)}`);
    return result;
  };
  for (;;) {
    try {
      ({ sessions } = await parley.status());
    } catch {
      return end(false, crashOf(parley));
    }
    const elapsed = Date.now() - startedAt;
    if (elapsed <= GOAL_ONLINE_S * 1000) onlineAtGoal = sessions.online;
    if (sessions.online >= USERS) return end(true);
    if (elapsed > ONLINE_TIMEOUT_MS || (elapsed > NOTHING_STARTED_MS && sessions.connecting === 0)) return end(false);
    if (elapsed - logged >= 5000) {
      logged = elapsed;
      log(`  ${(elapsed / 1000).toFixed(1).padStart(5)} s: ${sessions.online} online, ${sessions.connecting} connecting`);
    }
    await sleep(200);
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A bring-up in words: how long it took, or how far it got. */
function describe(b: Bringup): string {
  const cpu = `CPU Parley ${b.parleyCpu.toFixed(2)}, Prosody ${b.prosodyCpu.toFixed(2)}`;
  const counts = `${b.sessions.online} online, ${b.sessions.connecting} connecting`;
  if (b.crashed && b.complete) return `all online in ${seconds(b.ms)} (${cpu}), then Parley CRASHED: ${b.crashed}`;
  if (b.crashed) return `Parley CRASHED ${seconds(b.ms)} in (${counts} just before; ${cpu}): ${b.crashed}`;
  if (b.complete) return `all online in ${seconds(b.ms)} (${cpu})`;
  if (b.sessions.online + b.sessions.connecting === 0) return `no session started within ${seconds(b.ms)}`;
  return `NOT all online after ${seconds(b.ms)}: ${counts}, ${b.onlineAtGoal} online at ${GOAL_ONLINE_S} s (${cpu})`;
}

// ---------------------------------------------------------------------------------------------
// (1) All online, and memory

interface Online extends Bringup {
  /** sipp's REGISTERs: how long they took, and what went wrong. */
  registerMs: number;
  registerProblem?: string;
  before: Status['memory'];
  after?: Status['memory'];
  heap?: string;
}

async function allOnline(parley: Parley, prosody: Prosody, port: number): Promise<Online> {
  await sleep(1000);
  const before = (await parley.collected()).memory;
  if (args.heap) await parley.snapshot(join(work, 'before.heapsnapshot'));
  log(`(1) registering ${USERS} SIP users at ${REGISTER_RATE}/s; Parley RSS ${mib(before.rss)} MiB, heap ${mib(before.heapUsed)} MiB`);
  const startedAt = Date.now();
  const registering = runSipp({
    scenario: 'register.xml',
    remote: { host: '127.0.0.1', port },
    users: users.map((user) => [user, DOMAIN, '-']),
    keys: { expires: 3600 },
    vars: { expected: 200, hold_ms: 0 },
    rate: REGISTER_RATE,
    calls: USERS,
    timeoutS: USERS / REGISTER_RATE + 30,
  }).then((result) => ({ result, ms: Date.now() - startedAt }));
  const up = await bringup(parley, prosody, startedAt);
  const registered = await registering;
  const online: Online = { ...up, registerMs: registered.ms, registerProblem: sippProblem(registered.result, USERS, 'REGISTERs'), before };
  log(`  REGISTERs: ${online.registerProblem ?? 'all answered 200'}, sent in ${seconds(registered.ms)}`);
  if (!up.complete) return online;
  await sleep(IDLE_MS);
  try {
    online.after = (await parley.collected()).memory;
    if (args.heap) {
      await parley.snapshot(join(work, 'after.heapsnapshot'));
      online.heap = heapGrowth(join(work, 'before.heapsnapshot'), join(work, 'after.heapsnapshot'), up.sessions.online);
    }
  } catch (error) {
    if (parley.running) throw error;
    online.crashed = crashOf(parley);
  }
  return online;
}

/** Self sizes and counts of a heap snapshot by kind: objects and closures by constructor or function name. */
function heapKinds(file: string): Map<string, { count: number; bytes: number }> {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const types = snapshot.snapshot.meta.node_types[0];
  const kinds = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const kind = type === 'object' || type === 'closure' || type === 'native' ? `${type} ${snapshot.strings[snapshot.nodes[i + nameAt]!]}` : `(${type})`;
    const entry = kinds.get(kind) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snapshot.nodes[i + sizeAt]!;
    kinds.set(kind, entry);
  }
  return kinds;
}

/** The kinds of heap objects that grew most between two snapshots, per session. */
function heapGrowth(beforeFile: string, afterFile: string, sessions: number): string {
  const before = heapKinds(beforeFile);
  const growth = [...heapKinds(afterFile)].map(([kind, after]) => {
    const was = before.get(kind) ?? { count: 0, bytes: 0 };
    return { kind, count: (after.count - was.count) / sessions, bytes: (after.bytes - was.bytes) / sessions };
  });
  growth.sort((a, b) => b.bytes - a.bytes);
  const total = growth.reduce((sum, g) => sum + g.bytes, 0);
  const rows = [['heap object kind', 'per session: objects', 'bytes']];
  for (const g of growth.slice(0, 15)) rows.push([g.kind.slice(0, 60), g.count.toFixed(1), g.bytes.toFixed(0)]);
  rows.push(['all kinds', '', total.toFixed(0)]);
  return table(rows);
}

// ---------------------------------------------------------------------------------------------
// (2) SIP -> XMPP through the users' sessions

interface Step extends Delivery {
  latencies: number[];
  /** Cores busy during the step: Parley, Prosody, and this process (the receivers). */
  parleyCpu: number;
  prosodyCpu: number;
  receiversCpu: number;
  problem?: string;
}

async function messages(parley: Parley, prosody: Prosody, port: number, receivers: XmppSession[], deadline: number): Promise<Found<Step>> {
  const alias = xmppAliasOf(loadConfig(join(work, 'parley.yaml'))).alias;
  const rows = users.map((user, i) => [user, DOMAIN, `rx${i % RECEIVERS}*${XMPP_DOMAIN}`, alias]);
  const arrivals = (tag: string) => receivers.flatMap((r) => r.arrivals.get(tag) ?? []);
  const total = () => receivers.reduce((n, r) => n + [...r.arrivals.values()].reduce((m, l) => m + l.length, 0), 0);
  const step = async (rate: number, tag: string): Promise<Step> => {
    const calls = Math.round(rate * STEP_S);
    const parleyMeter = new CpuMeter(() => [parley.pid]);
    const prosodyMeter = new CpuMeter(() => [prosody.pid!]);
    const receiversMeter = new CpuMeter(() => [process.pid]);
    const result = await runSipp(gatewayMessages(port, rows, tag, rate, calls, STEP_S + 10));
    await quiet(() => arrivals(tag).length, 1000, Date.now() + 15_000);
    const got: Arrival[] = arrivals(tag);
    const partial = { rate, sent: calls, sentRate: achievedRate(result), received: got.length, ...arrivalStats(got, calls), parleyCpu: parleyMeter.stop(), prosodyCpu: prosodyMeter.stop(), receiversCpu: receiversMeter.stop() };
    return { ...partial, problem: deliveryProblem(partial, sippProblem(result, calls)) };
  };
  // Warm-up, not measured: JIT compilation, the sessions' first stanzas.
  const warmup = await step(100, 'warmup');
  if (warmup.received === 0) throw new Error(`no SIP -> XMPP message arrived (${warmup.problem})\n${indent(parley.log().slice(-1500))}`);
  const found: Found<Step> = {};
  const next = rateSearch(found, (s) => s.rate, START_RATE, (rate) => rate <= MAX_RATE, REFINE);
  for (let rate = next(), n = 0; rate !== undefined; rate = next(), n++) {
    if (Date.now() + (STEP_S + 20) * 1000 > deadline) {
      log(`  out of time budget before the ${rate}/s step`);
      break;
    }
    const s = await step(rate, `step${n}`);
    log(
      `  ${String(rate).padStart(6)}/s  ${(s.problem ?? 'ok').padEnd(36)} sent ${Math.round(s.sentRate)}/s arrived ${Math.round(s.arrivedRate)}/s (${s.received}/${s.sent})` +
        `  latency p50 ${percentile(s.latencies, 50).toFixed(1)} p99 ${percentile(s.latencies, 99).toFixed(1)} ms  CPU Parley ${s.parleyCpu.toFixed(2)} Prosody ${s.prosodyCpu.toFixed(2)} receivers ${s.receiversCpu.toFixed(2)}`,
    );
    if (s.problem) {
      found.failed = s;
      await quiet(total, 2000, Math.min(deadline, Date.now() + 30_000));
    } else {
      found.best = s;
      await sleep(500);
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// (3) Restart

interface Restart extends Bringup {
  stopMs: number;
  startMs: number;
}

async function restart(parley: Parley, prosody: Prosody, configFile: string): Promise<{ parley: Parley; restart: Restart }> {
  log(`(3) restarting Parley with ${USERS} registrations stored`);
  const stopMs = await parley.stop();
  const startedAt = Date.now();
  const again = await Parley.start(configFile);
  const startMs = Date.now() - startedAt;
  const up = await bringup(again, prosody, startedAt);
  log(`  the graceful stop took ${seconds(stopMs)}, the start ${seconds(startMs)}`);
  return { parley: again, restart: { ...up, stopMs, startMs } };
}

// ---------------------------------------------------------------------------------------------
// Report

function report(online: Online, search: Found<Step> | string, restarted: Restart | string, prosodyVersion: string, loadBefore: number[]): string {
  const after = online.after;
  const perSession = (field: 'rss' | 'heapUsed') => `${((after![field] - online.before[field]) / USERS / 1024).toFixed(0)} KiB`;
  const best = typeof search === 'string' ? undefined : search.best;
  const rows = [
    ['measure', 'result', 'goal'],
    [`(1) ${USERS} sessions online after REGISTER`, describe(online), `< ${GOAL_ONLINE_S} s`],
    [
      `(1) Parley RSS: before -> ${USERS} idle sessions`,
      after ? `${mib(online.before.rss)} -> ${mib(after.rss)} MiB (heap ${mib(online.before.heapUsed)} -> ${mib(after.heapUsed)} MiB)` : 'not measured',
      '',
    ],
    ['(1) memory per idle session', after ? `${perSession('rss')} RSS (heap ${perSession('heapUsed')})` : 'not measured', `<= ${GOAL_KIB_PER_SESSION} KiB`],
    [
      '(2) SIP -> XMPP max msg/s, no loss',
      typeof search === 'string'
        ? search
        : !search.best && !search.failed
          ? 'no step run: out of time budget'
          : best
          ? `${best.rate}/s: latency p50 ${percentile(best.latencies, 50).toFixed(1)} ms, p99 ${percentile(best.latencies, 99).toFixed(1)} ms (CPU Parley ${best.parleyCpu.toFixed(2)}, Prosody ${best.prosodyCpu.toFixed(2)}, receivers ${best.receiversCpu.toFixed(2)})`
          : `< ${START_RATE}/s`,
      '',
    ],
    [
      `(3) ${USERS} sessions online after a restart`,
      typeof restarted === 'string'
        ? restarted
        : `${describe(restarted)}; the graceful stop took ${seconds(restarted.stopMs)}, the start ${seconds(restarted.startMs)}` +
          (restarted.sessions.online + restarted.sessions.connecting === 0 && !restarted.crashed ? ': the gateway did not bring the stored registrations online' : ''),
      '',
    ],
  ];
  const failed = typeof search === 'string' ? undefined : search.failed;
  return `
Parley per-user gateway benchmark, ${new Date().toISOString()}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Prosody ${prosodyVersion} on 127.0.0.1
load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadavg().map((l) => l.toFixed(1)).join(' ')}: the machine may be shared
${table(rows)}

(1)  ${USERS} XMPP accounts linked to ${USERS} SIP users; the time runs from the first REGISTER (sipp at ${REGISTER_RATE}/s${online.registerProblem ? `, ${online.registerProblem}` : ''})
     until the gateway's stats count every session online (bound, presence sent). Each session logs in
     with SCRAM-SHA-1 (tls none) at the 10,000 iterations Prosody asks with plain stored passwords,
     derived by Parley with node:crypto (src/gateway/scram.ts; cached for reconnections) and by Prosody,
     at most gateway.max_connecting logins at once. RSS and heap
     after two full GCs, before the REGISTERs and after ${IDLE_MS / 1000} s idle with all online;
     per session = growth / ${USERS}.
(2)  ${STEP_S} s steps from ${USERS} senders to ${RECEIVERS} @xmpp/client receivers, doubling from ${START_RATE}/s, then ${REFINE} bisection steps;
     a step passes when every MESSAGE got its 202 without a retransmission, every message arrived
     exactly once, the sender kept >= 95 % of the rate and arrivals >= 90 %. Latency: sipp's send
     time in the body to the receiver's arrival.${typeof search === 'string' ? '' : failed ? ` Stopped at ${failed.rate}/s: ${failed.problem}.` : ' No step failed.'}
(3)  Parley stopped gracefully (its sessions closed) and started on the same SQLite database; the
     time runs from the new process's spawn, with no REGISTER sent.
sipp, the receivers (this Node.js process), Prosody and Parley (compiled dist/) share the ${cpus().length} cores.${online.heap ? `\n\nHeap growth by object kind over (1), per session online (snapshots taken; RSS above includes them):\n${online.heap}` : ''}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const deadline = Date.now() + BUDGET_S * 1000;
  const loadBefore = loadavg();
  const receiverNames = Array.from({ length: RECEIVERS }, (_, i) => `rx${i}`);
  const prosody = await Prosody.start({ domain: XMPP_DOMAIN, values: { LOG_LEVEL: 'warn' }, setup: (dir) => writeProsodyAccounts(dir, [...users, ...receiverNames]) });
  let parley: Parley | undefined;
  const receivers: XmppSession[] = [];
  try {
    const port = await freePort();
    const database = `sqlite:${join(work, 'parley.db')}`;
    await linkAccounts(database, prosody);
    const configFile = join(work, 'parley.yaml');
    writeFileSync(
      configFile,
      stringify({
        domains: [DOMAIN],
        listen: [`udp:127.0.0.1:${port}`],
        database,
        log: { level: 'warn' },
        admin: { enabled: false },
        auth: { policy: 'open' },
        gateway: { enabled: true, secret_key: SECRET_KEY, allow_unauthenticated: true, max_sessions: USERS },
      }),
    );
    log(`Prosody ${XMPP_DOMAIN} on c2s ${prosody.c2sPort} with ${USERS + RECEIVERS} accounts; ${USERS} accounts linked in Parley's map`);
    parley = await Parley.start(configFile);
    receivers.push(...(await Promise.all(receiverNames.map((name) => XmppSession.connect(prosody, name, PASSWORD)))));
    const online = await allOnline(parley, prosody, port);
    const ready = online.complete && !online.crashed;
    let search: Found<Step> | string = `not run: ${online.crashed ? 'Parley crashed' : `${online.sessions.online} of ${USERS} sessions online`}`;
    if (ready) {
      log(`(2) SIP -> XMPP from ${USERS} users to ${RECEIVERS} receivers`);
      // What is left of the budget, less what the restart may take.
      search = await messages(parley, prosody, port, receivers, deadline - ONLINE_TIMEOUT_MS - 20_000).catch((error: Error) => error.message.split('\n')[0]!);
    }
    let restarted: Restart | string = `not run: ${online.crashed ? 'Parley crashed' : 'not all sessions came online'} in (1)`;
    if (ready) {
      try {
        ({ parley, restart: restarted } = await restart(parley, prosody, configFile));
      } catch (error) {
        restarted = `Parley did not start again: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`;
      }
    }
    console.log(report(online, search, restarted, packageVersion('prosody'), loadBefore));
  } finally {
    await Promise.all(receivers.map((r) => r.stop()));
    await parley?.stop();
    await prosody.stop();
  }
}

// Bounded no matter what: past the budget and a margin, everything this script started is stopped
// (Parley through bench/common.ts's children, Prosody by its pid when this process exits).
await runBounded(main, work, BUDGET_S + 120);
