// A tiny authoritative DNS server on loopback UDP for tests: answers A, AAAA and SRV questions from
// a table, NXDOMAIN for other names, and nothing else (no compression on output, one question).
import { type Socket, createSocket } from 'node:dgram';
import { once } from 'node:events';
import { isIPv4 } from 'node:net';

export type DnsRecord =
  | { type: 'A'; address: string }
  | { type: 'SRV'; priority: number; weight: number; port: number; target: string };

const TYPES = { A: 1, SRV: 33 } as const;

export class DnsServer {
  /** Questions asked, as "TYPE name". */
  readonly queries: string[] = [];

  private constructor(
    private readonly socket: Socket,
    readonly records: Map<string, DnsRecord[]>,
  ) {
    socket.on('message', (query, peer) => {
      const answer = this.answer(query);
      if (answer) socket.send(answer, peer.port, peer.address);
    });
  }

  static async start(records: Record<string, DnsRecord[]>): Promise<DnsServer> {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    return new DnsServer(socket, new Map(Object.entries(records).map(([name, list]) => [name.toLowerCase(), list])));
  }

  /** "127.0.0.1:PORT", as xmpp.resolver takes it. */
  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  close(): void {
    this.socket.close();
  }

  private answer(query: Buffer): Buffer | undefined {
    if (query.length < 12) return undefined;
    const labels: string[] = [];
    let offset = 12;
    while (offset < query.length && query[offset] !== 0) {
      const length = query[offset]!;
      labels.push(query.subarray(offset + 1, offset + 1 + length).toString('ascii'));
      offset += length + 1;
    }
    const questionEnd = offset + 5;
    if (questionEnd > query.length) return undefined;
    const qtype = query.readUInt16BE(offset + 1);
    const name = labels.join('.').toLowerCase();
    const typeName = Object.entries(TYPES).find(([, code]) => code === qtype)?.[0] ?? String(qtype);
    this.queries.push(`${typeName} ${name}`);
    const known = this.records.get(name);
    const matching = (known ?? []).filter((record) => TYPES[record.type] === qtype);
    const answers = matching.map((record) => resourceRecord(name, record));
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // QR, AA, RD copied, NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
  }
}

function encodeName(name: string): Buffer {
  if (name === '.' || name === '') return Buffer.from([0]);
  return Buffer.concat([...name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'ascii')])), Buffer.from([0])]);
}

function resourceRecord(name: string, record: DnsRecord): Buffer {
  let data: Buffer;
  if (record.type === 'A') {
    if (!isIPv4(record.address)) throw new Error(`not IPv4: ${record.address}`);
    data = Buffer.from(record.address.split('.').map(Number));
  } else {
    const fixed = Buffer.alloc(6);
    fixed.writeUInt16BE(record.priority, 0);
    fixed.writeUInt16BE(record.weight, 2);
    fixed.writeUInt16BE(record.port, 4);
    data = Buffer.concat([fixed, encodeName(record.target)]);
  }
  const meta = Buffer.alloc(10);
  meta.writeUInt16BE(TYPES[record.type], 0);
  meta.writeUInt16BE(1, 2); // IN
  meta.writeUInt32BE(60, 4);
  meta.writeUInt16BE(data.length, 8);
  return Buffer.concat([encodeName(name), meta, data]);
}
