// What one request costs Parley on its hot path, in CPU time and garbage rather than in requests
// per second, so that it can be measured on a busy shared machine. A real server (createServer, a
// `reply` route, the relay, the registrar with its sqlite store) listens on loopback UDP; a client
// in a worker thread sends it a fixed number of requests over a real socket, a window of them in
// flight, and answers what the relay forwards to it. Only the server's thread is measured:
// process.threadCpuUsage() for its CPU time, v8.GCProfiler for its collections and, from the heap
// before and after each of them, the bytes it allocated. Each workload runs --repeat times and the
// median is reported.
//
//   npm run bench:hotpath -- [--requests 20000] [--warmup 5000] [--repeat 5] [--window 32] [--only reply,relay,register,register-auth]
//   npm run bench:hotpath -- --rooms [--members 10,100]     # a room post, per delivered leg: bench/hotpath-rooms.ts
//   npm run bench:hotpath -- --xmpp [--only sip2xmpp]       # a message through the XMPP gateway: bench/hotpath-xmpp.ts
//
// With --instructions N, each workload instead runs twice under valgrind's callgrind, once with N
// requests and once with 2N, and the difference of the server thread's instruction counts divided
// by N is reported: a figure no other load on the machine changes (GC work done on V8's helper
// threads is not in it). Slow: minutes per workload.
import { createHash } from 'node:crypto';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GCProfiler } from 'node:v8';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { roomFanOutBench } from './hotpath-rooms.js';
import { xmppGatewayBench } from './hotpath-xmpp.js';
import { DOMAIN, okFor, startHotpathServer, type HotpathServer, type Sample } from './hotpath-server.js';
import { computeHa1 } from '../src/registrar/index.js';
import type { WriterStats } from '../src/store/types.js';

const REPLY_USER = 'bench-reply';
const RELAY_USER = 'bench-relay';

/** register-auth's users (auth.policy required), each refreshing its registration in turn with digest credentials. */
const AUTH_USERS = 1000;
const AUTH_PASSWORD = 'bench-secret';

type Workload = 'reply' | 'relay' | 'register' | 'register-auth';
const WORKLOADS: Record<Workload, string> = {
  reply: 'MESSAGE answered 200 by a reply route',
  relay: 'MESSAGE relayed to a registered contact',
  register: 'REGISTER, a new user each',
  'register-auth': `REGISTER with digest credentials, a refresh of one of ${AUTH_USERS} users`,
};

interface ClientJob {
  workload: Workload;
  count: number;
  /** Distinguishes the Call-IDs and users of each run. */
  run: string;
}

if (isMainThread) await main();
else runClient(workerData as { port: number; window: number });

async function main(): Promise<void> {
  // The room-post case, CPU and bytes per delivered leg: bench/hotpath-rooms.ts.
  if (process.argv.includes('--rooms')) return roomFanOutBench(process.argv.slice(2), measure);
  // A message through the XMPP gateway, each way: bench/hotpath-xmpp.ts.
  if (process.argv.includes('--xmpp')) return xmppGatewayBench(process.argv.slice(2), measure);
  const { values: args } = parseArgs({
    options: {
      requests: { type: 'string', default: '20000' },
      warmup: { type: 'string', default: '5000' },
      repeat: { type: 'string', default: '5' },
      window: { type: 'string', default: '32' },
      only: { type: 'string' },
      instructions: { type: 'string' },
    },
  });
  const requests = Number(args.requests);
  const warmup = Number(args.warmup);
  const repeat = Number(args.repeat);
  const workloads = (args.only?.split(',') ?? Object.keys(WORKLOADS)) as Workload[];
  for (const workload of workloads) if (!(workload in WORKLOADS)) throw new Error(`unknown workload ${workload}`);
  if (args.instructions) return countInstructions(workloads, Number(args.instructions), warmup);

  const open = await startHotpathServer<ClientJob>(
    { routes: [{ method: ['MESSAGE'], user: REPLY_USER, handler: 'reply' }, { handler: 'relay' }] },
    new URL(import.meta.url),
    { window: Number(args.window) },
  );
  // Authenticated REGISTERs need a server whose users must authenticate, which the other workloads' senders do not.
  const authenticating = workloads.includes('register-auth') ? await startAuthenticatingServer(Number(args.window)) : undefined;
  let runs = 0;
  const drive = (workload: Workload, count: number) =>
    (workload === 'register-auth' ? authenticating! : open).drive({ workload, count, run: `r${runs++}` });

  // The contact the relay forwards to: the client's own socket, registered once.
  await drive('register', 1);
  const rows: Array<{ workload: Workload; cpu: number; cpuMin: number; user: number; bytes: number; gcs: number; gcMs: number; writer: WriterSample & { cpuMin: number; processCpu: number } }> = [];
  for (const workload of workloads) {
    await drive(workload, warmup);
    const samples: Sample[] = [];
    // With the whole process's CPU per request: every thread, the client's included.
    const writerSamples: Array<WriterSample & { processCpu: number }> = [];
    const server = workload === 'register-auth' ? authenticating!.server : open.server;
    for (let i = 0; i < repeat; i++) {
      const writerBefore = await server.store.writerStats?.();
      const processBefore = process.cpuUsage();
      samples.push(await measure(() => drive(workload, requests), requests));
      const processCpu = process.cpuUsage(processBefore);
      writerSamples.push({
        ...writerSample(writerBefore, await server.store.writerStats?.(), requests),
        processCpu: (processCpu.user + processCpu.system) / requests,
      });
    }
    const median = <S>(of: S[], pick: (s: S) => number) => of.map(pick).sort((a, b) => a - b)[Math.floor(of.length / 2)]!;
    rows.push({
      workload,
      cpu: median(samples, (s) => s.cpu),
      cpuMin: Math.min(...samples.map((s) => s.cpu)),
      user: median(samples, (s) => s.user),
      bytes: median(samples, (s) => s.bytes),
      gcs: median(samples, (s) => s.gcs),
      gcMs: median(samples, (s) => s.gcMs),
      writer: {
        cpu: median(writerSamples, (s) => s.cpu),
        cpuMin: Math.min(...writerSamples.map((s) => s.cpu)),
        syncs: median(writerSamples, (s) => s.syncs),
        batchesPerTransaction: median(writerSamples, (s) => s.batchesPerTransaction),
        writesPerTransaction: median(writerSamples, (s) => s.writesPerTransaction),
        statementsPerWrite: median(writerSamples, (s) => s.statementsPerWrite),
        transactionsPerSync: median(writerSamples, (s) => s.transactionsPerSync),
        processCpu: median(writerSamples, (s) => s.processCpu),
      },
    });
  }
  await open.stop();
  await authenticating?.stop();

  console.log(`Parley hot path, server thread only: ${requests} requests per run, median of ${repeat} runs, ${args.window} in flight, Node ${process.version}`);
  console.log('');
  // Other processes on the machine slow the server's thread down (caches, frequency): the least CPU
  // of the runs is the steadier figure; the bytes allocated do not depend on the load.
  console.log('| workload | CPU µs/request (least) | CPU µs/request (median) | of which user | bytes allocated/request | GCs per 1000 requests | GC time µs/request |');
  console.log('|---|---|---|---|---|---|---|');
  for (const row of rows) {
    console.log(
      `| ${WORKLOADS[row.workload]} | ${row.cpuMin.toFixed(1)} | ${row.cpu.toFixed(1)} | ${row.user.toFixed(1)} | ${Math.round(row.bytes)} | ${row.gcs.toFixed(2)} | ${row.gcMs.toFixed(2)} |`,
    );
  }
  console.log('');
  // The store's writer thread, where REGISTERs' bindings are committed: its own CPU, not the syncs,
  // which wait on libuv's pool; and how much each transaction and sync of it covers.
  // The whole process's CPU has the client's thread in it too, and the syncs, GC helpers and pool.
  console.log('| workload | writer thread CPU µs/request (least) | (median) | log syncs per 1000 requests | batches per transaction | writes per transaction | statements per write | transactions per sync | whole process CPU µs/request (client included) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const { workload, writer } of rows) {
    console.log(
      `| ${WORKLOADS[workload]} | ${writer.cpuMin.toFixed(1)} | ${writer.cpu.toFixed(1)} | ${writer.syncs.toFixed(1)} | ${writer.batchesPerTransaction.toFixed(1)} | ${writer.writesPerTransaction.toFixed(1)} | ${writer.statementsPerWrite.toFixed(2)} | ${writer.transactionsPerSync.toFixed(2)} | ${writer.processCpu.toFixed(1)} |`,
    );
  }
}

/** What the writer thread did for a run of `count` requests, per request (syncs per 1000) and per transaction. */
interface WriterSample {
  cpu: number;
  syncs: number;
  /** Messages from the main thread each transaction took in. */
  batchesPerTransaction: number;
  writesPerTransaction: number;
  statementsPerWrite: number;
  transactionsPerSync: number;
}

function writerSample(before: WriterStats | undefined, after: WriterStats | undefined, count: number): WriterSample {
  if (!before || !after) return { cpu: 0, syncs: 0, batchesPerTransaction: 0, writesPerTransaction: 0, statementsPerWrite: 0, transactionsPerSync: 0 };
  const delta = (pick: (stats: WriterStats) => number) => pick(after) - pick(before);
  const transactions = delta((s) => s.transactions);
  const writes = delta((s) => s.writes);
  const syncs = delta((s) => s.syncs);
  return {
    cpu: delta((s) => s.cpuMicros) / count,
    syncs: (syncs * 1000) / count,
    batchesPerTransaction: transactions && delta((s) => s.batches) / transactions,
    writesPerTransaction: transactions && writes / transactions,
    statementsPerWrite: writes && delta((s) => s.statements) / writes,
    transactionsPerSync: syncs && transactions / syncs,
  };
}

/** A server with auth.policy required and register-auth's users in its store. */
async function startAuthenticatingServer(window: number): Promise<HotpathServer<ClientJob>> {
  const bench = await startHotpathServer<ClientJob>({ auth: { policy: 'required' } }, new URL(import.meta.url), { window });
  for (let i = 0; i < AUTH_USERS; i++) {
    const username = authUser(i);
    await bench.server.store.users.put({ username, domain: DOMAIN, ...computeHa1(username, DOMAIN, AUTH_PASSWORD) });
  }
  return bench;
}

function authUser(index: number): string {
  return `auth-${index % AUTH_USERS}`;
}

/** Instructions per request of the server thread, from two callgrind runs of each workload (see the top). */
function countInstructions(workloads: Workload[], count: number, warmup: number): void {
  const dir = mkdtempSync(join(tmpdir(), 'parley-callgrind-'));
  const serverThread = (requests: number, workload: Workload): number => {
    const out = join(dir, `${workload}-${requests}.out`);
    execFileSync('valgrind', [
      '--tool=callgrind', '--separate-threads=yes', `--callgrind-out-file=${out}`,
      process.execPath, ...process.execArgv, fileURLToPath(import.meta.url),
      '--only', workload, '--requests', String(requests), '--warmup', String(warmup), '--repeat', '1',
    ], { stdio: 'ignore' });
    // Thread 1 is the main thread, where the server runs.
    const totals = /^(?:summary|totals): (\d+)/m.exec(readFileSync(`${out}-01`, 'utf8'));
    if (!totals) throw new Error(`no instruction count in ${out}-01`);
    return Number(totals[1]);
  };
  console.log(`Parley hot path under callgrind, server thread only: instructions per request, from runs of ${count} and ${2 * count} requests`);
  console.log('');
  console.log('| workload | instructions/request |');
  console.log('|---|---|');
  for (const workload of workloads) {
    const perRequest = (serverThread(2 * count, workload) - serverThread(count, workload)) / count;
    console.log(`| ${WORKLOADS[workload]} | ${Math.round(perRequest)} |`);
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Per-request CPU time (µs) of this thread, bytes allocated on its heap and its collections (per 1000 requests). */
async function measure(run: () => Promise<void>, count: number): Promise<Sample> {
  const profiler = new GCProfiler();
  profiler.start();
  const heapBefore = process.memoryUsage().heapUsed;
  const cpuBefore = process.threadCpuUsage();
  await run();
  const cpu = process.threadCpuUsage(cpuBefore);
  const heapAfter = process.memoryUsage().heapUsed;
  const { statistics } = profiler.stop();
  // What was allocated is what the heap grew by between collections, plus what each collection found.
  let allocated = 0;
  let previous = heapBefore;
  let gcMicros = 0;
  for (const gc of statistics) {
    allocated += gc.beforeGC.heapStatistics.usedHeapSize - previous;
    previous = gc.afterGC.heapStatistics.usedHeapSize;
    gcMicros += gc.cost;
  }
  allocated += heapAfter - previous;
  return {
    cpu: (cpu.user + cpu.system) / count,
    user: cpu.user / count,
    bytes: allocated / count,
    gcs: (statistics.length * 1000) / count,
    gcMs: gcMicros / count,
  };
}

// ---------------------------------------------------------------------------------------------
// The client, in its own thread so that its work is not counted as the server's.

function runClient({ port, window }: { port: number; window: number }): void {
  const socket = createSocket('udp4');
  let local = 0;
  let job: ClientJob | undefined;
  let sent = 0;
  let answered = 0;
  socket.bind(0, '127.0.0.1', () => {
    local = socket.address().port;
  });
  socket.on('message', (data: Buffer, rinfo: RemoteInfo) => {
    const text = data.toString('latin1');
    if (text.startsWith('MESSAGE ')) {
      // A request the relay forwarded: answered 200 as a phone would.
      socket.send(okFor(text), rinfo.port, rinfo.address);
      return;
    }
    if (!job || !text.startsWith('SIP/2.0 ')) return;
    const status = Number(text.slice(8, 11));
    const nonce = status === 401 && job.workload === 'register-auth' ? /nonce="([^"]+)"/.exec(text)?.[1] : undefined;
    if (nonce) {
      // A user's first REGISTER: its phone answers the challenge, and uses the nonce from then on.
      const user = /^To: <sip:([^@]+)@/m.exec(text)![1]!;
      authStates.set(user, { nonce, count: 0, cseq: authStates.get(user)?.cseq ?? 1 });
      socket.send(authenticatedRegister(user, local), port, '127.0.0.1');
      return;
    }
    if (status !== 200) {
      parentPort!.postMessage({ error: `${job.workload}: got ${text.slice(0, text.indexOf('\r'))}` });
      job = undefined;
      return;
    }
    answered++;
    if (answered === job.count) {
      job = undefined;
      parentPort!.postMessage({});
    } else if (sent < job.count) send();
  });
  const send = () => {
    socket.send(requestFor(job!, sent++, local), port, '127.0.0.1');
  };
  parentPort!.on('message', (next: ClientJob) => {
    job = next;
    sent = 0;
    answered = 0;
    for (let i = 0; i < Math.min(window, next.count); i++) send();
  });
}

/** What the client's phone of each register-auth user keeps: the nonce it was given, its count, and its CSeq. */
const authStates = new Map<string, { nonce?: string; count: number; cseq: number }>();
/** Counts the register-auth REGISTERs of every run, so that the users take their turns across runs. */
let authRegisters = 0;

/** A refresh of `user`'s registration, with credentials once its phone has a nonce. */
function authenticatedRegister(user: string, localPort: number): string {
  const state = authStates.get(user) ?? { count: 0, cseq: 1 };
  authStates.set(user, state);
  const cseq = state.cseq++;
  const lines = [
    `REGISTER sip:${DOMAIN} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK-${user}-${cseq};rport`,
    'Max-Forwards: 70',
    `From: <sip:${user}@${DOMAIN}>;tag=${user}-${cseq}`,
    `To: <sip:${user}@${DOMAIN}>`,
    `Call-ID: ${user}@bench`,
    `CSeq: ${cseq} REGISTER`,
    `Contact: <sip:${user}@127.0.0.1:${localPort}>`,
    'Expires: 3600',
    'User-Agent: hotpath-bench',
  ];
  if (state.nonce) {
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    const nc = (++state.count).toString(16).padStart(8, '0');
    const uri = `sip:${DOMAIN}`;
    const response = sha256(`${sha256(`${user}:${DOMAIN}:${AUTH_PASSWORD}`)}:${state.nonce}:${nc}:0a4f113b:auth:${sha256(`REGISTER:${uri}`)}`);
    lines.push(`Authorization: Digest username="${user}", realm="${DOMAIN}", nonce="${state.nonce}", uri="${uri}", response="${response}", algorithm=SHA-256, qop=auth, nc=${nc}, cnonce="0a4f113b"`);
  }
  return [...lines, 'Content-Length: 0', '', ''].join('\r\n');
}

function requestFor(job: ClientJob, index: number, localPort: number): string {
  if (job.workload === 'register-auth') return authenticatedRegister(authUser(authRegisters++), localPort);
  const id = `${job.run}-${index}`;
  const via = `SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK-${id};rport`;
  if (job.workload === 'register') {
    // The first run registers the relay's contact; every later one a user of its own.
    const user = job.run === 'r0' ? RELAY_USER : `user-${id}`;
    return [
      `REGISTER sip:${DOMAIN} SIP/2.0`,
      `Via: ${via}`,
      'Max-Forwards: 70',
      `From: <sip:${user}@${DOMAIN}>;tag=${id}`,
      `To: <sip:${user}@${DOMAIN}>`,
      `Call-ID: ${id}@bench`,
      'CSeq: 1 REGISTER',
      `Contact: <sip:${user}@127.0.0.1:${localPort}>`,
      'Expires: 3600',
      'User-Agent: hotpath-bench',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
  }
  const body = `Hello number ${index}`;
  return [
    `MESSAGE sip:${job.workload === 'reply' ? REPLY_USER : RELAY_USER}@${DOMAIN} SIP/2.0`,
    `Via: ${via}`,
    'Max-Forwards: 70',
    `From: <sip:sender@${DOMAIN}>;tag=${id}`,
    `To: <sip:${job.workload === 'reply' ? REPLY_USER : RELAY_USER}@${DOMAIN}>`,
    `Call-ID: ${id}@bench`,
    'CSeq: 1 MESSAGE',
    'User-Agent: hotpath-bench',
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}
