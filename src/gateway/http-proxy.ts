// Network sessions through an HTTP proxy (the purple seed's httpProxy_host/httpProxy_port): a TCP
// tunnel opened with CONNECT (RFC 9110 §9.3.6), over which the session speaks as it would directly,
// TLS included (negotiated end to end with the server, the proxy sees ciphertext only).
import { Socket, isIP } from 'node:net';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';

export interface HttpProxy {
  host: string;
  port: number;
}

/** Most bytes of the proxy's answer to CONNECT before its end: a proxy that sends more is refused. */
const MAX_ANSWER = 8192;

/**
 * A TCP socket whose connect() reaches the target through the proxy: the library that owns it sees
 * 'connect' only once the tunnel is open, and never the proxy's own answer. Being a net.Socket, it
 * can be upgraded to TLS later (STARTTLS) like any other.
 */
export class TunnelSocket extends Socket {
  private tunnel: { host: string; port: number; answer: Buffer } | undefined;

  constructor(private readonly proxy: HttpProxy) {
    super();
  }

  override connect(options: unknown, ...rest: unknown[]): this {
    const target = (options ?? {}) as { host?: string; port?: number };
    if (typeof options !== 'object' || typeof target.port !== 'number' || rest.length > 0) {
      throw new TypeError('TunnelSocket.connect takes { host, port }');
    }
    this.tunnel = { host: target.host ?? 'localhost', port: target.port, answer: Buffer.alloc(0) };
    return super.connect({ host: this.proxy.host, port: this.proxy.port });
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const tunnel = this.tunnel;
    if (!tunnel) return super.emit(event, ...args);
    if (event === 'connect') {
      const authority = tunnel.host.includes(':') ? `[${tunnel.host}]:${tunnel.port}` : `${tunnel.host}:${tunnel.port}`;
      this.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
      // A read asked for while connecting waits for 'connect' (net.Socket._read), which the owner
      // does not see yet: reading starts here, for the proxy's answer.
      this._read(0);
      return true;
    }
    if (event === 'data') {
      this.readAnswer(tunnel, args[0] as Buffer);
      return true;
    }
    return super.emit(event, ...args);
  }

  private readAnswer(tunnel: NonNullable<TunnelSocket['tunnel']>, chunk: Buffer): void {
    tunnel.answer = Buffer.concat([tunnel.answer, chunk]);
    const end = tunnel.answer.indexOf('\r\n\r\n');
    if (end < 0) {
      if (tunnel.answer.length > MAX_ANSWER) this.destroy(new Error(`the HTTP proxy ${this.proxy.host}:${this.proxy.port} sent an answer without end`));
      return;
    }
    const statusLine = tunnel.answer.subarray(0, tunnel.answer.indexOf('\r\n')).toString('latin1');
    const rest = tunnel.answer.subarray(end + 4);
    this.tunnel = undefined;
    if (!/^HTTP\/1\.[01] 2\d\d /.test(statusLine)) {
      this.destroy(new Error(`the HTTP proxy ${this.proxy.host}:${this.proxy.port} refused the tunnel to ${tunnel.host}:${tunnel.port}: ${statusLine.slice(0, 120)}`));
      return;
    }
    super.emit('connect');
    if (rest.length > 0) super.emit('data', rest);
  }
}

/**
 * tls.connect() through the proxy: TLS starts once the tunnel is open (before, its bytes would be
 * the proxy's). Errors of either step come as the returned socket's 'error'.
 */
export function tlsThroughProxy(proxy: HttpProxy, options: ConnectionOptions & { host: string; port: number }, secured: (socket: TLSSocket) => void, failed: (error: Error) => void): void {
  const tunnel = new TunnelSocket(proxy);
  tunnel.once('error', failed);
  tunnel.once('connect', () => {
    tunnel.off('error', failed);
    secured(tlsConnect({ ...options, socket: tunnel }));
  });
  tunnel.connect({ host: options.host, port: options.port });
}

/** What a proxied session needs of irc-framework's TCP/TLS transport (4.14, pinned): its hooks around the socket. */
interface IrcTransportInternals {
  options: { host: string; port?: number; tls?: boolean; ssl?: boolean; rejectUnauthorized?: boolean; encoding?: string };
  socket: Socket | null;
  state: number;
  requested_disconnect: boolean;
  incoming_buffer: Buffer;
  disposeSocket(): void;
  setEncoding(encoding: string): boolean;
  _onSocketCreate(options: unknown, socket: Socket): void;
  onSocketError(error: Error): void;
  onSocketClose(): void;
}

/** irc-framework's net transport made to connect through the proxy; the rest of the transport is the library's. */
// A mixin's base must be constructible from any[] (TypeScript's rule for class expressions).
export function ircTransportThrough<Transport extends new (...args: any[]) => object>(NetTransport: Transport, proxy: HttpProxy): Transport {
  const SOCK_CONNECTING = 1;
  return class ProxiedTransport extends NetTransport {
    connect(): void {
      const self = this as unknown as IrcTransportInternals;
      const { host, port = 6667, tls, ssl, rejectUnauthorized } = self.options;
      self.disposeSocket();
      self.requested_disconnect = false;
      self.incoming_buffer = Buffer.alloc(0);
      if (!self.options.encoding || !self.setEncoding(self.options.encoding)) self.setEncoding('utf8');
      self.state = SOCK_CONNECTING;
      const created = (socket: Socket) => {
        self.socket = socket;
        self._onSocketCreate(self.options, socket);
      };
      if (!tls && !ssl) {
        const socket = new TunnelSocket(proxy);
        socket.connect({ host, port });
        return created(socket);
      }
      tlsThroughProxy(proxy, { host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized }, created, (error) => {
        self.onSocketError(error);
        self.onSocketClose();
      });
    }
  };
}

/** What a proxied XMPP session needs of @xmpp/client: its transports, each with the socket class it connects with. */
interface XmppTransport {
  prototype: { Socket: unknown; socketParameters(service: string): unknown };
}

/** The TLS socket wrapper of @xmpp/tls: connect(options) makes its TLS socket and _attachSocket() listens to it. */
interface XmppTlsSocket {
  _attachSocket(socket: TLSSocket): void;
  emit(event: string, ...args: unknown[]): boolean;
}

/** Makes an @xmpp/client entity connect through the proxy: xmpp:// over a tunnel (STARTTLS inside it), xmpps:// with TLS inside it. */
export function xmppThroughProxy(entity: { transports: XmppTransport[] }, proxy: HttpProxy): void {
  entity.transports = entity.transports.map((Transport) => {
    const direct = Transport.prototype.Socket as new () => XmppTlsSocket;
    const isTls = Transport.prototype.socketParameters('xmpps://proxy.invalid:5223') !== undefined;
    const isTcp = Transport.prototype.socketParameters('xmpp://proxy.invalid:5222') !== undefined;
    if (!isTls && !isTcp) return Transport;
    const Proxied = class extends (Transport as unknown as new () => object) {} as unknown as XmppTransport;
    Proxied.prototype.Socket = isTcp
      ? class extends TunnelSocket {
          constructor() {
            super(proxy);
          }
        }
      : class extends direct {
          connect(options: { host: string; port: number }): void {
            tlsThroughProxy(proxy, { ...options, servername: isIP(options.host) ? undefined : options.host }, (socket) => this._attachSocket(socket), (error) => this.emit('error', error));
          }
        };
    return Proxied;
  });
}
