// Raw XMPP peers for tests of what Parley does with hostile or odd streams: a client of Parley's
// s2s port that writes what the test says (as fast as it is read, and no longer than the stream is
// open) and records the reply, its stream error and the close; and a server on loopback that
// answers Parley's connections as a script says and records what Parley sent.
import { once } from 'node:events';
import { type Server, type Socket, connect, createServer } from 'node:net';
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
    if (!socket.write(chunk)) await drainedOrClosed(socket);
  }
  return written;
}

/** Resolves when the socket can take more, or is closed (never rejects: an error closes it). */
function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
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
    this.closed = new Promise((resolve) => socket.once('close', resolve));
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

/** One connection to a ScriptedXmppServer: what Parley sent on it so far. */
export interface ScriptedConnection {
  socket: Socket;
  input: string;
}

/**
 * A server on loopback that runs `script` on each chunk Parley sends, after adding it to the
 * connection's input (subclasses override answer(), and accepted() to keep more per connection).
 */
export class ScriptedXmppServer<Connection extends ScriptedConnection = ScriptedConnection> {
  readonly connections: Connection[] = [];
  private readonly server: Server;

  constructor(private readonly script: (connection: Connection, chunk: string) => void = () => {}) {
    this.server = createServer((socket) => {
      const connection = this.accepted({ socket, input: '' });
      this.connections.push(connection);
      socket.setEncoding('utf8');
      socket.on('error', () => {});
      socket.on('data', (chunk: string) => {
        connection.input += chunk;
        this.answer(connection, chunk);
      });
    });
  }

  get latest(): Connection | undefined {
    return this.connections.at(-1);
  }

  /** Listens on `port` of 127.0.0.1 (default: a free one); resolves with the port. */
  async listen(port = 0): Promise<number> {
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }

  close(): void {
    for (const { socket } of this.connections) socket.destroy();
    this.server.close();
  }

  protected accepted(connection: ScriptedConnection): Connection {
    return connection as Connection;
  }

  protected answer(connection: Connection, chunk: string): void {
    this.script(connection, chunk);
  }
}

/**
 * An XEP-0114 server for the component `domain` that accepts any handshake, records what each
 * connection sent, and writes what the test says; `more` runs after it on each chunk Parley sends.
 */
export function xmppComponentServer(domain: string, more: (connection: ScriptedConnection, chunk: string) => void = () => {}): ScriptedXmppServer {
  let streams = 0;
  return new ScriptedXmppServer((connection, chunk) => {
    const { socket } = connection;
    if (chunk.includes('<stream:stream')) {
      socket.write(`<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='${domain}' id='s${++streams}'>`);
    }
    if (chunk.includes('<handshake>')) socket.write('<handshake/>');
    if (chunk.includes('</stream:stream>')) socket.end('</stream:stream>');
    more(connection, chunk);
  });
}
