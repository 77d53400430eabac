// What bench/hotpath.ts and bench/hotpath-rooms.ts run on: a real Parley server on loopback UDP in
// this thread (the one measured), and a client in a worker thread that does what it is told.
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createServer } from '../src/server/index.js';
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

export interface HotpathServer<Job> {
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
