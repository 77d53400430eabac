// `npm run bench:memory [-- --count N] [--room-size M]`: the memory Parley holds per registered
// device and per room member.
//
// One Parley runs in this process, from its sources through tsx (sqlite in a temporary directory,
// listening on loopback ephemeral ports only). Its RSS is read once it has started, again after `--count` distinct devices have
// registered (each REGISTER parsed from the bytes a phone would send over UDP and handed to the
// registrar, which writes it through to the store before answering), and again after `--count`
// room members have joined rooms of `--room-size` through the room model (written to the store
// first, as a #join is). Each reading follows full garbage collections that also give back the heap
// V8 grew for the burst (node --expose-gc; V8's memory reducer does the same in a server a few
// seconds after a burst), so that what is counted is what Parley holds, not V8's headroom. Each step
// prints what the process gained: MiB in all and bytes per device or member.
import { parseArgs } from 'node:util';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from '../src/server/index.js';
import { createLogger } from '../src/log/index.js';
import { parseMessage, type IncomingRequest } from '../src/sip/index.js';
import { RoomModel, type Room } from '../src/imc/rooms.js';
import { testConfig } from '../test/support/server.js';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '100000' },
    'room-size': { type: 'string', default: '100' },
  },
});
const COUNT = positive('--count', args.count);
const ROOM_SIZE = positive('--room-size', args['room-size']);
/** Requests (or joins) in progress at once: enough to keep the store's group commits full. */
const BATCH = 500;
const DOMAIN = 'localhost';
const MiB = 1024 * 1024;

function positive(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes a whole number of at least 1, not "${text}"`);
  return value;
}

const gc = (globalThis as { gc?: (options: { type: 'major'; flavor: 'last-resort' }) => void }).gc;
if (!gc) throw new Error('bench/memory.ts needs node --expose-gc (npm run bench:memory passes it)');

/** RSS once garbage is collected, V8's heap in use and the heap V8 keeps reserved, in bytes. */
async function settledMemory(): Promise<Memory> {
  for (let round = 0; round < 3; round++) {
    // 'last-resort': a full collection that also shrinks the young generation and frees empty pages.
    gc!({ type: 'major', flavor: 'last-resort' });
    await new Promise((resolve) => setImmediate(resolve));
  }
  const { rss, heapUsed, heapTotal } = process.memoryUsage();
  return { rss, heap: heapUsed, reserved: heapTotal };
}

interface Memory {
  rss: number;
  heap: number;
  reserved: number;
}

/** What a step added: RSS (the figure that matters), of which the JS heap in use, and the heap V8 reserved (it keeps what peaks took). */
function report(what: string, count: number, before: Memory, after: Memory, seconds: number): void {
  const gained = (bytes: number) => `+${(bytes / MiB).toFixed(1)} MiB (${Math.round(bytes / count)} bytes each)`;
  console.log(
    `${what}: ${count} in ${seconds.toFixed(1)} s; RSS ${gained(after.rss - before.rss)}, ` +
      `JS heap in use ${gained(after.heap - before.heap)}, JS heap reserved +${((after.reserved - before.reserved) / MiB).toFixed(1)} MiB`,
  );
}

/** Runs `step` for 0..count-1, BATCH at a time. */
async function inBatches(count: number, step: (index: number) => Promise<void>): Promise<void> {
  for (let start = 0; start < count; start += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, count - start) }, (_, offset) => step(start + offset)));
  }
}

/** A REGISTER as device `index` sends it over UDP, as the transport hands it on: parsed from its bytes. */
function register(index: number): { request: IncomingRequest; answered: Promise<number> } {
  const user = `user${index}`;
  const port = 10_000 + (index % 50_000);
  const host = `127.0.${(index >> 8) & 255}.${index & 255}`;
  const text =
    `REGISTER sip:${DOMAIN} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP ${host}:${port};branch=z9hG4bK${index.toString(36)}reg;rport\r\n` +
    `Max-Forwards: 70\r\n` +
    `From: <sip:${user}@${DOMAIN}>;tag=${index.toString(36)}t\r\n` +
    `To: <sip:${user}@${DOMAIN}>\r\n` +
    `Call-ID: ${index.toString(36)}-register@${host}\r\n` +
    `CSeq: 1 REGISTER\r\n` +
    `Contact: <sip:${user}@${host}:${port}>\r\n` +
    `Expires: 3600\r\n` +
    `User-Agent: bench-memory/1.0\r\n` +
    `Content-Length: 0\r\n\r\n`;
  let answer!: (status: number) => void;
  const answered = new Promise<number>((resolve) => (answer = resolve));
  const request: IncomingRequest = {
    message: parseMessage(Buffer.from(text)),
    source: { proto: 'udp', host, port },
    replied: false,
    reply: (status) => answer(status),
    respond: (response) => answer(response.status),
  };
  return { request, answered };
}

// On tmpfs when there is one: a commit's fsync costs nothing there, and the store's disk is not what is measured.
const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'parley-memory-'));
const config = testConfig({ imc: { max_members: ROOM_SIZE } }, dir);
const server = createServer(config, { logger: createLogger('error') });
try {
  await server.start();
  const started = await settledMemory();
  console.log(`Parley started: RSS ${(started.rss / MiB).toFixed(1)} MiB, JS heap ${(started.heap / MiB).toFixed(1)} MiB`);

  let begun = Date.now();
  await inBatches(COUNT, async (index) => {
    const { request, answered } = register(index);
    await server.registrar.handle(request, `user${index}@${DOMAIN}`);
    const status = await answered;
    if (status !== 200) throw new Error(`REGISTER of user${index} answered ${status}`);
  });
  if (server.registrar.aorCount !== COUNT) throw new Error(`${server.registrar.aorCount} devices registered, not ${COUNT}`);
  const registered = await settledMemory();
  report('registered devices', COUNT, started, registered, (Date.now() - begun) / 1000);

  begun = Date.now();
  const store = await server.store.rooms({ rooms: config.imc.rooms_table, members: config.imc.members_table });
  const model = new RoomModel(
    store,
    { domains: new Set([DOMAIN]), manager: config.imc.manager, roomPattern: 'chat-*', maxMembers: ROOM_SIZE, maxRoomsPerUser: 1, checkOnCreate: false },
    () => Promise.resolve(true),
  );
  const rooms: Room[] = [];
  await inBatches(Math.ceil(COUNT / ROOM_SIZE), async (index) => {
    // Each room's owner is its first member; the others join it.
    rooms[index] = await model.create({ name: `chat-${index}`, domain: DOMAIN }, `user${index * ROOM_SIZE}@${DOMAIN}`, false);
  });
  await inBatches(COUNT, async (index) => {
    if (index % ROOM_SIZE !== 0) await model.admit(rooms[Math.floor(index / ROOM_SIZE)]!, `user${index}@${DOMAIN}`, undefined);
  });
  const members = rooms.reduce((sum, room) => sum + room.members.size, 0);
  if (members !== COUNT) throw new Error(`${members} room members, not ${COUNT}`);
  const joined = await settledMemory();
  report(`room members (${rooms.length} rooms of up to ${ROOM_SIZE})`, COUNT, registered, joined, (Date.now() - begun) / 1000);
  console.log(`in all: RSS ${(joined.rss / MiB).toFixed(1)} MiB`);
} finally {
  await server.stop(1000);
  rmSync(dir, { recursive: true, force: true });
}
