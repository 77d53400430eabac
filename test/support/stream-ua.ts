// A test UA over a stream transport (TCP, TLS, WebSocket, secure WebSocket): the same small
// register / MESSAGE / answer loop as test/support/ua.ts, for the transports that one lacks.
// Built on Parley's message model but not on its transport layer, so a transport bug cannot hide itself.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { WebSocket } from 'ws';
import { SipMessage, createResponse, parseMessage, randomToken, type Header } from '../../src/sip/index.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';

export type StreamProto = 'tcp' | 'tls' | 'ws' | 'wss';

export interface StreamUaOptions {
  proto: StreamProto;
  user: string;
  domain?: string;
  server: { host: string; port: number };
  /** CA (PEM) the server's certificate must chain to, for tls and wss. Verification is always on. */
  ca?: Buffer | string;
}

export class StreamUA {
  readonly received: SipMessage[] = [];
  /** Status this UA answers incoming requests with; null: it does not answer them (the caller may, with write). */
  answer: number | null = 200;
  localPort = 0;
  readonly callId = `${randomToken(12)}@stream-test`;
  /** The host in Via and Contact: RFC 7118 clients have no reachable address, so a random .invalid name. */
  readonly viaHost: string;
  private socket?: Socket | TLSSocket;
  private ws?: WebSocket;
  private cseq = 1;
  private readonly waiters = new Map<string, (m: SipMessage) => void>();
  private readonly requestWaiters: Array<{ test: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }> = [];

  private constructor(readonly options: StreamUaOptions & { domain: string }) {
    this.viaHost = options.proto === 'ws' || options.proto === 'wss' ? `${randomToken(10)}.invalid` : '127.0.0.1';
  }

  static async connect(options: StreamUaOptions): Promise<StreamUA> {
    const ua = new StreamUA({ domain: 'localhost', ...options });
    await ua.open();
    return ua;
  }

  get aor(): string {
    return `sip:${this.options.user}@${this.options.domain}`;
  }

  get contact(): string {
    const { proto, user } = this.options;
    const host = proto === 'ws' || proto === 'wss' ? this.viaHost : `127.0.0.1:${this.localPort}`;
    return `sip:${user}@${host};transport=${proto}`;
  }

  /** The TLS socket, for looking at the certificate Parley presented. */
  get tlsSocket(): TLSSocket | undefined {
    return this.options.proto === 'tls' ? (this.socket as TLSSocket) : undefined;
  }

  /** The subprotocol the WebSocket upgrade agreed on. */
  get wsProtocol(): string | undefined {
    return this.ws?.protocol;
  }

  private async open(): Promise<void> {
    const { proto, server, ca } = this.options;
    if (proto === 'ws' || proto === 'wss') {
      const ws = new WebSocket(`${proto}://${server.host}:${server.port}`, 'sip', ca ? { ca } : {});
      this.ws = ws;
      ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
        const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        if (/^[\r\n]*$/.test(bytes.toString('latin1'))) return;
        this.onMessage(parseMessage(bytes));
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      ws.on('error', () => {});
      return;
    }
    const framer = new StreamFramer(1 << 20);
    const socket: Socket | TLSSocket =
      proto === 'tls' ? tlsConnect({ host: server.host, port: server.port, ca, rejectUnauthorized: true }) : tcpConnect(server.port, server.host);
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const r of framer.push(chunk)) if ('message' in r) this.onMessage(r.message);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once(proto === 'tls' ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    socket.on('error', () => {});
    this.localPort = socket.localPort!;
  }

  write(bytes: Buffer): void {
    if (this.ws) this.ws.send(bytes.toString('utf8'));
    else this.socket!.write(bytes);
  }

  private onMessage(message: SipMessage): void {
    if (message.isRequest) {
      this.received.push(message);
      if (message.method !== 'ACK' && this.answer !== null) this.write(createResponse(message, this.answer).toBuffer());
      const index = this.requestWaiters.findIndex((w) => w.test(message));
      if (index >= 0) this.requestWaiters.splice(index, 1)[0]!.resolve(message);
      return;
    }
    if (message.status < 200) return;
    const branch = message.via.branch ?? '';
    this.waiters.get(branch)?.(message);
    this.waiters.delete(branch);
  }

  waitForRequest(test: (m: SipMessage) => boolean = () => true, timeoutMs = 5000): Promise<SipMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.options.user}/${this.options.proto}: no matching request within ${timeoutMs} ms`)), timeoutMs);
      this.requestWaiters.push({
        test,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  build(method: string, uri: string, extra: { to?: string; headers?: Header[]; body?: string; contentType?: string } = {}): SipMessage {
    const branch = `z9hG4bK${randomToken(12)}`;
    const sentBy = this.options.proto === 'ws' || this.options.proto === 'wss' ? this.viaHost : `127.0.0.1:${this.localPort}`;
    const headers: Header[] = [
      { name: 'via', value: `SIP/2.0/${this.options.proto.toUpperCase()} ${sentBy};branch=${branch};rport` },
      { name: 'max-forwards', value: '70' },
      { name: 'from', value: `<${this.aor}>;tag=${randomToken()}` },
      { name: 'to', value: extra.to ?? `<${uri}>` },
      { name: 'call-id', value: method === 'REGISTER' ? this.callId : `${randomToken(12)}@stream-test` },
      { name: 'cseq', value: `${this.cseq++} ${method}` },
      ...(extra.headers ?? []),
    ];
    if (extra.body !== undefined) headers.push({ name: 'content-type', value: extra.contentType ?? 'text/plain;charset=utf-8' });
    return new SipMessage({ method, uri, headers, body: extra.body === undefined ? undefined : Buffer.from(extra.body) });
  }

  /** Sends a request and resolves with its final response (no retransmissions: the transport is reliable). */
  send(request: SipMessage, timeoutMs = 10000): Promise<SipMessage> {
    const branch = request.via.branch!;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(branch);
        reject(new Error(`${request.method} to ${request.uri} over ${this.options.proto}: no final response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(branch, (response) => {
        clearTimeout(timer);
        resolve(response);
      });
      this.write(request.toBuffer());
    });
  }

  register(expires = 3600): Promise<SipMessage> {
    return this.send(
      this.build('REGISTER', `sip:${this.options.domain}`, {
        to: `<${this.aor}>`,
        headers: [
          { name: 'contact', value: `<${this.contact}>` },
          { name: 'expires', value: String(expires) },
        ],
      }),
    );
  }

  message(to: string, body: string, contentType?: string): Promise<SipMessage> {
    return this.send(this.build('MESSAGE', to, { body, contentType }));
  }

  close(): void {
    this.ws?.terminate();
    this.socket?.destroy();
  }
}
