// Overload probe (not a test): the relay workload of bench/run.ts offered more than Parley carries
// for a while, then a moderate rate, to see how it comes out of it. Parley and a sipp UAS answering
// every MESSAGE 200 at once, pinned as in npm run bench (Parley on the last CPU, sipp on the others).
//
//   flock /tmp/parley-bench.lock bash scripts/with-node.sh node --import tsx bench/overload.ts
//   ... bench/overload.ts --rate 18000 --seconds 30 --after-rate 2000 --backlog null   # refusal off
//
// Reports for each phase what sipp's sender got (200s, 503s, other answers, calls that timed out,
// its retransmissions), the datagrams the kernel dropped at Parley's socket (and second by second,
// with the most bytes queued) and at the UAS's, Parley's CPU over the run (its tail included: sipp
// waits for its last calls) and the share of that core other processes took; after the overload,
// once Parley is idle again (Timer F has run out for every MESSAGE it was still waiting on), the
// messages it stored for the UAS: each was delivered (the UAS answers all it receives) yet its
// answer never reached Parley.
import { cpus } from 'node:os';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SippProcess, runSipp, type SippOptions } from '../test/support/sipp.js';
import { DOMAIN, cpuDuring, cpuTicks, launchParley, peers, pinToCpus, runBounded, settle, startRelayUas, udpSocketCounters } from './common.js';

const { values: args } = parseArgs({
  options: {
    /** MESSAGEs/s offered during the overload, and for how long. */
    rate: { type: 'string', default: '18000' },
    seconds: { type: 'string', default: '30' },
    /** The moderate rate that follows, for 10 s. */
    'after-rate': { type: 'string', default: '2000' },
    /** relay.overload_backlog for Parley ("null": never refuse); Parley's default when absent. */
    backlog: { type: 'string' },
  },
});
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const AFTER_RATE = Number(args['after-rate']);
const AFTER_SECONDS = 10;
const USER = 'bench-uas';
const PING = { branch: 'overload', callId: 'overload-ping' };
const pinning = cpus().length >= 2 ? { server: String(cpus().length - 1), sipp: cpus().length === 2 ? '0' : `0-${cpus().length - 2}` } : undefined;
const work = mkdtempSync(join(tmpdir(), 'parley-overload-'));

function messages(port: number, rate: number, calls: number): SippOptions {
  return {
    scenario: 'message.xml',
    remote: { host: '127.0.0.1', port },
    users: [['bench-sender', USER, DOMAIN]],
    keys: { body: 'benchmark message' },
    vars: { expected: 200 },
    rate,
    calls,
    limit: Math.max(200, rate * 2),
    // Long enough for sipp to give up on its unanswered calls (its retransmissions end by 32 s).
    timeoutS: calls / rate + 40,
    statsPeriodS: 1000,
    extraArgs: ['-buff_size', String(4 << 20)],
  };
}

/** Parley's socket sampled every 20 ms, told second by second: the most bytes queued, the datagrams dropped. */
class SocketTimeline {
  private readonly seconds: Array<{ queued: number; drops: number }> = [];
  private readonly started = Date.now();
  private readonly dropsAtStart: number;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly port: number) {
    this.dropsAtStart = udpSocketCounters(port).drops;
    this.timer = setInterval(() => this.sample(), 20);
  }
  private sample(): void {
    const { drops, queued } = udpSocketCounters(this.port);
    const second = Math.floor((Date.now() - this.started) / 1000);
    const at = (this.seconds[second] ??= { queued: 0, drops: 0 });
    at.queued = Math.max(at.queued, queued);
    at.drops = Math.max(at.drops, drops - this.dropsAtStart);
  }
  /** Stops; the drops in all, the most queued, and a line per second (kB queued at most, drops in that second). */
  stop(): { drops: number; queued: number; timeline: string } {
    this.sample();
    clearInterval(this.timer);
    const filled = Array.from(this.seconds, (at) => at ?? { queued: 0, drops: 0 });
    let before = 0;
    const timeline = filled.map((at, second) => {
      const dropped = Math.max(before, at.drops) - before;
      before = Math.max(before, at.drops);
      return `${second}s ${Math.round(at.queued / 1024)}kB${dropped > 0 ? ` -${dropped}` : ''}`;
    }).join(', ');
    return { drops: before, queued: Math.max(0, ...filled.map((at) => at.queued)), timeline };
  }
}

/** One sipp run against Parley, and what it saw of Parley's socket. */
async function phase(name: string, port: number, rate: number, seconds: number, uas: SippProcess, parleyPids: () => number[]): Promise<void> {
  const sipp = await SippProcess.start(messages(port, rate, rate * seconds));
  if (pinning) pinToCpus([sipp.pid, uas.pid], pinning.sipp);
  const uasDropsBefore = udpSocketCounters(uas.port).drops;
  const socket = new SocketTimeline(port);
  const cpuBefore = pinning && cpuTicks(pinning.server);
  const [result, cpu] = await Promise.all([sipp.done, cpuDuring(parleyPids, sipp.done)]);
  const cpuAfter = pinning && cpuTicks(pinning.server);
  // The share of Parley's CPU other processes took meanwhile: time Parley may have lacked.
  const otherWork = cpuBefore && cpuAfter ? Math.max(0, (cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total) - cpu) : 0;
  const { drops, queued, timeline } = socket.stop();
  const uasDrops = udpSocketCounters(uas.port).drops - uasDropsBefore;
  const stats = result.stats;
  // Every call that failed on an answer it did not expect names that answer in the error file.
  const answers = new Map<string, number>();
  for (const match of result.errors.matchAll(/Aborting call on unexpected message[^\n]*?received 'SIP\/2\.0 ([0-9]{3})/g)) {
    answers.set(match[1]!, (answers.get(match[1]!) ?? 0) + 1);
  }
  const other = [...answers].map(([status, count]) => `${status}: ${count}`).join(', ') || 'none';
  console.log(
    `${name}: ${rate}/s for ${seconds} s, ${stats?.outgoing ?? '?'} sent: 200 ${stats?.successful ?? '?'}, failed ${stats?.failed ?? '?'} ` +
      `(other answers ${other}; timed out ${stats?.timeouts ?? '?'}), sipp retransmissions ${stats?.retransmissions ?? '?'}; ` +
      `Parley's socket: ${drops} dropped, at most ${Math.round(queued / 1024)} kB queued; Parley CPU ${cpu.toFixed(2)}, others ${otherWork.toFixed(2)} of it; ` +
      `the UAS's socket: ${uasDrops} dropped\n` +
      `  Parley's socket each second (most queued, -dropped): ${timeline}`,
  );
}

async function main(): Promise<void> {
  const overload = args.backlog === undefined ? '' : `relay:\n  overload_backlog: ${args.backlog}\n`;
  const dir = mkdtempSync(join(work, 'parley-'));
  const server = await launchParley(dir, `routes:\n  - { handler: relay }\n${overload}`, PING);
  if (pinning) pinToCpus(server.pids(), pinning.server);
  const uas = await startRelayUas(server, USER, SECONDS + AFTER_SECONDS + 300, { ...messages(server.port, 10, 1), timeoutS: 5 });
  if (pinning) pinToCpus([uas.pid], pinning.sipp);
  // Warm-up, as npm run bench does: V8's optimizing tier, socket buffers.
  await runSipp(messages(server.port, 1000, 2000));
  console.log(`Parley relay.overload_backlog ${args.backlog ?? '(default)'}, ${pinning ? `pinned to CPU ${pinning.server}, sipp to CPU ${pinning.sipp}` : 'not pinned'}`);
  const everyPid = () => [...server.pids(), uas.pid];
  await phase('overload', server.port, RATE, SECONDS, uas, server.pids);
  const idleFrom = Date.now();
  await settle(everyPid(), Date.now() + 60_000);
  const db = new Database(join(dir, 'parley', 'parley.db'), { readonly: true });
  const stored = (db.prepare('SELECT count(*) AS n FROM offline_messages').get() as { n: number }).n;
  db.close();
  console.log(`after the overload: Parley idle again after ${((Date.now() - idleFrom) / 1000).toFixed(0)} s; ${stored} messages stored for the UAS (delivered, their answer lost)`);
  await phase('after', server.port, AFTER_RATE, AFTER_SECONDS, uas, server.pids);
  peers.delete(uas);
  await uas.stop();
  await server.stop();
}

await runBounded(main, work, SECONDS + AFTER_SECONDS + 300);
