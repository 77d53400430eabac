// Parley for bench/gateway.ts, in a process of its own so that its memory and CPU are measured apart
// from the load: forked with an IPC channel as
// `node --expose-gc --experimental-strip-types bench/gateway-server.ts DIST CONFIG`.
// Parley comes from DIST, the compiled JavaScript production runs (bench/common.ts compiledDist);
// this file runs without tsx, through Node's own type stripping, so only erasable TypeScript here.
// It starts the server from the configuration file, says { started: true }, then answers
// requests { id, op }: `status` (the gateway's sessions by state and process.memoryUsage()), `gc`
// (the same after two full collections), `snapshot` (a heap snapshot written to `file`) and `stop`
// (a graceful stop, then exit). SIGTERM and the loss of the channel stop it too.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';

const [dist, configFile] = process.argv.slice(2) as [string, string];
const compiled = (module: string): Promise<unknown> => import(pathToFileURL(join(dist, module)).href);
const { loadConfig } = (await compiled('config/index.js')) as typeof import('../src/config/index.js');
const { createLogger } = (await compiled('log/index.js')) as typeof import('../src/log/index.js');
const { createServer } = (await compiled('server/index.js')) as typeof import('../src/server/index.js');

export type Operation = 'status' | 'gc' | 'snapshot' | 'stop';

export interface Status {
  sessions: { connecting: number; online: number; stopped: number; failed: number };
  memory: NodeJS.MemoryUsage;
}

const config = loadConfig(configFile);
const server = createServer(config, { logger: createLogger(config.log.level) });
const send = (message: unknown) => process.send!(message);

const status = (): Status => {
  const gateway = server.gateway;
  if (!gateway) throw new Error('gateway.enabled is false in the configuration');
  return { sessions: { ...gateway.stats.sessions }, memory: process.memoryUsage() };
};

let stopping: Promise<void> | undefined;
// Stopping ends with process.exit, a failed stop included: no rejection outlives it.
const stop = () => void (stopping ??= server.stop().finally(() => process.exit(0)));
process.once('SIGTERM', stop);
process.once('disconnect', stop);

process.on('message', (request: { id: number; op: Operation; file?: string }) => {
  const answer = (result: unknown) => send({ id: request.id, result });
  try {
    switch (request.op) {
      case 'status':
        return answer(status());
      case 'gc':
        if (!globalThis.gc) throw new Error('run with --expose-gc');
        globalThis.gc();
        globalThis.gc();
        return answer(status());
      case 'snapshot':
        return answer(writeHeapSnapshot(request.file));
      case 'stop':
        return void stop();
    }
  } catch (error) {
    send({ id: request.id, error: (error as Error).message });
  }
});

await server.start();
send({ started: true });
