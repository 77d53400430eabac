// The receive backlog of UDP sockets (src/sip/transport/receive-backlog.ts): what /proc/net/udp[6]
// says is waiting for them, as a share of their receive buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { endianness } from 'node:os';
import { createInterface } from 'node:readline';
import { ReceiveBacklog, procSocketKey, type UdpSocketBuffer } from '../../src/sip/transport/receive-backlog.js';
import { eventually } from '../support/eventually.js';
import { setTimeout as sleep } from 'node:timers/promises';

const LE = endianness() === 'LE';

test('a socket is found in /proc/net/udp by its address as the kernel prints it: 32-bit words in the byte order of the machine', () => {
  assert.equal(procSocketKey('127.0.0.1', 5060), LE ? '0100007F:13C4' : '7F000001:13C4');
  assert.equal(procSocketKey('0.0.0.0', 65535), '00000000:FFFF');
  assert.equal(procSocketKey('::1', 5060), `000000000000000000000000${LE ? '01000000' : '00000001'}:13C4`);
  assert.equal(procSocketKey('fe80::1%eth0', 1), `${LE ? '000080FE' : 'FE800000'}0000000000000000${LE ? '01000000' : '00000001'}:0001`);
  assert.equal(procSocketKey('::ffff:10.0.0.1', 5061), `0000000000000000${LE ? 'FFFF0000' : '0000FFFF'}${LE ? '0100000A' : '0A000001'}:13C5`);
});

/** /proc/net/udp with one row per socket: local address key, rx_queue and drops. */
function procText(rows: Array<{ local: string; remote?: string; queued: number; drops: number }>): string {
  const header = '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             \n';
  return header + rows.map((row, i) =>
    `${String(i).padStart(5)}: ${row.local} ${row.remote ?? '00000000:0000'} 07 00000000:${row.queued.toString(16).toUpperCase().padStart(8, '0')} 00:00000000 00000000  1000        0 ${1000 + i} 2 0000000000000000 ${row.drops}        \n`,
  ).join('');
}

test('the backlog is the fullest socket\'s share of its receive buffer; one that dropped datagrams since the last sample reads as full', () => {
  const parley: UdpSocketBuffer = { address: '127.0.0.1', port: 5060, receiveBuffer: 8 << 20 };
  const key = procSocketKey(parley.address, parley.port);
  // A connected socket whose peer is Parley's comes first: its rem_address is the same text.
  const peer = { local: procSocketKey('127.0.0.1', 40000), remote: key, queued: 7 << 20, drops: 0 };
  let table = procText([peer, { local: key, queued: 1 << 20, drops: 3 }]);
  const backlog = new ReceiveBacklog(() => [parley], (family) => (family === 4 ? table : undefined));
  assert.equal(backlog.share, 0, 'nothing read before a sample');

  backlog.sample();
  assert.equal(backlog.share, 1 / 8, 'drops from before the first sample are not new');
  table = procText([peer, { local: key, queued: 1 << 19, drops: 5 }]);
  backlog.sample();
  assert.equal(backlog.share, 1, 'dropped since the last sample');
  backlog.sample();
  assert.equal(backlog.share, 1 / 16);
  table = procText([peer]);
  backlog.sample();
  assert.equal(backlog.share, 0, 'a socket not listed has no backlog');
});

test('sampling pauses while nobody reads the backlog and nothing waits; the next read samples at once, drops of the pause not counted', async (t) => {
  const parley: UdpSocketBuffer = { address: '127.0.0.1', port: 5060, receiveBuffer: 8 << 20 };
  const key = procSocketKey(parley.address, parley.port);
  let drops = 0;
  let reads = 0;
  const backlog = new ReceiveBacklog(() => [parley], (family) => {
    reads++;
    return family === 4 ? procText([{ local: key, queued: 0, drops }]) : undefined;
  });
  t.after(() => backlog.stop());
  backlog.watch(10);
  await sleep(50);
  const paused = reads;
  assert.ok(paused <= 3, `${paused} reads with nobody asking: expected the first sample and one more at most`);
  await sleep(100);
  assert.equal(reads, paused, 'still reading /proc while paused');
  // A flood dropped datagrams meanwhile, refused by nobody: not a reason to refuse the next request.
  drops = 40;
  assert.equal(backlog.share, 0, 'the drops of the pause were counted');
  assert.equal(reads, paused + 1, 'no sample taken when the backlog was asked for again');
  // Asked for on every request while traffic flows, it samples on its interval again.
  for (let i = 0; i < 10; i++) {
    await sleep(10);
    void backlog.share;
  }
  assert.ok(reads >= paused + 5, `${reads - paused} reads over 100 ms of traffic`);
});

test('without /proc/net/udp (not Linux) the backlog reads 0', () => {
  const backlog = new ReceiveBacklog(() => [{ address: '::1', port: 5060, receiveBuffer: 1 << 20 }], () => undefined);
  backlog.sample();
  assert.equal(backlog.share, 0);
});

const skip = existsSync('/proc/net/udp') ? undefined : '/proc/net/udp not readable (not Linux)';

test('datagrams waiting for a process that does not read them are seen in its socket\'s backlog', { skip }, async (t) => {
  // A receiver whose event loop is held up from the moment it is bound: nothing it receives is read.
  const receiver = spawn(process.execPath, ['-e', `
    const socket = require('node:dgram').createSocket('udp4');
    socket.bind(0, '127.0.0.1', () => {
      console.log(socket.address().port, socket.getRecvBufferSize());
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => receiver.kill());
  const [line] = await createInterface({ input: receiver.stdout! })[Symbol.asyncIterator]().next().then((r) => [r.value as string]);
  const [port, receiveBuffer] = line!.split(' ').map(Number) as [number, number];
  const backlog = new ReceiveBacklog(() => [{ address: '127.0.0.1', port, receiveBuffer }]);
  backlog.sample();
  assert.equal(backlog.share, 0);

  const sender = createSocket('udp4');
  t.after(() => sender.close());
  const datagram = Buffer.alloc(1000, 'x');
  // Well within the default receive buffer (net.core.rmem_default, often 212992 bytes, ~2.3 kB a datagram as the kernel counts them).
  const count = 50;
  await Promise.all(Array.from({ length: count }, () => new Promise((sent) => sender.send(datagram, port, '127.0.0.1', sent))));
  // The kernel counts each datagram with its overhead: at least its bytes.
  await eventually(() => {
    backlog.sample();
    return backlog.share >= (count * datagram.length) / receiveBuffer;
  }, `a backlog of ${count} datagrams of ${datagram.length} bytes in a buffer of ${receiveBuffer}`);
  assert.ok(backlog.share < 1, `share ${backlog.share}: datagrams dropped`);
});
