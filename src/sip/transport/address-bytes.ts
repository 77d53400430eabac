import { isIP } from 'node:net';

/**
 * The 4 or 16 bytes of an IP address in text form, as socket.address() or a peer's address writes
 * it (IPv6 compressed, maybe with an IPv4 tail or a zone, which names no byte); undefined for
 * anything else. An IPv4-mapped IPv6 address stays 16 bytes: whether it stands for its IPv4 address
 * is the caller's to say.
 */
export function addressBytes(host: string): Buffer | undefined {
  const address = host.split('%')[0]!;
  const family = isIP(address);
  if (family === 4) return Buffer.from(address.split('.').map(Number));
  if (family !== 6) return undefined;
  // An IPv4 tail (::ffff:127.0.0.1) becomes two groups; "::" stands for as many zero groups as are missing.
  const text = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`);
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}
