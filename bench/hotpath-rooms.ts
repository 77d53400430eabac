// The room-post case of bench/hotpath.ts: what one delivered leg of a room post costs Parley, in CPU
// time and bytes allocated on the server's thread. A real server (createServer, rooms, relay,
// registrar, the outbox on its sqlite store) listens on loopback UDP; a client in a worker thread
// registers the members (one socket, a contact each), sets up a room, posts to it and answers
// every copy 200 as the members' phones would. Posts are paced by the legs outstanding (posted and
// not yet received), so the outbox never reaches its bound; a run ends once every post is answered
// and every leg received. The post's own cost (parsing, the outbox write) is spread over its legs.
//
//   npm run bench:hotpath -- --rooms [--members 10,100] [--legs 20000] [--repeat 5] [--outstanding 400]
import { createSocket, type RemoteInfo } from 'node:dgram';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DOMAIN, RUN_OPTIONS, type Measure, type Measured, measureRuns, okFor, printMeasured, startHotpathServer } from './hotpath-server.js';

/** What marks a post's copies among the room's other MESSAGEs (notices). */
const POST_TEXT = 'bench-post';

type ClientJob =
  | { kind: 'register'; users: string[] }
  | { kind: 'command'; from: string; to: string; text: string }
  | { kind: 'posts'; from: string; room: string; posts: number; members: number; outstanding: number; run: string };

if (!isMainThread && (workerData as { rooms?: boolean } | undefined)?.rooms) runClient(workerData as { port: number });

/** Runs the room-post case with bench/hotpath.ts's `measure`; prints a table. */
export async function roomFanOutBench(argv: string[], measure: Measure): Promise<void> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      rooms: { type: 'boolean' },
      members: { type: 'string', default: '10,100' },
      legs: { type: 'string', default: '20000' },
      ...RUN_OPTIONS,
      outstanding: { type: 'string', default: '400' },
    },
  });
  const sizes = args.members.split(',').map(Number);
  const bad = sizes.find((size) => !Number.isInteger(size) || size < 2);
  if (bad !== undefined) throw new Error(`--members: ${bad} is not a room size (a whole number, at least 2: the poster and one member)`);
  const server = await startHotpathServer<ClientJob>(
    // The per-sender rate limit would refuse the poster: raised out of the way, as bench/rooms.ts does.
    { imc: { max_rate: 1_000_000, rate_burst: 1_000_000, max_members: Math.max(...sizes) + 10 } },
    new URL(import.meta.url),
    { rooms: true },
  );

  const rows: Measured[] = [];
  let runs = 0;
  for (const size of sizes) {
    const users = Array.from({ length: size }, (_, i) => `room${size}-m${i}`);
    const room = `chat-hotpath${size}`;
    await server.drive({ kind: 'register', users });
    await server.drive({ kind: 'command', from: users[0]!, to: 'chat-manager', text: `#create ${room}` });
    for (const user of users.slice(1)) await server.drive({ kind: 'command', from: user, to: room, text: '#join' });
    const posts = (legs: number) => {
      const job = { kind: 'posts' as const, from: users[0]!, room, posts: Math.ceil(legs / (size - 1)), members: size, outstanding: Number(args.outstanding), run: `r${runs++}` };
      return { job, count: job.posts * (size - 1) };
    };
    rows.push(await measureRuns(`post to ${size} members`, server, measure, posts, { warmup: Number(args.warmup), requests: Number(args.legs), repeat: Number(args.repeat) }));
  }
  await server.stop();

  printMeasured(
    `Parley room fan-out, server thread only: ~${args.legs} legs per run, median of ${args.repeat} runs, ${args.outstanding} legs outstanding at most, Node ${process.version}`,
    'room', 'leg', rows,
  );
}

// ---------------------------------------------------------------------------------------------
// The client: the poster and every member, one socket, in its own thread.

function runClient({ port }: { port: number }): void {
  // Room bursts (a copy to every member at once) overflow a default receive buffer.
  const socket = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  let local = 0;
  let sequence = 0;
  /** Final responses awaited, by Call-ID. */
  const awaited = new Map<string, (status: number) => void>();
  /** The posts job under way: legs received so far. */
  let legsReceived = 0;
  let onLeg: (() => void) | undefined;
  socket.bind(0, '127.0.0.1', () => (local = socket.address().port));
  socket.on('message', (data: Buffer, rinfo: RemoteInfo) => {
    const text = data.toString('latin1');
    if (text.startsWith('MESSAGE ')) {
      socket.send(okFor(text), rinfo.port, rinfo.address);
      if (text.includes(POST_TEXT)) {
        legsReceived++;
        onLeg?.();
      }
      return;
    }
    if (!text.startsWith('SIP/2.0 ')) return;
    const status = Number(text.slice(8, 11));
    if (status < 200) return;
    const callId = /\r\n(?:Call-ID|i):\s*([^\r]+)/i.exec(text)?.[1];
    const done = callId && awaited.get(callId);
    if (!done) return;
    awaited.delete(callId);
    done(status);
  });
  const request = (method: 'REGISTER' | 'MESSAGE', from: string, to: string, body: string, extra: string[] = []) =>
    new Promise<number>((resolve) => {
      const id = `hp-${sequence++}`;
      const uri = method === 'REGISTER' ? `sip:${DOMAIN}` : `sip:${to}@${DOMAIN}`;
      const text = [
        `${method} ${uri} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-${id};rport`,
        'Max-Forwards: 70',
        `From: <sip:${from}@${DOMAIN}>;tag=${id}`,
        `To: <sip:${to}@${DOMAIN}>`,
        `Call-ID: ${id}`,
        `CSeq: 1 ${method}`,
        ...extra,
        ...(method === 'MESSAGE' ? ['Content-Type: text/plain'] : []),
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ].join('\r\n');
      socket.send(text, port, '127.0.0.1');
      // Sent again every 500 ms until answered, as a UAC does over UDP (RFC 3261 Timer E).
      const again = setInterval(() => socket.send(text, port, '127.0.0.1'), 500);
      awaited.set(id, (status) => {
        clearInterval(again);
        resolve(status);
      });
    });
  const fail = (error: string) => parentPort!.postMessage({ error });
  const expect200 = async (what: string, status: Promise<number>) => {
    const got = await status;
    if (got !== 200) throw new Error(`${what}: got ${got}`);
  };

  async function run(job: ClientJob): Promise<void> {
    if (job.kind === 'register') {
      await Promise.all(
        job.users.map((user) => expect200(`REGISTER ${user}`, request('REGISTER', user, user, '', [`Contact: <sip:${user}@127.0.0.1:${local}>`, 'Expires: 3600']))),
      );
    } else if (job.kind === 'command') {
      await expect200(job.text, request('MESSAGE', job.from, job.to, job.text));
    } else {
      const legsPerPost = job.members - 1;
      const expected = job.posts * legsPerPost;
      legsReceived = 0;
      let posted = 0;
      let answered = 0;
      await new Promise<void>((resolve, reject) => {
        // A run that stops moving (a datagram lost: nothing here retransmits) fails instead of hanging.
        let progress = -1;
        const watchdog = setInterval(() => {
          if (answered + legsReceived > progress) progress = answered + legsReceived;
          else {
            clearInterval(watchdog);
            reject(new Error(`posts: stuck at ${answered}/${job.posts} answered, ${legsReceived}/${expected} legs received`));
          }
        }, 5000);
        const check = () => {
          while (posted < job.posts && posted * legsPerPost - legsReceived < job.outstanding) {
            const index = posted++;
            void request('MESSAGE', job.from, job.room, `${POST_TEXT} ${job.run} ${index}`).then((status) => {
              if (status !== 200) return reject(new Error(`post ${index}: got ${status}`));
              answered++;
              check();
            });
          }
          if (answered === job.posts && legsReceived >= expected) {
            clearInterval(watchdog);
            onLeg = undefined;
            resolve();
          }
        };
        onLeg = check;
        check();
      });
    }
  }
  parentPort!.on('message', (job: ClientJob) => {
    run(job).then(() => parentPort!.postMessage({}), (error: Error) => fail(error.message));
  });
}
