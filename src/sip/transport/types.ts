import type { SipMessage } from '../message.js';
import type { SipParseError } from '../parser.js';

export type Protocol = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

export const RELIABLE: Record<Protocol, boolean> = { udp: false, tcp: true, tls: true, ws: true, wss: true };

export interface Address {
  proto: Protocol;
  host: string;
  port: number;
}

/** Where a message came from, or where one goes; connectionId pins a stream connection. */
export interface Peer extends Address {
  connectionId?: string;
}

export interface ListenSpec extends Address {}

export interface TlsFiles {
  cert: string;
  key: string;
  ca?: string;
}

export interface TransportEvents {
  message(message: SipMessage, source: Peer): void;
  /** A message that could not be parsed; the stack answers 400 when it can. */
  malformed(error: SipParseError, source: Peer): void;
  connectionClosed(connectionId: string): void;
}

/** The part of a transport the layer above sees: send bytes to a peer. */
export interface Listener {
  readonly spec: ListenSpec;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class TransportError extends Error {
  override name = 'TransportError';
}

export function formatPeer(peer: Address): string {
  return `${peer.proto}:${peer.host.includes(':') && !peer.host.startsWith('[') ? `[${peer.host}]` : peer.host}:${peer.port}`;
}

export function parsePeer(text: string): Address | undefined {
  const m = /^(udp|tcp|tls|ws|wss):(\[[^\]]+\]|[^:]+):([0-9]+)$/.exec(text);
  if (!m) return undefined;
  return { proto: m[1] as Protocol, host: m[2]!.replace(/^\[|\]$/g, ''), port: Number(m[3]) };
}
