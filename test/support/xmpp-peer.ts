// A raw XMPP peer for tests of what Parley does with hostile or odd streams: writes what the test
// says on a TCP connection (as fast as it is read, and no longer than the stream is open), and
// records the reply, its stream error, and the close.
import { once } from 'node:events';
import { type Socket, connect } from 'node:net';
import { eventually } from './eventually.js';

/** The condition of the first stream error in `text`, if any. */
export function streamErrorIn(text: string): string | undefined {
  return /<stream:error><([a-z-]+) xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']/.exec(text)?.[1];
}

/** A server-to-server stream header (with the XML declaration); `attrs` replaces the default namespace, from, to and version. */
export function s2sHeader(from: string, to: string, attrs = `xmlns='jabber:server' from='${from}' to='${to}' version='1.0'`): string {
  return `<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' ${attrs}>`;
}

/**
 * Writes the chunks as fast as the peer reads them, until all are written, `stop()` says so, or the
 * connection is gone; resolves with the characters written.
 */
export async function writeAll(socket: Socket, chunks: Iterable<string>, stop: () => boolean): Promise<number> {
  let written = 0;
  for (const chunk of chunks) {
    if (stop() || socket.destroyed || !socket.writable) break;
    written += chunk.length;
    if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), once(socket, 'close')]);
  }
  return written;
}

export class RawXmppPeer {
  /** What the other side sent. */
  reply = '';
  private readonly closed: Promise<unknown>;

  private constructor(readonly socket: Socket) {
    socket.on('error', () => {});
    socket.setEncoding('utf8').on('data', (text: string) => (this.reply += text));
    // When the other side ends its stream, this one closes too, as RFC 6120 §4.4 asks.
    socket.on('end', () => socket.end());
    this.closed = once(socket, 'close');
  }

  /** Connects to host:port (from `localAddress`, another loopback address, when given). */
  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawXmppPeer> {
    const socket = connect({ port, host, localAddress });
    socket.on('error', () => {});
    await once(socket, 'connect');
    return new RawXmppPeer(socket);
  }

  get streamError(): string | undefined {
    return streamErrorIn(this.reply);
  }

  /** Writes the chunks until the other side ends the stream; resolves with the characters written. */
  write(...chunks: Array<string | Iterable<string>>): Promise<number> {
    const all = chunks.flatMap((chunk) => (typeof chunk === 'string' ? [chunk] : [...chunk]));
    return writeAll(this.socket, all, () => this.reply.includes('</stream:stream>'));
  }

  /** Resolves once the reply contains `text`. */
  async waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    await eventually(() => this.reply.includes(text) || undefined, `${JSON.stringify(text)} from the other side (got ${JSON.stringify(this.reply.slice(-300))})`, timeoutMs);
  }

  /** Resolves with the whole reply once the connection is closed; fails when it is not within `timeoutMs`. */
  async finished(timeoutMs = 10_000): Promise<string> {
    const timer = setTimeout(() => this.socket.destroy(new Error('not closed')), timeoutMs);
    await this.closed;
    clearTimeout(timer);
    if (!this.reply.endsWith('</stream:stream>')) throw new Error(`the stream was not closed properly within ${timeoutMs} ms: ${JSON.stringify(this.reply.slice(-300))}`);
    return this.reply;
  }
}
