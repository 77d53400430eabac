// The hostile side of bench/attack.ts, in a process of its own so that its CPU is not the
// benchmark's: from loopback addresses other than 127.0.0.1 it sends malformed datagrams, holds
// slowloris TCP connections, floods REGISTER for random users and writes garbage on s2s streams,
// for --seconds. It prints `attacking` once the floods start and, at the end, what it did as one
// JSON line.
//
//   node --import tsx bench/attacker.ts --sip-port 5060 [--s2s-port 5269] [--seconds 20]
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    'sip-port': { type: 'string' },
    's2s-port': { type: 'string' },
    seconds: { type: 'string', default: '20' },
    'malformed-rate': { type: 'string', default: '20000' },
    'register-rate': { type: 'string', default: '2000' },
    slowloris: { type: 'string', default: '2000' },
  },
});
if (!args['sip-port']) throw new Error('--sip-port is required');
const SIP_PORT = Number(args['sip-port']);
const S2S_PORT = args['s2s-port'] ? Number(args['s2s-port']) : undefined;
const END = Date.now() + Number(args.seconds) * 1000;
const TICK_MS = 10;

const done = { malformedSent: 0, registersSent: 0, registerAnswers: 0, slowlorisOpened: 0, slowlorisCut: 0, slowlorisPeak: 0, s2sStreams: 0 };

/** A deterministic generator (xorshift32), so that every run sends the same bytes. */
function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}
const random = prng(0xa77ac);

/** Requests broken in the ways scanners and broken stacks break them, each a datagram. */
function malformedDatagrams(): Buffer[] {
  const head = (via: string, extra = '') =>
    `OPTIONS sip:localhost SIP/2.0\r\nVia: ${via}\r\nFrom: <sip:x@localhost>;tag=1\r\nTo: <sip:localhost>\r\n` +
    `Call-ID: ${Math.floor(random() * 1e9)}@attack\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n${extra}Content-Length: 0\r\n\r\n`;
  const cases = [
    head('SIP/2.0/UDP 1.2.3.4:0;branch=z9hG4bK1'),
    head('SIP/2.0/UDP 1.2.3.4:65536;branch=z9hG4bK2'),
    head('SIP/2.0/UDP [::1;branch=z9hG4bK3'),
    head('SIP/2.0/UDP host_with space;branch=z9hG4bK4'),
    head('SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK5', 'Content-Length: 99999999\r\n'),
    head('SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK6', `Contact: ${'<sip:a@b>,'.repeat(500)}<sip:c@d>\r\n`),
    head('SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK7', 'CSeq: 99999999999999999999 OPTIONS\r\n'),
    'INVITE sip:x SIP/2.0\r\n\r\n',
    'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1\r\n\r\n',
    '\x00\x01\x02\x03 garbage',
    'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
  ].map((text) => Buffer.from(text));
  for (let i = 0; i < 20; i++) cases.push(Buffer.from(Array.from({ length: 64 + Math.floor(random() * 1200) }, () => Math.floor(random() * 256))));
  return cases;
}

/** Sends `perTick` of `make()` every TICK_MS until the end; `make` may count what it sent. */
function paced(perTick: number, send: () => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (Date.now() >= END) {
        clearInterval(timer);
        resolve();
        return;
      }
      for (let i = 0; i < perTick; i++) send();
    }, TICK_MS);
  });
}

async function bindUdp(host: string) {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  socket.on('error', () => {});
  return socket;
}

async function floodMalformed(): Promise<void> {
  const socket = await bindUdp('127.0.0.2');
  const datagrams = malformedDatagrams();
  let next = 0;
  await paced(Math.round((Number(args['malformed-rate']) * TICK_MS) / 1000), () => {
    socket.send(datagrams[next++ % datagrams.length]!, SIP_PORT, '127.0.0.1');
    done.malformedSent++;
  });
  socket.close();
}

async function floodRegister(): Promise<void> {
  const socket = await bindUdp('127.0.0.4');
  const port = socket.address().port;
  socket.on('message', () => done.registerAnswers++);
  await paced(Math.round((Number(args['register-rate']) * TICK_MS) / 1000), () => {
    const user = `u${Math.floor(random() * 1e9)}`;
    const request =
      `REGISTER sip:localhost SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.4:${port};branch=z9hG4bK${user};rport\r\n` +
      `From: <sip:${user}@localhost>;tag=${user}\r\nTo: <sip:${user}@localhost>\r\nCall-ID: ${user}@attack\r\n` +
      `CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContact: <sip:${user}@127.0.0.4:${port}>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n`;
    socket.send(request, SIP_PORT, '127.0.0.1');
    done.registersSent++;
  });
  socket.close();
}

/**
 * Slowloris: `count` connections from ten source addresses, each starting a request and adding one
 * byte every few seconds; a connection Parley cuts is opened again, at most 200 a second.
 */
async function slowloris(count: number): Promise<void> {
  const open = new Set<Socket>();
  let budget = 0;
  const refill = setInterval(() => (budget = 2), TICK_MS);
  const dial = (index: number) => {
    if (Date.now() >= END) return;
    const socket = connect({ host: '127.0.0.1', port: SIP_PORT, localAddress: `127.0.0.${10 + (index % 10)}` });
    socket.on('connect', () => {
      done.slowlorisOpened++;
      open.add(socket);
      done.slowlorisPeak = Math.max(done.slowlorisPeak, open.size);
      socket.write('MESSAGE sip:bob@localhost SIP/2.0\r\nVia: SIP/2.0/TCP ');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (open.delete(socket)) done.slowlorisCut++;
      redial.push(index);
    });
  };
  const redial: number[] = Array.from({ length: count }, (_, i) => i);
  const drip = setInterval(() => {
    for (const socket of open) socket.write('x');
  }, 3000);
  await paced(1, () => {
    while (budget > 0 && redial.length > 0) {
      budget--;
      dial(redial.shift()!);
    }
  });
  clearInterval(refill);
  clearInterval(drip);
  for (const socket of open) socket.destroy();
}

/** Streams that open like a server's and go on with garbage, one new stream every 20 ms. */
async function s2sGarbage(port: number): Promise<void> {
  const junk = [
    `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='localhost' from='evil.example' version='1.0'>`,
    '<message to="a@localhost" from="b@evil.example"><body>unauthenticated</body></message>',
    '<db:verify from="x" to="y" id="z">key</db:verify>',
    '<<<>>>&&&&',
    `<a>${'<b>'.repeat(5000)}`,
  ];
  let streams = 0;
  await paced(1, () => {
    if (streams++ % 2 !== 0) return;
    const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.5' });
    socket.on('error', () => {});
    socket.on('connect', () => {
      done.s2sStreams++;
      for (const piece of junk) socket.write(piece);
      setTimeout(() => socket.destroy(), 1000);
    });
  });
}

// bench/attack.ts starts the legitimate traffic on this line, the attacker's start-up behind it.
const attacks = Promise.all([
  floodMalformed(),
  floodRegister(),
  slowloris(Number(args.slowloris)),
  S2S_PORT ? s2sGarbage(S2S_PORT) : Promise.resolve(),
]);
console.log('attacking');
await attacks;
console.log(JSON.stringify(done));
process.exit(0);
