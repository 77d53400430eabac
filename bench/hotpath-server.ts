// What bench/hotpath.ts and its cases (bench/hotpath-rooms.ts, bench/hotpath-xmpp.ts) run on: a
// real Parley server on loopback UDP in this thread (the one measured), a client in a worker thread
// that does what it is told, the runs of a workload and their table. That server is Parley's
// sources through tsx, as loaded in-process, not the compiled dist/ that production and the benches
// starting Parley as a process run: compare its figures with each other, not with theirs.
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createServer, type ParleyServer } from '../src/server/index.js';
import { createLogger } from '../src/log/index.js';
import { testConfig } from '../test/support/server.js';

export const DOMAIN = 'localhost';

/** What bench/hotpath.ts's measure() gives of one run, per request (per leg of a room post). */
export interface Sample {
  cpu: number;
  user: number;
  bytes: number;
  gcs: number;
  /** Time the collections took (GCProfiler's cost), µs per request. */
  gcMs: number;
}

/** bench/hotpath.ts's measure(): the figures of one run of `count` requests, per request. */
export type Measure = (run: () => Promise<void>, count: number) => Promise<Sample>;

/** What a workload measured: its runs' figures, and the rate each went at (requests a second, wall clock). */
export interface Measured {
  label: string;
  samples: Sample[];
  rates: number[];
}

/** The options of parseArgs every case takes: requests unmeasured first, and runs measured. */
export const RUN_OPTIONS = {
  warmup: { type: 'string', default: '5000' },
  repeat: { type: 'string', default: '5' },
} as const;

export interface HotpathServer<Job> {
  /** The server measured, for what a workload needs in its store beforehand. */
  server: ParleyServer;
  /** Sends the client a job; resolves once it says the job is done, rejects with the error it reports. */
  drive(job: Job): Promise<void>;
  /** Stops the client and the server and removes the server's store. */
  stop(): Promise<void>;
}

/**
 * Starts a server with `settings` (listening on UDP 127.0.0.1 only, serving DOMAIN, logging nothing
 * below warn, and nowhere), then the client: `client` run in a worker with `data` and the server's
 * `port` as its workerData.
 */
export async function startHotpathServer<Job>(settings: object, client: URL, data: object): Promise<HotpathServer<Job>> {
  const config = testConfig({
    listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }],
    domains: [DOMAIN],
    ...settings,
  } as Parameters<typeof testConfig>[0]);
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  const server = createServer(config, { logger: createLogger('warn', discard) });
  await server.start();
  const port = server.transports.bound[0]!.port;
  // The worker gets the loader (tsx) only: flags such as --trace-gc or --cpu-prof are for the server's thread.
  const loader = process.execArgv.flatMap((arg, i, all) => (arg === '--import' ? [arg, all[i + 1]!] : arg.startsWith('--import=') ? [arg] : []));
  const worker = new Worker(client, { workerData: { ...data, port }, execArgv: loader });
  return {
    server,
    drive: (job) =>
      new Promise<void>((resolve, reject) => {
        worker.once('message', (reply: { error?: string }) => (reply.error ? reject(new Error(reply.error)) : resolve()));
        worker.postMessage(job);
      }),
    async stop() {
      await worker.terminate();
      await server.stop(1000);
      rmSync(dirname(config.database.replace(/^sqlite:/, '')), { recursive: true, force: true });
    },
  };
}

/**
 * A workload's runs: `jobFor(warmup)` once unmeasured (the JIT, the store's pages), then `repeat`
 * runs of `jobFor(requests)`, measured. `jobFor` says how many requests its job makes (legs, for a
 * room post), which the figures are divided by.
 */
export async function measureRuns<Job>(
  label: string,
  server: HotpathServer<Job>,
  measure: Measure,
  jobFor: (requests: number) => { job: Job; count: number },
  { warmup, requests, repeat }: { warmup: number; requests: number; repeat: number },
): Promise<Measured> {
  await server.drive(jobFor(warmup).job);
  const samples: Sample[] = [];
  const rates: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const { job, count } = jobFor(requests);
    const started = performance.now();
    samples.push(await measure(() => server.drive(job), count));
    rates.push((count * 1000) / (performance.now() - started));
  }
  return { label, samples, rates };
}

/** Prints `title` and a row per workload; `unit` names what the figures are per (request, leg, message). */
export function printMeasured(title: string, what: string, unit: string, rows: Measured[]): void {
  console.log(title);
  console.log('');
  // Other processes on the machine slow the server's thread down (caches, frequency): the least CPU
  // of the runs is the steadier figure; the bytes allocated do not depend on the load.
  console.log(
    `| ${what} | CPU µs/${unit} (least) | CPU µs/${unit} (median) | of which user | bytes allocated/${unit} | GCs per 1000 ${unit}s | GC time µs/${unit} | ${unit}s/s (median) |`,
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const { label, samples, rates } of rows) {
    const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const of = (pick: (s: Sample) => number) => median(samples.map(pick));
    console.log(
      `| ${label} | ${Math.min(...samples.map((s) => s.cpu)).toFixed(1)} | ${of((s) => s.cpu).toFixed(1)} | ${of((s) => s.user).toFixed(1)} | ` +
        `${Math.round(of((s) => s.bytes))} | ${of((s) => s.gcs).toFixed(2)} | ${of((s) => s.gcMs).toFixed(2)} | ${Math.round(median(rates))} |`,
    );
  }
}

/** A 200 to a request, its Via, From, To, Call-ID and CSeq copied: how the clients' phones answer what Parley sends them. */
export function okFor(request: string): string {
  const lines = request.slice(0, request.indexOf('\r\n\r\n')).split('\r\n');
  const copied = lines.filter((line) => /^(via|v|from|f|to|t|call-id|i|cseq):/i.test(line));
  return ['SIP/2.0 200 OK', ...copied.map((line) => (/^(to|t):/i.test(line) && !line.includes(';tag=') ? `${line};tag=uas` : line)), 'Content-Length: 0', '', ''].join('\r\n');
}
