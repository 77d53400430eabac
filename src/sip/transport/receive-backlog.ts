// How far Parley's UDP listeners are behind: the share of each socket's kernel receive buffer taken
// by datagrams that arrived and wait to be read. Below the rate Parley carries it stays near empty
// whatever the rate, a pause (a garbage collection) aside; past that rate it fills, and once full
// the kernel drops whatever arrives, the answers to Parley's own requests with the new requests.
// Read from /proc/net/udp and /proc/net/udp6 (Linux) on a timer, never per datagram: Node tells
// nothing of a socket's queue, nor of when a datagram arrived.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { endianness } from 'node:os';
import { addressBytes } from './address-bytes.js';

/** A bound UDP socket as the backlog is measured for it. */
export interface UdpSocketBuffer {
  /** Its local address and port, as bound (socket.address()). */
  address: string;
  port: number;
  /**
   * The receive buffer in the kernel's accounting: SO_RCVBUF as the socket reports it (Linux: twice
   * what was asked), what the kernel compares the queue with before it drops.
   */
  receiveBuffer: number;
}

/** What /proc/net/udp tells of one socket: bytes queued for reading (rx_queue) and datagrams dropped since it opened. */
export interface ProcUdpRow {
  queued: number;
  drops: number;
}

/** The files a family's sockets are listed in: the text of each, or undefined where there is none (not Linux). */
export type ProcNetReader = (family: 4 | 6) => string | undefined;

const readProcNetUdp: ProcNetReader = (family) => {
  try {
    return readFileSync(family === 4 ? '/proc/net/udp' : '/proc/net/udp6', 'latin1');
  } catch {
    return undefined;
  }
};

export class ReceiveBacklog {
  private current = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The sampling interval once watch() was called, 0 before. */
  private intervalMs = 0;
  /** Whether `share` was read since the last sample on the timer. */
  private asked = false;
  /**
   * Sampling paused: nobody read `share` over a whole interval and nothing waited. An idle server
   * then reads no /proc file 50 times a second; the next read of `share` samples at once and resumes.
   */
  private resting = false;
  /** Each socket's drop count at the previous sample, by its key in /proc. */
  private readonly dropsBefore = new Map<string, number>();
  /** Each socket's key in /proc and the family of the file it is listed in, worked out once. */
  private readonly rows = new WeakMap<UdpSocketBuffer, { key: string; family: 4 | 6 }>();

  constructor(
    private readonly sockets: () => UdpSocketBuffer[],
    private readonly read: ProcNetReader = readProcNetUdp,
  ) {}

  /**
   * The fullest socket's share of its receive buffer at the last sample, from 0 (nothing waits) to
   * about 1 (full); 1 too for a socket that dropped datagrams since the sample before, as the queue
   * may have drained between the two samples. 0 until watch() and where /proc cannot be read.
   */
  get share(): number {
    this.asked = true;
    if (this.resting) this.resume();
    return this.current;
  }

  /**
   * Samples every `intervalMs` from now until stop(), pausing while nobody reads `share` and nothing
   * waits; a second call changes nothing.
   */
  watch(intervalMs: number): void {
    if (this.intervalMs > 0) return;
    this.intervalMs = intervalMs;
    this.sample();
    this.run();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.intervalMs = 0;
    this.resting = false;
    this.current = 0;
  }

  private run(): void {
    this.asked = false;
    this.timer = setInterval(() => this.onInterval(), this.intervalMs).unref();
  }

  private onInterval(): void {
    this.sample();
    if (this.asked || this.current > 0) {
      this.asked = false;
      return;
    }
    clearInterval(this.timer);
    this.timer = undefined;
    this.resting = true;
  }

  /**
   * Samples again after a pause, drops counted from here on: those of the pause, when nobody was
   * refused for them, are no reason to refuse anyone now.
   */
  private resume(): void {
    this.resting = false;
    this.sample(false);
    this.run();
  }

  /** Reads the queues now; with `countDrops` false, datagrams dropped since the last sample do not count as a full buffer. */
  sample(countDrops = true): void {
    const texts = new Map<4 | 6, string | undefined>();
    let fullest = 0;
    for (const socket of this.sockets()) {
      let listed = this.rows.get(socket);
      if (listed === undefined) this.rows.set(socket, (listed = { key: procSocketKey(socket.address, socket.port), family: isIP(socket.address) === 6 ? 6 : 4 }));
      const { key, family } = listed;
      if (!texts.has(family)) texts.set(family, this.read(family));
      const row = findProcUdpRow(texts.get(family) ?? '', key);
      if (!row) continue;
      const dropped = countDrops && row.drops > (this.dropsBefore.get(key) ?? row.drops);
      this.dropsBefore.set(key, row.drops);
      fullest = Math.max(fullest, dropped ? 1 : row.queued / socket.receiveBuffer);
    }
    this.current = fullest;
  }
}

/**
 * A socket's local_address column in /proc/net/udp[6]: the address as the kernel holds it, in 32-bit
 * words each printed in the machine's byte order, then the port, in hex upper case.
 */
export function procSocketKey(address: string, port: number): string {
  const bytes = [...(addressBytes(address) ?? [])];
  let words = '';
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4);
    if (endianness() === 'LE') word.reverse();
    words += word.map((byte) => byte.toString(16).padStart(2, '0')).join('');
  }
  return `${words.toUpperCase()}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The row of /proc/net/udp[6] whose local_address column is `key` (procSocketKey), read. */
export function findProcUdpRow(text: string, key: string): ProcUdpRow | undefined {
  // The column follows the row number ("  12: "), which tells it from rem_address (a connected
  // socket's peer may be this socket): found by its text, not by splitting every row.
  const at = text.indexOf(`: ${key} `);
  if (at < 0) return undefined;
  const end = text.indexOf('\n', at);
  // local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
  const fields = text.slice(at + 1, end < 0 ? undefined : end).trim().split(/\s+/);
  const queues = fields[3]?.split(':');
  return { queued: parseInt(queues?.[1] ?? '0', 16), drops: Number(fields[fields.length - 1]) };
}
