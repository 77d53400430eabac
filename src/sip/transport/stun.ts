// STUN binding requests (RFC 5389) arriving on a SIP UDP port: the keep-alive clients use over
// UDP (RFC 5626 §4.4.2), answered with the address the request came from.
import { addressBytes } from './address-bytes.js';

const MAGIC_COOKIE = 0x2112a442;
const HEADER_BYTES = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const XOR_MAPPED_ADDRESS = 0x0020;

/**
 * Whether a datagram is STUN rather than SIP, cheap enough for every datagram: SIP begins with a
 * letter, a STUN message with a byte below 2 and the magic cookie at byte 4.
 */
export function isStun(data: Buffer): boolean {
  return data.length >= HEADER_BYTES && data[0]! < 2 && data.readUInt32BE(4) === MAGIC_COOKIE;
}

/** The success response to a binding request from host:port; undefined for any other STUN message. */
export function stunBindingResponse(request: Buffer, host: string, port: number): Buffer | undefined {
  if (request.readUInt16BE(0) !== BINDING_REQUEST || request.readUInt16BE(2) !== request.length - HEADER_BYTES) return undefined;
  const address = mappedAddressBytes(host);
  if (!address) return undefined;
  const transaction = request.subarray(8, HEADER_BYTES);
  // XOR-MAPPED-ADDRESS: the port with the cookie's top half, the address with the cookie (and, for IPv6, the transaction id).
  const mask = Buffer.concat([request.subarray(4, 8), transaction]);
  const value = Buffer.alloc(4 + address.length);
  value[1] = address.length === 4 ? 0x01 : 0x02;
  value.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), 2);
  for (let i = 0; i < address.length; i++) value[4 + i] = address[i]! ^ mask[i]!;
  const response = Buffer.alloc(HEADER_BYTES + 4 + value.length);
  response.writeUInt16BE(BINDING_SUCCESS, 0);
  response.writeUInt16BE(4 + value.length, 2);
  response.writeUInt32BE(MAGIC_COOKIE, 4);
  transaction.copy(response, 8);
  response.writeUInt16BE(XOR_MAPPED_ADDRESS, HEADER_BYTES);
  response.writeUInt16BE(value.length, HEADER_BYTES + 2);
  value.copy(response, HEADER_BYTES + 4);
  return response;
}

/** The bytes of the address a client is told: an IPv4 client of a dual-stack socket its IPv4 address, as it would read it. */
function mappedAddressBytes(host: string): Buffer | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return addressBytes(mapped ? mapped[1]! : host);
}
