// Benchmark (not a test): the XMPP gateway in component mode. How many messages per second go
// through it with none lost, SIP -> XMPP and XMPP -> SIP, with their end-to-end latencies, for
// Parley and for Kamailio 5.6's xmpp module (Debian kamailio-xmpp-modules) when it is installed.
//
//   npm run bench:xmpp                                  # both servers when the xmpp module is installed
//   npm run bench:xmpp -- --no-kamailio --step-seconds 5 --start-rate 500 --refine 3
//   npm run bench:xmpp -- --no-kamailio --delivery-window-udp 16   # Parley with another relay.delivery_window_udp
//   npm run bench:xmpp -- --no-kamailio --only xmpp2sip --start-rate 4000 --max-rate 4000 --cpu-prof /tmp/prof
//                                                       # one direction at one rate, Parley's CPU profile written as it stops
//
// One real Prosody (test/support/prosody.ts, test/fixtures/prosody/prosody.cfg.lua) on loopback with
// the component registered; each server in turn connects to it as that component. Prosody runs one
// Lua thread and costs about as much CPU per message as the gateway: its garbage collector is paced
// as Lua's default (the fixture's `gc`), as an operator of a busy gateway would.
//
// (1) SIP -> XMPP: sipp (bench/sipp/xmpp-message.xml) posts MESSAGEs from bench-sender@localhost to
//     sip:bench-rx*xmpp.test@<component>, each answered 202; an @xmpp/client session of bench-rx
//     counts them and takes each one's latency from the send time sipp put in its body.
// (2) XMPP -> SIP: an @xmpp/client session of bench-tx writes to bench-sip*localhost@<component>;
//     bench-sip is registered by a sipp UAS (test/sipp/register.xml + bench/sipp/xmpp-member.xml),
//     which answers each MESSAGE and logs when it got it and the body, which holds the send time.
//
// A step sends at a fixed rate for a few seconds. It passes when every message arrived exactly once
// (and, SIP side, every MESSAGE got its 202 without a retransmission), the sender achieved >= 95 % of
// the rate, and the arrivals came at >= 90 % of it. Rates double from --start-rate until a step
// fails, then --refine bisection steps narrow the gap (the rate search of bench/common.ts).
// Before the search, a fixed-rate phase (--latency-rate, 200/s, for --latency-seconds, 10 s) measures
// the one-way latency at a rate far below the limit, where queueing adds nothing.
//
// The report states each figure beside its target: SIP -> XMPP >= 12,800 msg/s and XMPP -> SIP
// >= 10,000 msg/s (twice Kamailio's xmpp module), p99 < 5 ms at 200 msg/s, every message arrived.
import { closeSync, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import xml from '@xmpp/xml';
import { defaultConfig } from '../src/config/schema.js';
import { Prosody } from '../test/support/prosody.js';
import { SippProcess, freePort, percentile, summarize, type SippResult } from '../test/support/sipp.js';
import {
  CpuMeter, DOMAIN, KAMAILIO, ROOT, XmppSession, achievedRate, epochMs, arrivalStats, deliveryProblem, gatewayMessages, indent, launchParley, packageVersion,
  peers, quiet, rateSearch, runBounded, sippProblem, sleep, startServer, stepOptions, stepSettings, table, udpDrops, wantKamailio,
  type Arrival, type Delivery, type Found, type PingIds, type Server,
} from './common.js';

const XMPP_MODULE = '/usr/lib/x86_64-linux-gnu/kamailio/modules/xmpp.so';
const PING: PingIds = { branch: 'xmpp', callId: 'bench-xmpp-ping' };
const MEMBER_SCENARIO = join(ROOT, 'bench', 'sipp', 'xmpp-member.xml');
const SIP_SENDER = 'bench-sender';
const SIP_USER = 'bench-sip';
const XMPP_RECEIVER = 'bench-rx';
const XMPP_SENDER = 'bench-tx';
const XMPP_PASSWORD = 'bench-password';

const { values: args } = parseArgs({
  options: {
    ...stepOptions('3', '420'),
    'no-parley': { type: 'boolean' }, // Kamailio only, e.g. to try bench/kamailio/xmpp.cfg
    'start-rate': { type: 'string', default: '200' },
    'max-rate': { type: 'string', default: '64000' },
    'latency-rate': { type: 'string', default: '200' },
    'latency-seconds': { type: 'string', default: '10' },
    /** One direction only: sip2xmpp or xmpp2sip. */
    only: { type: 'string' },
    /** Parley writes its CPU profile (node --cpu-prof) into this directory as it stops. */
    'cpu-prof': { type: 'string' },
    /** Parley's relay.delivery_window_udp for this run (XMPP -> SIP goes to one UDP recipient); its default when absent. */
    'delivery-window-udp': { type: 'string' },
  },
});
const { STEP_S, REFINE, BUDGET_S } = stepSettings(args);
const START_RATE = Number(args['start-rate']);
const MAX_RATE = Number(args['max-rate']);
const LATENCY_RATE = Number(args['latency-rate']);
const LATENCY_S = Number(args['latency-seconds']);
/** What the gateway is to reach: highest rate each way, and p99 one-way latency at LATENCY_RATE. */
const TARGETS = { sip2xmpp: 12_800, xmpp2sip: 10_000, p99Ms: 5 };
const withKamailio = wantKamailio(args, existsSync(KAMAILIO) && existsSync(XMPP_MODULE), `${KAMAILIO} or ${XMPP_MODULE}`);

const work = mkdtempSync(join(tmpdir(), 'parley-bench-xmpp-'));
const log = (text: string) => process.stderr.write(`${text}\n`);

let prosody: Prosody | undefined;

// ---------------------------------------------------------------------------------------------
// Servers

async function startParley(p: Prosody): Promise<Server> {
  // Only Parley's process is profiled: the variable is back as it was once it is started.
  const nodeOptions = process.env.NODE_OPTIONS;
  if (args['cpu-prof']) process.env.NODE_OPTIONS = `${nodeOptions ?? ''} --cpu-prof --cpu-prof-dir=${args['cpu-prof']}`;
  try {
    return await launchParley(
      work,
      [
        'routes:',
        '  - { handler: relay }',
        'xmpp:',
        '  enabled: true',
        '  backend: component',
        `  xmpp_domain: ${p.componentDomain}`,
        `  gateway_domain: ${p.componentDomain}`,
        '  xmpp_host: 127.0.0.1',
        `  xmpp_port: ${p.componentPort}`,
        `  xmpp_password: ${p.componentSecret}`,
        '  reconnect_min: 0.2',
        '  reconnect_max: 1',
        ...(args['delivery-window-udp'] ? ['relay:', `  delivery_window_udp: ${Number(args['delivery-window-udp'])}`] : []),
        '',
      ].join('\n'),
      PING,
    );
  } finally {
    if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = nodeOptions;
  }
}

async function startKamailio(p: Prosody): Promise<Server> {
  const port = await freePort();
  const runtime = join(work, 'kamailio');
  mkdirSync(runtime, { recursive: true });
  return startServer(
    'Kamailio',
    KAMAILIO,
    [
      '-f', join(ROOT, 'bench', 'kamailio', 'xmpp.cfg'),
      '-DD', '-E',
      '-m', '512', '-M', '16',
      '-l', `udp:127.0.0.1:${port}`,
      '-Y', runtime,
      '-A', `XMPP_DOMAIN="${p.componentDomain}"`,
      '-A', `XMPP_PORT=${p.componentPort}`,
      '-A', `XMPP_PASSWORD="${p.componentSecret}"`,
      '-A', `XMPP_PROXY="sip:127.0.0.1:${port}"`,
    ],
    port,
    PING,
    { forks: true },
  );
}

// ---------------------------------------------------------------------------------------------
// Steps

interface Step extends Delivery {
  latencies: number[];
  /** sipp's response times (SIP -> XMPP only). */
  rtts: number[];
  serverCpu: number;
  /** The server's CPU time per message sent in the step (its idle share included): steadier than rates on a shared machine. */
  serverCpuUs: number;
  prosodyCpu: number;
  /** CPU time per message sent, in microseconds, of what surrounds the server: where a step's limit lies when the server is not busy. */
  peersCpuUs: { prosody: number; sipp: number; client: number };
  drops: number;
  problem?: string;
}

/** The rate search, and the fixed-rate phase before it. */
interface Search extends Found<Step> {
  fixed?: Step;
}

interface Direction {
  key: 'sip2xmpp' | 'xmpp2sip';
  label: string;
  /** Runs once per server: starts what the direction needs; resolves once a probe went through. */
  prepare(server: Server): Promise<Runner>;
}

interface Runner {
  /** Sends at `rate` for `seconds` (a step's length unless told). */
  step(rate: number, tag: string, seconds?: number): Promise<Step>;
  /** Waits until the server has caught up after a failed step. */
  settle(deadline: number): Promise<void>;
  stop(): Promise<void>;
}

/** The step's CPU meters: the server, Prosody, the step's sipp (`sippPids`, filled in once it runs) and this process, the XMPP client. */
function meters(server: Server, sippPids: number[]) {
  const since = Date.now();
  const client = process.cpuUsage();
  const serverMeter = new CpuMeter(() => server.pids());
  const prosodyMeter = new CpuMeter(() => (prosody?.pid ? [prosody.pid] : []));
  const sippMeter = new CpuMeter(() => sippPids);
  return {
    /** Stops the meters: the server's and Prosody's cores busy, and every part's CPU time per message. */
    stop(messages: number) {
      const serverCpu = serverMeter.stop();
      const prosodyCpu = prosodyMeter.stop();
      const { user, system } = process.cpuUsage(client);
      const us = (cores: number) => cpuUsPerMessage(cores, since, messages);
      return { serverCpu, serverCpuUs: us(serverCpu), prosodyCpu, peersCpuUs: { prosody: us(prosodyCpu), sipp: us(sippMeter.stop()), client: (user + system) / messages } };
    },
  };
}

/** CPU time per message, in microseconds, from cores busy since `since`. */
const cpuUsPerMessage = (cores: number, since: number, messages: number) => (cores * (Date.now() - since) * 1000) / messages;

const sipToXmpp: Direction = {
  key: 'sip2xmpp',
  label: '(1) SIP -> XMPP',
  async prepare(server) {
    const p = prosody!;
    const receiver = await XmppSession.connect(p, XMPP_RECEIVER, XMPP_PASSWORD);
    const rows = [[SIP_SENDER, DOMAIN, `${XMPP_RECEIVER}*${p.domain}`, p.componentDomain]];
    const sipp = (rate: number, calls: number, tag: string, timeoutS = STEP_S + 10) =>
      SippProcess.start(gatewayMessages(server.port, rows, tag, rate, calls, timeoutS));
    // The link comes up some time after the server answers SIP: probe until a message arrives.
    for (let attempt = 0; ; attempt++) {
      const tag = `probe${attempt}`;
      const probe = await (await sipp(10, 1, tag, 3)).done;
      if (probe.exitCode === 0 && (await quiet(() => receiver.count(tag), 300, Date.now() + 3000)) > 0) break;
      if (attempt === 10) {
        await receiver.stop();
        throw new Error(`${server.name}: no SIP -> XMPP message went through\n${summarize(probe)}\n${indent(server.log().slice(-1500))}`);
      }
      await sleep(500);
    }
    return {
      async step(rate, tag, seconds = STEP_S) {
        const calls = Math.round(rate * seconds);
        const dropsBefore = udpDrops();
        const sippPids: number[] = [];
        const meter = meters(server, sippPids);
        const sender = await sipp(rate, calls, tag, seconds + 10);
        sippPids.push(sender.pid);
        const result: SippResult = await sender.done;
        await quiet(() => receiver.count(tag), 1000, Date.now() + 15_000);
        const cpu = meter.stop(calls);
        const arrivals = receiver.arrivals.get(tag) ?? [];
        const sipProblem = sippProblem(result, calls);
        const partial = {
          rate,
          sent: calls,
          sentRate: achievedRate(result),
          received: arrivals.length,
          ...arrivalStats(arrivals, calls),
          rtts: result.rtts.map((r) => r.ms).sort((a, b) => a - b),
          ...cpu,
          drops: udpDrops() - dropsBefore,
        };
        const problem = deliveryProblem(partial, sipProblem);
        if (sipProblem && result.errors) log(indent(result.errors.split('\n').slice(-4).join('\n')));
        return { ...partial, problem };
      },
      async settle(deadline) {
        await quiet(() => [...receiver.arrivals.values()].reduce((n, l) => n + l.length, 0), 2000, Math.min(deadline, Date.now() + 30_000));
      },
      stop: () => receiver.stop(),
    };
  },
};

/** The log lines the UAS wrote since the last call: read incrementally from the end of its log file. */
function logReader(file: string) {
  let offset = 0;
  let rest = '';
  return () => {
    if (!existsSync(file)) return [];
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size <= offset) return [];
      const buffer = Buffer.alloc(size - offset);
      readSync(fd, buffer, 0, buffer.length, offset);
      offset = size;
      const lines = (rest + buffer.toString('latin1')).split('\n');
      rest = lines.pop()!;
      return lines.map((l) => l.replace(/\r$/, '')).filter((l) => l.trim());
    } finally {
      closeSync(fd);
    }
  };
}

const xmppToSip: Direction = {
  key: 'xmpp2sip',
  label: '(2) XMPP -> SIP',
  async prepare(server) {
    const p = prosody!;
    const uas = await SippProcess.start({
      scenario: 'register.xml',
      ooc: MEMBER_SCENARIO,
      remote: { host: '127.0.0.1', port: server.port },
      users: [[SIP_USER, DOMAIN, '-']],
      keys: { expires: 3600 },
      vars: { expected: 200, hold_ms: BUDGET_S * 1000 },
      calls: 1,
      timeoutS: BUDGET_S + 60,
      logs: true,
      traceErrors: false,
      extraArgs: ['-buff_size', String(8 << 20)],
    });
    peers.add(uas);
    const sender = await XmppSession.connect(p, XMPP_SENDER, XMPP_PASSWORD);
    const to = `${SIP_USER}*${DOMAIN}@${p.componentDomain}`;
    const read = logReader(join(uas.dir, 'logs.log'));
    const arrivals = new Map<string, Arrival[]>();
    const collect = () => {
      for (const line of read()) {
        // "DATE\tTIME\tEPOCH.US TAG SEQ SENT_MS"
        const fields = line.trim().split(/\s+/);
        const atMs = Number(fields[2]) * 1000;
        const list = arrivals.get(fields[3]!) ?? [];
        list.push({ atMs, sentMs: Number(fields[5]) });
        arrivals.set(fields[3]!, list);
      }
    };
    const count = (tag: string) => (collect(), arrivals.get(tag)?.length ?? 0);
    const total = () => (collect(), [...arrivals.values()].reduce((n, l) => n + l.length, 0));
    const send = (tag: string, seq: number) =>
      sender.session.send(xml('message', { to, type: 'chat' }, xml('body', {}, `${tag} ${seq} ${epochMs().toFixed(3)}`)));
    for (let attempt = 0; ; attempt++) {
      const tag = `probe${attempt}`;
      await send(tag, 0);
      if ((await quiet(() => count(tag), 300, Date.now() + 2000)) > 0) break;
      if (attempt === 10 || !uas.running) {
        await sender.stop();
        peers.delete(uas);
        await uas.stop();
        throw new Error(`${server.name}: no XMPP -> SIP message reached the UAS (XMPP errors: ${sender.errors} ${sender.lastError})\n${indent(server.log().slice(-1500))}`);
      }
      await sleep(500);
    }
    return {
      async step(rate, tag, seconds = STEP_S) {
        const total = Math.round(rate * seconds);
        const errorsBefore = sender.errors;
        const dropsBefore = udpDrops();
        const meter = meters(server, [uas.pid]);
        // Paced by the clock: every 5 ms, as many as are due by then.
        const started = Date.now();
        let sent = 0;
        while (sent < total) {
          const due = Math.min(total, Math.ceil(((Date.now() - started) / 1000) * rate));
          const batch: Array<Promise<void>> = [];
          sender.writeTogether();
          for (; sent < due; sent++) batch.push(send(tag, sent));
          await Promise.all(batch);
          await sleep(5);
        }
        const sentRate = (total - 1) / ((Date.now() - started) / 1000) || 0;
        await quiet(() => count(tag), 1000, Date.now() + 15_000);
        const cpu = meter.stop(total);
        const got = arrivals.get(tag) ?? [];
        const errors = sender.errors - errorsBefore;
        const partial = {
          rate,
          sent: total,
          sentRate: Math.min(sentRate, rate),
          received: got.length,
          ...arrivalStats(got, total),
          rtts: [],
          ...cpu,
          drops: udpDrops() - dropsBefore,
        };
        const problem = deliveryProblem(partial, errors > 0 ? `${errors} XMPP errors back, e.g. ${sender.lastError}` : !uas.running ? 'the UAS exited' : undefined);
        return { ...partial, problem };
      },
      async settle(deadline) {
        await quiet(total, 2000, Math.min(deadline, Date.now() + 30_000));
      },
      async stop() {
        await sender.stop();
        peers.delete(uas);
        await uas.stop();
      },
    };
  },
};

const directions = [sipToXmpp, xmppToSip].filter((direction) => !args.only || direction.key === args.only);
if (directions.length === 0) throw new Error(`--only: expected sip2xmpp or xmpp2sip, not ${args.only}`);

function logStep(server: Server, direction: Direction, step: Step, what = `${String(step.rate).padStart(6)}/s`): void {
  log(
    `  ${server.name.padEnd(8)} ${direction.key.padEnd(8)} ${what}  ${(step.problem ?? 'ok').padEnd(36)}` +
      ` sent ${Math.round(step.sentRate)}/s arrived ${Math.round(step.arrivedRate)}/s (${step.received}/${step.sent})` +
      `  latency p50 ${percentile(step.latencies, 50).toFixed(1)} p99 ${percentile(step.latencies, 99).toFixed(1)} ms` +
      `  CPU server ${step.serverCpu.toFixed(2)} (${Math.round(step.serverCpuUs)} us/msg) prosody ${step.prosodyCpu.toFixed(2)}` +
      `  us/msg prosody ${Math.round(step.peersCpuUs.prosody)} sipp ${Math.round(step.peersCpuUs.sipp)} client ${Math.round(step.peersCpuUs.client)}  UDP drops ${step.drops}`,
  );
}

/** The fixed-rate phase: LATENCY_RATE for LATENCY_S, its latencies and whether every message arrived once. */
async function fixedRate(server: Server, direction: Direction, runner: Runner): Promise<Step> {
  const step = await runner.step(LATENCY_RATE, `${direction.key}-fixed`, LATENCY_S);
  logStep(server, direction, step, `fixed ${LATENCY_RATE}/s ${LATENCY_S} s`);
  if (step.problem) await runner.settle(Date.now() + 30_000);
  else await sleep(500);
  return step;
}

async function search(server: Server, direction: Direction, runner: Runner, deadline: number, fixed: Step): Promise<Search> {
  const found: Search = { fixed };
  let steps = 0;
  const next = rateSearch(found, (step) => step.rate, START_RATE, (rate) => rate <= MAX_RATE, REFINE);
  for (let rate = next(); rate !== undefined; rate = next()) {
    if (Date.now() + (STEP_S + 10) * 1000 > deadline) {
      log(`  ${server.name} ${direction.key}: out of time budget before the ${rate}/s step`);
      break;
    }
    const step = await runner.step(rate, `${direction.key}-${steps++}-${rate}`);
    logStep(server, direction, step);
    if (step.problem) {
      found.failed = step;
      const errors = server.log().split('\n').filter((l) => /ERROR|CRITICAL|error/.test(l)).slice(-3);
      if (errors.length) log(indent(`${server.name}'s last errors:\n${errors.join('\n')}`));
      await runner.settle(deadline);
    } else {
      found.best = step;
      await sleep(500);
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Report

function report(results: Map<string, Map<string, Search | string>>, loadBefore: number[]): string {
  const names = [...results.keys()];
  const header = ['direction', ...names.flatMap((n) => [`${n} max msg/s`, 'p50 ms', 'p99 ms', 'CPU srv/prosody', 'srv us/msg'])];
  if (names.length > 1) header.push(`${names[0]}/${names[1]}`);
  const rows = [header];
  const stops: string[] = [];
  for (const direction of directions) {
    const row = [direction.label];
    const maxima: number[] = [];
    for (const name of names) {
      const found = results.get(name)!.get(direction.key);
      if (typeof found === 'string' || !found) {
        row.push(found ? 'error' : 'not run', '-', '-', '-', '-');
        maxima.push(NaN);
        stops.push(`  ${name}, ${direction.label}: ${found ?? 'not run'}`);
        continue;
      }
      const best = found.best;
      maxima.push(best?.rate ?? NaN);
      if (best) {
        row.push(
          String(best.rate), percentile(best.latencies, 50).toFixed(1), percentile(best.latencies, 99).toFixed(1), `${best.serverCpu.toFixed(2)}/${best.prosodyCpu.toFixed(2)}`, String(Math.round(best.serverCpuUs)),
        );
      } else row.push(`< ${START_RATE}`, '-', '-', '-', '-');
      stops.push(`  ${name}, ${direction.label}: ${found.failed ? `${found.failed.rate}/s failed: ${found.failed.problem}` : 'no step failed'}`);
    }
    if (names.length > 1) row.push(maxima.every(Number.isFinite) ? (maxima[0]! / maxima[1]!).toFixed(2) : '-');
    rows.push(row);
  }
  const cores = cpus().length;
  const met = (ok: boolean) => (ok ? 'yes' : 'NO');
  const targetRows = [['direction', 'server', 'max msg/s', 'target', 'met', `p50 ms at ${LATENCY_RATE}/s`, 'p99 ms', 'target', 'all arrived once', 'met']];
  for (const direction of directions) {
    for (const name of names) {
      const found = results.get(name)!.get(direction.key);
      if (typeof found === 'string' || !found) continue;
      const target = TARGETS[direction.key];
      const max = found.best?.rate ?? 0;
      const row = [direction.label, name, String(max), `>= ${target}`, met(max >= target)];
      const fixed = found.fixed;
      if (fixed) {
        const p99 = percentile(fixed.latencies, 99);
        const complete = fixed.received === fixed.sent && !fixed.problem;
        row.push(percentile(fixed.latencies, 50).toFixed(1), p99.toFixed(1), `< ${TARGETS.p99Ms}`, complete ? `yes (${fixed.received}/${fixed.sent})` : `NO: ${fixed.problem}`, met(complete && p99 < TARGETS.p99Ms));
      } else row.push('-', '-', `< ${TARGETS.p99Ms}`, '-', '-');
      targetRows.push(row);
    }
  }
  return `
Parley XMPP gateway benchmark, ${new Date().toISOString()}, ${cores} cores (${cpus()[0]?.model ?? 'unknown CPU'}), component mode, Prosody ${prosodyVersion} on 127.0.0.1
load average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadavg().map((l) => l.toFixed(1)).join(' ')}: the machine may be shared; this run adds ~3 (server, Prosody, sipp, node)
${table(rows)}

Targets: ${LATENCY_RATE} msg/s for ${LATENCY_S} s each way (before the search), then the search's maxima
${table(targetRows)}

max msg/s  highest passing step: every message arrived exactly once at >= 90 % of the rate, the sender
           kept >= 95 % of it, and (SIP -> XMPP) every MESSAGE got its 202 with no retransmission
           (${STEP_S} s steps, doubling from ${START_RATE}/s until one fails, then ${REFINE} bisection steps: the
           limit lies between max msg/s and the failing rate below)
p50/p99    end-to-end latency in that step, sender to receiver: SIP -> XMPP from sipp's send time in the
           body to the @xmpp/client receiver's arrival (Node's clock, sub-ms); XMPP -> SIP from the
           @xmpp/client sender's send time to the sipp UAS's log timestamp (us resolution)
p50/p99 at ${LATENCY_RATE}/s  the same latencies in the fixed-rate phase; "all arrived once" as a step passes
CPU        cores busy during that step: the server's (Kamailio: all its processes), then Prosody's;
           srv us/msg: the server's CPU time in that step (its wait for the last arrivals included) per message;
           each step's line also gives Prosody's, sipp's and the XMPP client's (this process) CPU time per message
The senders, the receivers (one Node.js process with @xmpp/client, one sipp) and Prosody share the
${cores} cores with the server; at the highest rates Prosody or the @xmpp/client side may be the limit.
Parley: one Node.js process running the compiled dist/, SQLite, xmpp.backend component, max_queue ${1000} (default), relay.delivery_window_udp ${args['delivery-window-udp'] ?? `${defaultConfig().relay.delivery_window_udp} (default)`}.
${names.includes('Kamailio') ? 'Kamailio 5.6: bench/kamailio/xmpp.cfg, children=2, xmpp module (component backend: one process for the XMPP link),\n           MESSAGEs from XMPP sent to its outbound_proxy, itself, then lookup + t_relay to the UAS.\n' : ''}Why each search stopped:
${stops.join('\n')}`;
}

let prosodyVersion = '';

async function main(): Promise<void> {
  const deadline = Date.now() + BUDGET_S * 1000;
  const loadBefore = loadavg();
  if (!withKamailio) log(`xmpp: Kamailio's side skipped (${args['no-kamailio'] ? '--no-kamailio' : `${KAMAILIO} or ${XMPP_MODULE} missing`})`);
  prosodyVersion = packageVersion('prosody');
  prosody = await Prosody.start({ values: { LOG_LEVEL: 'warn' } });
  await Promise.all([XMPP_RECEIVER, XMPP_SENDER].map((u) => prosody!.register(u, XMPP_PASSWORD)));
  log(`Prosody ${prosodyVersion} on c2s ${prosody.c2sPort}, component ${prosody.componentDomain} on ${prosody.componentPort}`);
  const starters: Array<(p: Prosody) => Promise<Server>> = [...(args['no-parley'] ? [] : [startParley]), ...(withKamailio ? [startKamailio] : [])];
  const results = new Map<string, Map<string, Search | string>>();
  let pairsLeft = starters.length * directions.length;
  try {
    for (const start of starters) {
      const server = await start(prosody);
      log(`${server.name} listening on udp:127.0.0.1:${server.port}`);
      const byDirection = new Map<string, Search | string>();
      results.set(server.name, byDirection);
      try {
        for (const direction of directions) {
          const share = (deadline - Date.now()) / pairsLeft--;
          let runner: Runner | undefined;
          try {
            runner = await direction.prepare(server);
            // Warm-up, not measured: JIT compilation, socket buffers, the link's first stanzas.
            await runner.step(100, `${direction.key}-warmup`);
            await sleep(500);
            const fixed = await fixedRate(server, direction, runner);
            byDirection.set(direction.key, await search(server, direction, runner, Date.now() + share, fixed));
          } catch (error) {
            log(`  ${server.name} ${direction.key}: ${(error as Error).message}`);
            // Kamailio 5.6's xmpp module dies parsing Prosody's stream header (kamailio/kamailio#4154).
            const crashed = /exited by a signal 11/.test(server.log()) ? ' (its XMPP process crashed: signal 11, see kamailio/kamailio#4154)' : '';
            byDirection.set(direction.key, (error as Error).message.split('\n')[0]! + crashed);
          } finally {
            await runner?.stop();
          }
        }
      } finally {
        await server.stop();
      }
    }
  } finally {
    await prosody.stop();
  }
  console.log(report(results, loadBefore));
}

// Bounded no matter what: past the budget and a margin, everything this script started is stopped
// (Prosody by its pid: test/support/prosody.ts kills it when this process exits, at the latest).
await runBounded(main, work, BUDGET_S + 120);
