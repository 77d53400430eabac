// The XMPP gateway case of bench/hotpath.ts: what one message costs Parley each way through the
// gateway (component mode), in CPU time and bytes allocated on the server's thread. A real server
// (createServer, the relay, the XMPP gateway with its outbox on the sqlite store) listens on
// loopback UDP; a client in a worker thread is both sides: a SIP phone (UDP) and the XMPP server
// the component connects to (a scripted one: handshake, ping answers; test/support/xmpp-peer.ts),
// whose socket keeps Nagle's algorithm, as Prosody's does by default.
//   sip2xmpp: MESSAGEs to sip:bench-rx*xmpp.test@<component>, a window of them unanswered; a run
//             ends once each got its 202 and its stanza reached the XMPP side.
//   xmpp2sip: <message/> stanzas to bench-sip*localhost@<component>, a window of them not yet
//             received as a MESSAGE by the registered phone, which answers each 200.
//
// Beside the CPU figures, the rate each run went at (wall clock: what one busy thread and the
// relay's delivery window to one UDP recipient allow, on this machine, with the client beside it).
//
//   npm run bench:hotpath -- --xmpp [--messages 20000] [--warmup 5000] [--repeat 5] [--window 32] [--only sip2xmpp,xmpp2sip]
//                                   [--delivery-window-udp 4]   # relay.delivery_window_udp (default: Parley's)
import { createSocket, type RemoteInfo } from 'node:dgram';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { freePort } from '../test/support/sipp.js';
import { xmppComponentServer } from '../test/support/xmpp-peer.js';
import { DOMAIN, RUN_OPTIONS, type Measure, type Measured, measureRuns, okFor, printMeasured, startHotpathServer } from './hotpath-server.js';

const COMPONENT = 'sip.xmpp.test';
const SIP_USER = 'bench-sip';
const DIRECTIONS = { sip2xmpp: 'SIP MESSAGE to XMPP (202, stanza written)', xmpp2sip: 'XMPP <message/> to a registered SIP phone (200)' };
type Direction = keyof typeof DIRECTIONS;

type ClientJob = { kind: 'connect' } | { kind: 'register' } | { kind: Direction; count: number; run: string };

interface ClientData {
  xmpp: true;
  port: number;
  xmppPort: number;
  window: number;
}

if (!isMainThread && (workerData as { xmpp?: boolean } | undefined)?.xmpp) runClient(workerData as ClientData);

/** Runs the gateway case with bench/hotpath.ts's `measure`; prints a table. */
export async function xmppGatewayBench(argv: string[], measure: Measure): Promise<void> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      xmpp: { type: 'boolean' },
      messages: { type: 'string', default: '20000' },
      ...RUN_OPTIONS,
      window: { type: 'string', default: '32' },
      only: { type: 'string' },
      'delivery-window-udp': { type: 'string' },
    },
  });
  const directions = (args.only?.split(',') ?? Object.keys(DIRECTIONS)) as Direction[];
  for (const direction of directions) if (!(direction in DIRECTIONS)) throw new Error(`--only: unknown direction ${direction} (sip2xmpp, xmpp2sip)`);
  const xmppPort = await freePort();
  const xmpp = { enabled: true, backend: 'component', xmpp_domain: COMPONENT, gateway_domain: COMPONENT, xmpp_host: '127.0.0.1', xmpp_port: xmppPort, xmpp_password: 'bench', reconnect_min: 0.05, reconnect_max: 0.1 };
  const relay = args['delivery-window-udp'] ? { relay: { delivery_window_udp: Number(args['delivery-window-udp']) } } : {};
  const server = await startHotpathServer<ClientJob>({ routes: [{ handler: 'relay' }], xmpp, ...relay }, new URL(import.meta.url), { xmpp: true, xmppPort, window: Number(args.window) });
  await server.drive({ kind: 'connect' });
  await server.drive({ kind: 'register' });
  const rows: Measured[] = [];
  let runs = 0;
  for (const direction of directions) {
    const messages = (count: number) => ({ job: { kind: direction, count, run: `r${runs++}` }, count });
    rows.push(await measureRuns(DIRECTIONS[direction], server, measure, messages, { warmup: Number(args.warmup), requests: Number(args.messages), repeat: Number(args.repeat) }));
  }
  await server.stop();

  const window = args['delivery-window-udp'] ?? 'default';
  printMeasured(
    `Parley XMPP gateway (component), server thread only: ${args.messages} messages per run, median of ${args.repeat} runs, ${args.window} in flight, relay.delivery_window_udp ${window}, Node ${process.version}`,
    'direction', 'message', rows,
  );
}

// ---------------------------------------------------------------------------------------------
// The client, in its own thread: the SIP phone and the XMPP server.

function runClient({ port, xmppPort, window }: ClientData): void {
  const sip = createSocket('udp4');
  let local = 0;
  let job: ClientJob | undefined;
  let component: Socket | undefined;
  let sent = 0;
  let answered = 0;
  let arrived = 0;
  const done = () => {
    job = undefined;
    parentPort!.postMessage({});
  };
  const fail = (error: string) => {
    job = undefined;
    parentPort!.postMessage({ error });
  };
  const server = xmppComponentServer(COMPONENT, (connection, chunk) => {
    // Only what is still to be read is kept: the runs write megabytes.
    connection.input = '';
    if (chunk.includes('<handshake>')) {
      component = connection.socket;
      if (job?.kind === 'connect') setImmediate(done);
    }
    for (const ping of chunk.matchAll(/<iq type="get" id="([^"]+)"/g)) component?.write(`<iq type='result' id='${ping[1]}' from='xmpp.test' to='${COMPONENT}'/>`);
    if (job?.kind !== 'sip2xmpp') return;
    for (let at = chunk.indexOf('<message '); at >= 0; at = chunk.indexOf('<message ', at + 1)) arrived++;
    if (arrived === job.count && answered === job.count) done();
  });
  void server.listen(xmppPort);
  sip.bind(0, '127.0.0.1', () => (local = sip.address().port));
  sip.on('message', (data: Buffer, rinfo: RemoteInfo) => {
    const text = data.toString('latin1');
    if (text.startsWith('MESSAGE ')) {
      sip.send(okFor(text), rinfo.port, rinfo.address);
      if (job?.kind !== 'xmpp2sip') return;
      if (++arrived === job.count) done();
      else if (sent < job.count) writeStanza(job.run);
      return;
    }
    if (!job || !text.startsWith('SIP/2.0 ')) return;
    const status = Number(text.slice(8, 11));
    const expected = job.kind === 'register' ? 200 : 202;
    if (status !== expected) return fail(`${job.kind}: got ${text.slice(0, text.indexOf('\r'))}`);
    if (job.kind === 'register') return done();
    if (job.kind !== 'sip2xmpp') return;
    answered++;
    if (sent < job.count) sip.send(messageFor(job.run, sent++, local), port, '127.0.0.1');
    else if (arrived === job.count && answered === job.count) done();
  });
  const writeStanza = (run: string) => {
    const id = `${run}-${sent++}`;
    component!.write(`<message from='romeo@xmpp.test/r' to='${SIP_USER}*${DOMAIN}@${COMPONENT}' type='chat' id='${id}'><body>Hello number ${id}</body></message>`);
  };
  parentPort!.on('message', (next: ClientJob) => {
    job = next;
    sent = answered = arrived = 0;
    if (next.kind === 'connect') {
      if (component) done();
    } else if (next.kind === 'register') {
      sip.send(registerFor(local), port, '127.0.0.1');
    } else if (next.kind === 'sip2xmpp') {
      for (let i = 0; i < Math.min(window, next.count); i++) sip.send(messageFor(next.run, sent++, local), port, '127.0.0.1');
    } else {
      for (let i = 0; i < Math.min(window, next.count); i++) writeStanza(next.run);
    }
  });
}

function registerFor(localPort: number): string {
  return [
    `REGISTER sip:${DOMAIN} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK-register;rport`,
    'Max-Forwards: 70',
    `From: <sip:${SIP_USER}@${DOMAIN}>;tag=register`,
    `To: <sip:${SIP_USER}@${DOMAIN}>`,
    'Call-ID: register@bench',
    'CSeq: 1 REGISTER',
    `Contact: <sip:${SIP_USER}@127.0.0.1:${localPort}>`,
    'Expires: 3600',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

function messageFor(run: string, index: number, localPort: number): string {
  const id = `${run}-${index}`;
  const body = `Hello number ${id}`;
  return [
    `MESSAGE sip:bench-rx*xmpp.test@${COMPONENT} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK-${id};rport`,
    'Max-Forwards: 70',
    `From: <sip:bench-sender@${DOMAIN}>;tag=${id}`,
    `To: <sip:bench-rx*xmpp.test@${COMPONENT}>`,
    `Call-ID: ${id}@bench`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}
