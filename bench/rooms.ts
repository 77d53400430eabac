// Benchmark (not a test): chat rooms. How many room deliveries per second Parley sustains, and the
// same against Kamailio 5.6's imc module when it is installed, in rooms of 10 and of 100 members.
//
//   npm run bench:rooms                              # both servers when kamailio is installed
//   npm run bench -- --rooms                         # the same, through bench/run.sh
//   npm run bench:rooms -- --no-kamailio --step-seconds 5 --start-deliveries 2000 --refine 3
//   npm run bench:rooms -- --no-kamailio --sizes 3      # 2 legs a post, as bench/devices.ts's phase 1
//   npm run bench:rooms -- --no-kamailio --delivery-window-udp 16   # Parley with another relay.delivery_window_udp
//
// Per server and room size N: one sipp process registers the N members (distinct users, all with
// contacts at its own port) and then answers every MESSAGE sent to them (bench/sipp/member.xml);
// member 0 creates the room (#create to chat-manager), the others #join it, and member 0 posts to
// the room with bench/sipp/timed-post.xml at rising rates. Each post is N-1 deliveries (legs).
//
// A step passes when (the fan-out criterion): every post got its 200 and the poster retransmitted
// nothing, posting at >= 95 % of the asked rate; every leg arrived: the members' sipp received
// exactly posts x (N-1) MESSAGEs (none lost, none twice); and the one-way latency of the legs, from
// the time the poster wrote in the body to the time the member received the copy (both sipp's
// clock on this machine), has a p99 <= --max-p99-ms (500). Rates double from --start-deliveries
// until a step fails, then up to --refine (4) bisection steps narrow the gap, fewer once the failing
// rate is within --resolution (0.1, a share; 0: none) of the passing one: each server's limit is
// then known to about the same precision, and the ratio is given with the lowest and highest values
// the two brackets allow (with 2 bisections and no resolution, one server's bracket had been left
// twice as wide as the other's: 16,200-20,700 against 12,600-14,400). --grow F makes the first move from the
// start a factor F (each next one the same way squares it, up to 2): bench/devices.ts starts at its
// own highest passing rate, growing to its lowest failing one, and gives its --resolution; a rate
// fails only when it failed --retries (0) times more, tried again at once (bench/knee.ts).
//
// Fair and stable on a small shared machine, as bench/run.ts: for each room size both servers run
// at once (each with its own members' sipp and room, set up and warmed up first), idle but for the
// one under load, and at each step of their searches they take turns run by run (Parley, Kamailio,
// then Kamailio, Parley, ...), a step being decided by a majority of --repeats runs (3 when both
// servers are measured: two that agree, a third when they do not; 1 for one server alone). Between
// runs every server and sipp is left to fall idle, so that no run pays for what an overloaded one
// left behind (Kamailio's tm retransmits an unanswered copy for up to 30 s). Other work on the
// machine then weighs on both servers alike rather than on whichever ran during it: Kamailio's
// figure at 10 members had swung from 8,100 to 14,400 deliveries/s between two runs, its two
// workers getting about half a core when the machine was busy and one and a half when it was not.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SippProcess, freePort, percentile, runSipp, summarize, type SippOptions } from '../test/support/sipp.js';
import {
  CpuMeter, DOMAIN, KAMAILIO, ROOT, achievedRate, FAR_BELOW_LIMIT_CPU, indent, launchParley, peers, runBounded, settle, cpuTicks, sleep, startServer, stepDecided,
  legsProblem, loggedLegs, quiet, startTimedUas, stepOptions, stepSettings, table, udpDrops, wantKamailio, UdpReceiveWatch, type Found, type Measured, type PingIds, type Server, type TimedUas,
} from './common.js';
import { type Bracket, kneeSearch, type KneeSearch, ratioOf } from './knee.js';

const IMC_MODULE = '/usr/lib/x86_64-linux-gnu/kamailio/modules/imc.so';
const DBTEXT_SCHEMA = '/usr/share/kamailio/dbtext/kamailio';
/** This script's OPTIONS pings while waiting for a server to answer. */
const PING: PingIds = { branch: 'rooms', callId: 'bench-rooms-ping' };
const POST_SCENARIO = join(ROOT, 'bench', 'sipp', 'timed-post.xml');

const { values: args } = parseArgs({
  options: {
    rooms: { type: 'boolean' }, // accepted so that `bench/run.sh --rooms` can pass its arguments on
    ...stepOptions('4', '1800'),
    refine: { type: 'string', default: '4' },
    'no-parley': { type: 'boolean' }, // Kamailio only, e.g. to try bench/kamailio/imc.cfg
    // Kamailio's shared memory, MB: each copy is two tm transactions kept ~5 s after they end
    // (wt_timer); 256 MB ran out ("short of cell shmem") near 3000 deliveries/s.
    'kamailio-shm': { type: 'string', default: '2048' },
    'start-deliveries': { type: 'string', default: '1000' },
    'max-deliveries': { type: 'string', default: '256000' },
    /** The factor of the first move from --start-deliveries, up or down (each next one the same way squares it, up to 2). */
    grow: { type: 'string', default: '2' },
    /** The search ends once the lowest failing rate is within this share of the highest passing one (0: after --refine bisections). */
    resolution: { type: 'string', default: '0.1' },
    /** How many times a failing rate is tried again before it counts as failed (a stall of other work fails one step). */
    retries: { type: 'string', default: '0' },
    /** Runs that decide a step, by majority; the servers take turns run by run. Default: 3 with both servers, 1 with one. */
    repeats: { type: 'string' },
    /** Highest p99 one-way latency of the legs, ms, at which a step still passes. */
    'max-p99-ms': { type: 'string', default: '500' },
    /** Room sizes, members each, poster included (bench/devices.ts compares its 2-leg fan-out with rooms of 3). */
    sizes: { type: 'string', default: '10,100' },
    /** Parley's relay.delivery_window_udp for this run; its default when absent. */
    'delivery-window-udp': { type: 'string' },
    /** Seconds a run waits at most for the machine's other work to fall under QUIET_MACHINE_CORES (0: none). Default: 10 with both servers, 0 with one. */
    'quiet-wait': { type: 'string' },
  },
});
const ROOM_SIZES = args.sizes!.split(',').map(Number);
if (!ROOM_SIZES.every((size) => Number.isInteger(size) && size >= 2)) throw new Error(`--sizes ${args.sizes}: room sizes of at least 2 members, comma-separated`);
const { STEP_S, REFINE, BUDGET_S } = stepSettings(args);
const START = Number(args['start-deliveries']);
const MAX = Number(args['max-deliveries']);
const MAX_P99_MS = Number(args['max-p99-ms']);
const GROW = Number(args.grow);
const RESOLUTION = Number(args.resolution);
const RETRIES = Number(args.retries);
const withKamailio = wantKamailio(args, existsSync(KAMAILIO) && existsSync(IMC_MODULE), `${KAMAILIO} or ${IMC_MODULE}`);
/** Both servers side by side: their runs are repeated and wait for a quiet machine, so that the ratio holds from run to run. */
const sideBySide = withKamailio && !args['no-parley'];
const REPEATS = Number(args.repeats ?? (sideBySide ? 3 : 1));
const QUIET_WAIT_S = Number(args['quiet-wait'] ?? (sideBySide ? 10 : 0));
if (!(Number.isInteger(REPEATS) && REPEATS >= 1)) throw new Error(`--repeats: a whole number of runs, at least 1, not ${args.repeats}`);

const work = mkdtempSync(join(tmpdir(), 'parley-bench-rooms-'));
const log = (text: string) => process.stderr.write(`${text}\n`);

// ---------------------------------------------------------------------------------------------
// Servers (as in bench/run.ts)

async function startParley(): Promise<Server> {
  // The per-sender rate limit (20/s, bursts of 100) would refuse the poster's MESSAGEs: raised far
  // out of the way. Everything else as shipped (history of 20 kept, written to SQLite in batches).
  return launchParley(
    work,
    [
      'routes:', '  - { handler: relay }', 'imc:', '  max_rate: 1000000', '  rate_burst: 1000000', '  max_members: 200',
      ...(args['delivery-window-udp'] ? ['relay:', `  delivery_window_udp: ${Number(args['delivery-window-udp'])}`] : []),
      '',
    ].join('\n'),
    PING,
  );
}

async function startKamailio(): Promise<Server> {
  const port = await freePort();
  const runtime = join(work, 'kamailio');
  mkdirSync(runtime, { recursive: true });
  // imc loads its rooms from these db_text tables at start (empty: Kamailio's own schema files).
  for (const table of ['version', 'imc_rooms', 'imc_members']) copyFileSync(join(DBTEXT_SCHEMA, table), join(runtime, table));
  return startServer(
    'Kamailio',
    KAMAILIO,
    [
      '-f', join(ROOT, 'bench', 'kamailio', 'imc.cfg'),
      '-DD', '-E',
      '-m', args['kamailio-shm']!, '-M', '16', // shared and per-process memory, MB (see --kamailio-shm)
      '-l', `udp:127.0.0.1:${port}`,
      '-Y', runtime,
      '-A', `IMC_DB="text://${runtime}"`,
      '-A', `IMC_PROXY="sip:127.0.0.1:${port}"`,
    ],
    port,
    PING,
    { cwd: runtime, forks: true },
  );
}

// ---------------------------------------------------------------------------------------------
// The members' user agent

interface Members extends TimedUas {
  users: string[];
  /** Waits until the count has not moved for `quietMs`; returns it. */
  quiet(quietMs: number, deadline: number): Promise<number>;
}

async function startMembers(server: Server, size: number, tag: string): Promise<Members> {
  const users = Array.from({ length: size }, (_, i) => `${tag}-m${i}`);
  const members = await startTimedUas(server, 'register.xml', users.map((u) => [u, DOMAIN, '-']), { expected: 200 }, BUDGET_S);
  // The last member reachable through the server proves them all registered (sipp goes in order).
  for (let attempt = 0; ; attempt++) {
    const probe = await runSipp(message(server, users[0]!, users[size - 1]!, 'probe', 10, 1));
    if (probe.exitCode === 0) break;
    if (attempt === 20 || !members.uas.running) throw new Error(`${server.name}: the members never became reachable\n${summarize(probe)}`);
    await sleep(250);
  }
  return { ...members, users, quiet: (quietMs, deadline) => quiet(() => members.received().count, quietMs, deadline) };
}

function message(server: Server, from: string, to: string | string[], body: string, rate: number, calls: number, timeoutS = 10): SippOptions {
  const targets = Array.isArray(to) ? to : [to];
  return {
    scenario: 'message.xml',
    remote: { host: '127.0.0.1', port: server.port },
    users: targets.map((t) => [from, t, DOMAIN]),
    keys: { body },
    vars: { expected: 200 },
    rate,
    calls,
    timeoutS,
  };
}

/** Member 0 creates the room, the others join it, one #join per member from its own address. */
async function setUpRoom(server: Server, members: Members, room: string): Promise<void> {
  const [owner, ...others] = members.users;
  const created = await runSipp(message(server, owner!, 'chat-manager', `#create ${room}`, 10, 1));
  if (created.exitCode !== 0) throw new Error(`${server.name}: #create ${room} failed\n${summarize(created)}`);
  // message.xml sends from field0: one injection row per joining member.
  const join = await runSipp({
    ...message(server, '', room, '#join', 20, others.length, 60),
    users: others.map((u) => [u, room, DOMAIN]),
    limit: 20,
  });
  if (join.exitCode !== 0 || join.stats?.successful !== others.length) throw new Error(`${server.name}: #join ${room} failed\n${summarize(join)}`);
}

// ---------------------------------------------------------------------------------------------
// Stepping

interface Step extends Measured {
  /** Posts per second asked, and the deliveries per second that makes. */
  posts: number;
  deliveries: number;
  postedRate: number;
  deliveredRate: number;
  received: number;
  expected: number;
  /** One-way latencies of the step's legs, ms: p50, p99, and how many were timed. */
  oneWay: { p50: number; p99: number; timed: number };
  /** The server's CPU time (all its threads) over the step, per leg received, µs: the posts' own cost spread over their legs. */
  cpuPerLegUs: number;
  /** Cores busy with other work than the server's and sipp's over the step (the machine's less theirs). */
  otherCpu: number;
  /** A decided step: its runs that passed, of those run ("2/3"). */
  verdict?: string;
}

type Search = Found<Step>;

async function runStep(server: Server, members: Members, room: string, posts: number): Promise<Step> {
  const size = members.users.length;
  const calls = Math.round(posts * STEP_S);
  const expected = calls * (size - 1);
  const before = await members.quiet(600, Date.now() + 15_000);
  members.legs(); // what earlier steps left in the log
  const dropsBefore = udpDrops();
  const startedS = Date.now() / 1000;
  const sipp = await SippProcess.start({
    ...message(server, members.users[0]!, room, 'benchmark message', posts, calls, STEP_S + 10),
    scenario: POST_SCENARIO,
    vars: undefined, // it expects 200 and declares no variable to be told so
    limit: Math.max(200, posts * 2),
    rttFreq: Math.max(1, Math.min(100, Math.floor(calls / 20))),
    statsPeriodS: STEP_S + 10,
    extraArgs: ['-buff_size', String(4 << 20)],
  });
  const meteredFrom = Date.now();
  const machineFrom = cpuTicks().busy;
  // Whose socket overflows when datagrams are lost: the server's, or a sipp's that fell behind.
  const sockets = new UdpReceiveWatch(() => [server.port, members.uas.port, sipp.port]);
  const serverMeter = new CpuMeter(() => server.pids());
  const sippMeter = new CpuMeter(() => [sipp.pid, members.uas.pid]);
  const result = await sipp.done;
  // The deliveries may trail the posts: wait for them (10 s at most), then for quiet, which also
  // shows any delivered twice.
  let reachedS: number | undefined;
  const waitUntil = Date.now() + 10_000;
  while (Date.now() < waitUntil) {
    const { count, atS } = members.received();
    if (count - before >= expected) {
      reachedS = atS;
      break;
    }
    await sleep(100);
  }
  const serverCpu = serverMeter.stop();
  const meteredS = (Date.now() - meteredFrom) / 1000;
  const sippCpu = sippMeter.stop();
  const otherCpu = Math.max(0, (cpuTicks().busy - machineFrom) / 100 / meteredS - serverCpu - sippCpu);
  const received = (await members.quiet(600, Date.now() + 10_000)) - before;
  const cpuPerLegUs = received > 0 ? (serverCpu * meteredS * 1e6) / received : NaN;
  const legs = await loggedLegs(members.legs, received);
  const latencies = legs.latencies.sort((a, b) => a - b);
  const oneWay = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), timed: latencies.length };
  const legsFault = legsProblem(legs, expected);
  const drops = udpDrops() - dropsBefore;
  const socket = sockets.stop();
  const [atServer, atMembers, atPoster] = [socket(server.port), socket(members.uas.port), socket(sipp.port)].map((counters) => counters.drops);
  const stats = result.stats;
  const postedRate = achievedRate(result);
  // From when the poster started (its own clock, not when it was spawned) to the dump that counted
  // the last delivery.
  const postedFromS = Number(stats?.columns.StartTime?.split('\t')[2] ?? startedS);
  const deliveredRate = reachedS !== undefined ? expected / (reachedS - postedFromS) : 0;
  let problem: string | undefined;
  if (!stats) problem = `no statistics (sipp exit ${result.exitCode ?? result.signal})`;
  else if (stats.failed > 0 || stats.successful < calls) problem = `${calls - stats.successful} of ${calls} posts failed or unfinished`;
  else if (stats.retransmissions > 0) problem = `${stats.retransmissions} retransmissions of posts`;
  else if (received < expected) problem = `${expected - received} of ${expected} deliveries lost`;
  else if (received > expected) problem = `${received - expected} deliveries more than ${expected}`;
  else if (legsFault) problem = legsFault;
  else if (oneWay.p99 > MAX_P99_MS) problem = `one-way p99 ${oneWay.p99.toFixed(0)} ms > ${MAX_P99_MS} ms`;
  else if (postedRate < 0.95 * posts) problem = `posted only ${Math.round(postedRate)}/s`;
  if (problem && atServer + atMembers + atPoster > 0) problem += ` (dropped at server ${atServer}, members ${atMembers}, poster ${atPoster})`;
  return { posts, deliveries: posts * (size - 1), postedRate, deliveredRate, received, expected, oneWay, cpuPerLegUs, otherCpu, result, serverCpu, sippCpu, drops, problem };
}

/** A server set up for one room size: its members and room, and where its rate search stands. */
interface Contender {
  server: Server;
  members: Members;
  room: string;
  search: KneeSearch<Step>;
}



/**
 * The step its runs decided: when a majority passed, the passing run of median one-way p99; else
 * the first failing run, its problem saying how many failed.
 */
function stepOf(runs: Step[]): Step {
  const passing = runs.filter((run) => !run.problem).sort((a, b) => a.oneWay.p99 - b.oneWay.p99);
  const failing = runs.filter((run) => run.problem);
  const verdict = `${passing.length}/${runs.length}`;
  if (failing.length * 2 < REPEATS) return { ...passing[(passing.length - 1) >> 1]!, verdict };
  const first = failing[0]!;
  return { ...first, verdict, problem: runs.length > 1 ? `${failing.length} of ${runs.length} runs failed, first: ${first.problem}` : first.problem };
}



/** Cores the whole machine kept busy while `during` ran. */
async function machineBusyDuring(during: Promise<unknown>): Promise<number> {
  const [ticks, at] = [cpuTicks().busy, Date.now()];
  await during;
  return (cpuTicks().busy - ticks) / 100 / ((Date.now() - at) / 1000);
}

/** Other work on the machine (cores) below which a run starts at once. */
const QUIET_MACHINE_CORES = 0.3;

/**
 * Waits, at most --quiet-wait seconds, until the machine's other work is light (under
 * QUIET_MACHINE_CORES over a second, this script's processes being idle by now), so that a run
 * starts with the machine as quiet as it gets; each server's runs wait alike.
 */
async function awaitQuietMachine(deadline: number): Promise<void> {
  const until = Math.min(Date.now() + QUIET_WAIT_S * 1000, deadline);
  while (Date.now() < until && (await machineBusyDuring(sleep(1000))) > QUIET_MACHINE_CORES);
}

/**
 * Runs the rate searches of the servers of one room size together, round by round: in a round each
 * server still searching runs its next rate, the servers taking turns run by run (a server's second
 * run comes after every other server's first), until a majority of --repeats runs decides its step.
 */
async function measure(contenders: Contender[], size: number, deadline: number): Promise<void> {
  const everyPid = () => contenders.flatMap((c) => [...c.server.pids(), c.members.uas.pid]);
  let turn = 0;
  for (;;) {
    const round = contenders.flatMap((contender) => {
      const posts = contender.search.next();
      return posts === undefined ? [] : [{ contender, posts, runs: [] as Step[] }];
    });
    if (round.length === 0) return;
    if (Date.now() + round.length * REPEATS * (STEP_S + 15 + QUIET_WAIT_S) * 1000 > deadline) {
      log(`  ${size} members: out of time budget before the round at ${round.map((r) => `${r.contender.server.name} ${r.posts} posts/s`).join(', ')}`);
      return;
    }
    for (let undecided = round; undecided.length > 0; undecided = undecided.filter((r) => !stepDecided(r.runs, REPEATS)), turn++) {
      for (let i = 0; i < undecided.length; i++) {
        const { contender, posts, runs } = undecided[(i + turn) % undecided.length]!;
        const { server, members, room } = contender;
        await awaitQuietMachine(deadline);
        const run = await runStep(server, members, room, posts);
        runs.push(run);
        const rtts = run.result.rtts.map((r) => r.ms);
        log(
          `  ${server.name.padEnd(8)} ${String(size).padStart(3)} members ${String(posts).padStart(5)} posts/s = ${String(run.deliveries).padStart(6)} deliveries/s  ` +
            `${(run.problem ?? 'ok').padEnd(40)} posted ${Math.round(run.postedRate)}/s delivered ${Math.round(run.deliveredRate)}/s (${run.received}/${run.expected})` +
            `  one-way p50 ${run.oneWay.p50.toFixed(1)} ms p99 ${run.oneWay.p99.toFixed(1)} ms  post p50 ${percentile(rtts, 50)} ms p99 ${percentile(rtts, 99)} ms  CPU server ${run.serverCpu.toFixed(2)} (${run.cpuPerLegUs.toFixed(0)} µs/leg) sipp ${run.sippCpu.toFixed(2)} other ${run.otherCpu.toFixed(2)}  UDP drops ${run.drops}`,
        );
        if (run.problem) {
          const errors = server.log().split('\n').filter((l) => /ERROR|CRITICAL|error/.test(l)).slice(-3);
          if (errors.length) log(indent(`${server.name}'s last errors:\n${errors.join('\n')}`));
        }
        // What an overloaded run left behind (retransmissions, queued legs) is over before the next.
        await settle(everyPid(), deadline);
      }
    }
    for (const { contender, runs } of round) {
      const step = stepOf(runs);
      contender.search.record(step, !step.problem);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

/** What the first two servers' brackets allow of the ratio of their limits, e.g. " (1.31-1.64)"; '' when either is open. */
function ratioRange(brackets: Bracket[]): string {
  if (brackets.length < 2) return '';
  const { low, high } = ratioOf(brackets[0]!, brackets[1]!);
  return low !== undefined && high !== undefined ? ` (${low.toFixed(2)}-${high.toFixed(2)})` : '';
}

function report(results: Map<string, Map<number, Search | string>>, loadBefore: number[]): string {
  const names = [...results.keys()];
  const header = ['room', ...names.flatMap((n) => [`${n} deliveries/s`, 'posts/s', 'one-way p50 ms', 'one-way p99 ms', 'post p99 ms', 'CPU srv/sipp', 'srv µs/leg', 'runs ok', 'other CPU'])];
  if (names.length > 1) header.push(`${names[0]}/${names[1]}`);
  const rows = [header];
  const stops: string[] = [];
  for (const size of ROOM_SIZES) {
    const row = [`${size} members`];
    const maxima: number[] = [];
    const brackets: Bracket[] = [];
    for (const name of names) {
      const found = results.get(name)!.get(size);
      if (typeof found === 'string' || !found) {
        row.push(found ? 'error' : 'not run', '-', '-', '-', '-', '-', '-', '-', '-');
        maxima.push(NaN);
        stops.push(`  ${name}, ${size} members: ${found ?? 'not run'}`);
        continue;
      }
      const best = found.best;
      maxima.push(best?.deliveries ?? NaN);
      brackets.push({ passed: best?.deliveries, failed: found.failed?.deliveries });
      if (best) {
        const rtts = best.result.rtts.map((r) => r.ms);
        row.push(
          String(best.deliveries), String(best.posts), best.oneWay.p50.toFixed(1), best.oneWay.p99.toFixed(1), String(percentile(rtts, 99)),
          `${best.serverCpu.toFixed(2)}/${best.sippCpu.toFixed(2)}`, best.cpuPerLegUs.toFixed(0), best.verdict ?? '-', best.otherCpu.toFixed(2),
        );
      } else row.push(`< ${Math.max(1, Math.round(START / (size - 1))) * (size - 1)}`, '-', '-', '-', '-', '-', '-', '-', '-');
      stops.push(`  ${name}, ${size} members: ${found.failed ? `${found.failed.deliveries}/s (${found.failed.posts} posts/s) failed: ${found.failed.problem}` : 'no step failed'}`);
    }
    if (names.length > 1) row.push(maxima.every(Number.isFinite) ? `${(maxima[0]! / maxima[1]!).toFixed(2)}${ratioRange(brackets)}` : '-');
    rows.push(row);
  }
  const cores = cpus().length;
  return `
Parley rooms benchmark, ${new Date().toISOString()}, ${cores} cores (${cpus()[0]?.model ?? 'unknown CPU'}), sipp over UDP on 127.0.0.1
The ${cores} cores are shared with sipp (the poster and the members' UA, up to a core each) and with other work on this machine:
load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadavg().map((l) => l.toFixed(1)).join(' ')} (this run adds ~2; anything above is other work)
${table(rows)}

deliveries/s  posts/s x (members - 1) of the highest passing step: a majority of its ${REPEATS} run${REPEATS > 1 ? 's' : ''} passed the
              fan-out criterion (every post answered 200, no post retransmitted, >= 95 % of the post
              rate achieved, every leg arrived: the members' sipp received exactly posts x (members - 1)
              MESSAGEs, none lost, none twice; and the legs' one-way latency p99 <= ${MAX_P99_MS} ms); one
              passing run decides a step with the server under ${FAR_BELOW_LIMIT_CPU} of a core busy
              (${STEP_S} s runs from ~${START} deliveries/s, ${GROW === 2 ? 'doubling' : `x ${GROW} first`} until a step fails, then up to ${REFINE}
              bisection steps${RESOLUTION > 0 ? ` until within ${(RESOLUTION * 100).toFixed(1)} %` : ''}: the limit lies between this and the failing rate below)
${starters().length > 1 ? `              Both servers run at once for each room size, each set up and warmed up with its own
              members' sipp, and take turns run by run at each step (the other idle), every process left
              to fall idle between runs: other work on the machine weighs on both alike.
` : ''}runs ok       that step's runs that passed, of those run; the figures are those of its passing run
              of median one-way p99
other CPU     cores the machine kept busy during that run besides the server and sipp: other work.
              ${QUIET_WAIT_S > 0 ? `Each run first waits (up to ${QUIET_WAIT_S} s) for it to fall under ${QUIET_MACHINE_CORES} of a core; where` : 'Where'} it stays
              high, every server's figure drops (Kamailio's two workers and Parley's event loop get
              what is left of the cores).
one-way       from the send time the poster put in the body to when the member's sipp received the
              copy, over every leg of that step (both clocks are this machine's)
post p99      the poster's response time, whole ms (0 means < 1 ms). Parley answers a post before
              fanning it out; Kamailio's imc_manager() sends every copy first, so its response time
              includes the fan-out.
CPU           cores busy during that step: the server's, then both sipp processes'
srv µs/leg    the server's CPU time over that step divided by the legs delivered (the posts' own
              cost included): what a leg costs, which a busy machine changes less than the rates
${names.length > 1 ? `${`${names[0]}/${names[1]}`.padEnd(14)}the ratio of the highest passing rates; in brackets the lowest and highest the two brackets
              allow (one's passing rate over the other's failing one, and the reverse)
` : ''}Parley: one Node.js process running the compiled dist/, SQLite; imc.max_rate/rate_burst raised to
        1000000 (the default 20/s limit would refuse the poster); history of 20 kept (written in
        batches). Copies go through its relay to the registered contacts, each a client transaction.
${withKamailio ? `Kamailio 5.6: bench/kamailio/imc.cfg, children=2, -m ${args['kamailio-shm']} MB shared memory, imc rooms in memory (db_text tables loaded at start),
        usrloc db_mode 0; imc sends each copy via its outbound_proxy, the server itself, which
        looks the member up and relays it: two transactions per copy, as a real imc setup does.
Neither server nor sipp is pinned: Kamailio's two workers may use both cores, Parley's event loop one.
` : ''}Why each search stopped:
${stops.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------

/** The servers measured, in the order they take turns. */
const starters = (): Array<() => Promise<Server>> => [...(args['no-parley'] ? [] : [startParley]), ...(withKamailio ? [startKamailio] : [])];

async function main(): Promise<void> {
  const deadline = Date.now() + BUDGET_S * 1000;
  const loadBefore = loadavg();
  if (!withKamailio) log(`rooms: Kamailio's side skipped (${args['no-kamailio'] ? '--no-kamailio' : `${KAMAILIO} or ${IMC_MODULE} missing`})`);
  const results = new Map<string, Map<number, Search | string>>();
  for (let index = 0; index < ROOM_SIZES.length; index++) {
    const size = ROOM_SIZES[index]!;
    // Each room size gets an equal share of the time left, its set-ups included.
    const sizeDeadline = Date.now() + (deadline - Date.now()) / (ROOM_SIZES.length - index);
    const room = `chat-bench${size}`;
    // Fresh servers for each room size, all running for the whole of it, so that they take turns.
    const started: Array<{ server: Server; members?: Members }> = [];
    const contenders: Contender[] = [];
    try {
      for (const start of starters()) {
        const server = await start();
        const entry: { server: Server; members?: Members } = { server };
        started.push(entry);
        const bySize = results.get(server.name) ?? new Map<number, Search | string>();
        results.set(server.name, bySize);
        log(`${server.name} listening on udp:127.0.0.1:${server.port}`);
        try {
          const members = (entry.members = await startMembers(server, size, `r${size}`));
          await setUpRoom(server, members, room);
          const joined = await members.quiet(1000, Date.now() + 30_000);
          log(`  ${server.name}: ${room} set up, ${size} members; the members received ${joined} notices`);
          // Warm-up, not measured: JIT compilation, first history writes, socket buffers.
          await runStep(server, members, room, Math.max(1, Math.round(200 / (size - 1))));
          const search = kneeSearch<Step>((step) => step.posts, {
            start: Math.max(1, Math.round(START / (size - 1))), factor: GROW, max: Math.floor(MAX / (size - 1)), resolution: RESOLUTION, refine: REFINE, retries: RETRIES,
          });
          contenders.push({ server, members, room, search });
          bySize.set(size, search.found);
        } catch (error) {
          log(`  ${server.name} ${size} members: ${(error as Error).message}`);
          bySize.set(size, (error as Error).message.split('\n')[0]!);
        }
      }
      await measure(contenders, size, sizeDeadline);
    } finally {
      for (const { server, members } of started) {
        if (members) {
          peers.delete(members.uas);
          await members.uas.stop();
        }
        await server.stop();
      }
    }
  }
  console.log(report(results, loadBefore));
}

await runBounded(main, work, BUDGET_S + 90);
