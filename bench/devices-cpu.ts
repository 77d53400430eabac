// Benchmark (not a test): the time Parley's thread spends per delivery of a MESSAGE to users with
// two registered devices and one asleep (bench/devices.ts's phase 1), measured in-process, so that
// other processes on the machine change it little. Parley runs on this thread (its sources through
// tsx, not the compiled dist/); the devices and the sender run on a worker thread. Reported: the CPU time of Parley's thread over the run
// (process.threadCpuUsage) per delivery made to an awake device, and the store writes (messages
// stored, deliveries recorded done) and the batches sent to the SQLite writer thread per MESSAGE; and apart, the CPU time of Parley's other threads
// per delivery (the process's less this thread's and the load's worker): the SQLite writer thread
// and the thread pool running its disk syncs, which share the machine's cores with the main thread.
//
//   bash scripts/with-node.sh node --import tsx bench/devices-cpu.ts --users 20 --messages 20000 --window 100
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startServer } from '../test/support/server.js';
import { TestUA } from '../test/support/ua.js';
import { newInstance, registerDevice } from '../test/devices/devices.js';

interface Load {
  port: number;
  users: number;
  messages: number;
  window: number;
}

/** Legs of a MESSAGE: the two awake devices of its user. */
const LEGS = 2;
const WARM_UP = 1000;

if (isMainThread) await measure();
else await load(workerData as Load);

async function measure(): Promise<void> {
  const { values } = parseArgs({ options: { users: { type: 'string', default: '20' }, messages: { type: 'string', default: '20000' }, window: { type: 'string', default: '100' } } });
  const count = (name: keyof typeof values) => {
    const value = Number(values[name]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} ${values[name]}: a whole number of at least 1`);
    return value;
  };
  process.env.PARLEY_TEST_LOG ??= 'warn';
  const s = await startServer({ offline: { max_per_user: 1_000_000 } as never });
  const deliveries = s.server.store.deliveries;
  const writes = { stored: 0, done: 0 };
  const { add, done } = deliveries;
  deliveries.add = (...args) => {
    writes.stored++;
    return add.apply(deliveries, args);
  };
  deliveries.done = (...args) => {
    writes.done++;
    return done.apply(deliveries, args);
  };
  const load: Load = { port: s.udp.port, users: count('users'), messages: count('messages'), window: count('window') };
  const worker = new Worker(new URL(import.meta.url), { workerData: load, execArgv: ['--import', 'tsx'] });
  const next = () => new Promise<{ failed: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  try {
    await next(); // set up and warmed up
    const written = { ...writes };
    const writerBefore = await s.server.store.writerStats?.();
    const before = process.threadCpuUsage();
    const processBefore = process.cpuUsage();
    const loadBefore = await worker.cpuUsage();
    const started = performance.now();
    worker.postMessage('go');
    const { failed } = await next();
    const seconds = (performance.now() - started) / 1000;
    const used = process.threadCpuUsage(before);
    const loadUsed = await worker.cpuUsage(loadBefore);
    const processUsed = process.cpuUsage(processBefore);
    const writerAfter = await s.server.store.writerStats?.();
    const micros = ({ user, system }: NodeJS.CpuUsage) => user + system;
    const legs = load.messages * LEGS;
    console.log(
      `${load.messages} MESSAGEs to ${load.users} users (2 devices awake, 1 asleep), ${load.window} at once: ${Math.round(load.messages / seconds)} MESSAGEs/s, ` +
      `${failed} not answered 200; Parley's thread CPU ${(micros(used) / legs).toFixed(1)} µs per delivery, ` +
      `its other threads ${((micros(processUsed) - micros(used) - micros(loadUsed)) / legs).toFixed(1)} µs; ` +
      `store writes per MESSAGE: ${((writes.stored - written.stored) / load.messages).toFixed(2)} stored, ${((writes.done - written.done) / load.messages).toFixed(2)} done` +
      (writerBefore && writerAfter
        ? `; the writer thread was sent ${((writerAfter.batches - writerBefore.batches) / load.messages).toFixed(2)} batches per MESSAGE (each a message between threads), ` +
          `committed ${((writerAfter.transactions - writerBefore.transactions) / load.messages).toFixed(2)} transactions per MESSAGE, ` +
          `its CPU ${((writerAfter.cpuMicros - writerBefore.cpuMicros) / load.messages).toFixed(1)} µs per MESSAGE`
        : ''),
    );
  } finally {
    await worker.terminate();
    await s.stop();
  }
}

/** The devices and the sender: each user's two awake devices answer 200; the sender keeps `window` MESSAGEs under way. */
async function load({ port, users, messages, window }: Load): Promise<void> {
  const server = { host: '127.0.0.1', port };
  const agents: TestUA[] = [];
  const agent = async (user: string) => {
    const ua = await TestUA.create({ user, server });
    agents.push(ua);
    return ua;
  };
  for (let i = 0; i < users; i++) {
    const user = `user${i}`;
    for (let awake = 0; awake < 2; awake++) await registerDevice(await agent(user), { instance: newInstance() });
    const asleep = await agent(user);
    const instance = newInstance();
    await registerDevice(asleep, { instance });
    await registerDevice(asleep, { instance, expires: 0 });
  }
  const sender = await agent('sender');
  let failed = 0;
  const send = async (total: number) => {
    let sent = 0;
    await Promise.all(Array.from({ length: window }, async () => {
      while (sent < total) {
        const n = sent++;
        const response = await sender.message(`sip:user${n % users}@localhost`, `m${n}`);
        if (response.status !== 200) failed++;
      }
    }));
  };
  await send(WARM_UP);
  // Each device records what it received: only the measured run's.
  for (const ua of agents) ua.received.length = 0;
  failed = 0;
  const go = new Promise((resolve) => parentPort!.once('message', resolve));
  parentPort!.postMessage({ failed });
  await go;
  await send(messages);
  // Running until terminated: the main thread reads this thread's CPU time after the run.
  parentPort!.postMessage({ failed });
}
