// JsSIP (the browser SIP library) in Node, over the `ws` package: a JsSIP.Socket implementation,
// and a small wrapper that starts a UA, records what it receives and sends MESSAGEs.
import { createHash } from 'node:crypto';
import JsSIP from 'jssip';
import type { IncomingRequest } from 'jssip/lib/SIPMessage.js';
import type { IncomingMessageEvent, OutgoingMessageEvent } from 'jssip/lib/UA.js';
import { WebSocket } from 'ws';

/** JsSIP's Socket interface (https://jssip.net/documentation/3.10.x/api/socket/) on top of `ws`. */
export class NodeWebSocket {
  via_transport: string;
  readonly sip_uri: string;
  onconnect: () => void = () => {};
  ondisconnect: (error: boolean, code?: number, reason?: string) => void = () => {};
  ondata: (data: string) => void = () => {};
  private ws: WebSocket | undefined;
  /** Set by kill(): the socket neither reconnects nor sends any more. */
  private dead = false;

  constructor(
    readonly url: string,
    private readonly tls: { ca?: Buffer | string } = {},
  ) {
    const parsed = new URL(url);
    const scheme = parsed.protocol.replace(/:$/, '');
    if (scheme !== 'ws' && scheme !== 'wss') throw new TypeError(`not a WebSocket URL: ${url}`);
    this.via_transport = scheme.toUpperCase();
    this.sip_uri = `sip:${parsed.hostname}${parsed.port ? `:${parsed.port}` : ''};transport=ws`;
  }

  connect(): void {
    if (this.dead || this.isConnected() || this.isConnecting()) return;
    const ws = new WebSocket(this.url, 'sip', this.tls.ca ? { ca: this.tls.ca } : {});
    this.ws = ws;
    ws.on('open', () => {
      if (this.ws === ws) this.onconnect();
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.ondisconnect(code !== 1000, code, reason.toString('utf8'));
    });
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      if (this.ws !== ws) return;
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.ondata(bytes.toString('utf8'));
    });
    ws.on('error', () => {});
  }

  disconnect(): void {
    const ws = this.ws;
    this.ws = undefined;
    ws?.close();
  }

  send(message: string | ArrayBufferLike | ArrayBufferView): boolean {
    if (this.dead || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(typeof message === 'string' ? message : Buffer.from(message as ArrayBuffer));
    return true;
  }

  isConnected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  isConnecting(): boolean {
    return this.ws?.readyState === WebSocket.CONNECTING;
  }

  /** Drops the TCP connection without a WebSocket close or SIP un-REGISTER: a browser tab killed, a network lost. */
  kill(): void {
    this.dead = true;
    const ws = this.ws;
    this.ws = undefined;
    ws?.terminate();
  }
}

export interface ReceivedMessage {
  body: string;
  from: string;
  contentType: string | undefined;
  request: IncomingRequest;
}

export interface JsSipOptions {
  url: string;
  uri: string;
  password?: string;
  ca?: Buffer | string;
  registerExpires?: number;
  /** Its +sip.instance; by default one kept per SIP URI, as a web app keeps it in local storage (RFC 5626 §4.1). */
  instanceId?: string;
}

/** A UUID that is the same each time for `uri`: the same user's client started again is the same device. */
function instanceIdOf(uri: string): string {
  const hex = createHash('sha256').update(uri).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export class JsSipClient {
  readonly socket: NodeWebSocket;
  readonly ua: JsSIP.UA;
  readonly received: ReceivedMessage[] = [];
  private readonly waiters: Array<{ test: (m: ReceivedMessage) => boolean; resolve: (m: ReceivedMessage) => void }> = [];

  private constructor(options: JsSipOptions) {
    this.socket = new NodeWebSocket(options.url, { ca: options.ca });
    this.ua = new JsSIP.UA({
      sockets: [this.socket as unknown as JsSIP.Socket],
      uri: options.uri,
      password: options.password,
      register: true,
      register_expires: options.registerExpires ?? 600,
      instance_id: options.instanceId ?? instanceIdOf(options.uri),
      connection_recovery_min_interval: 60,
      connection_recovery_max_interval: 60,
    });
    this.ua.on('newMessage', (event: IncomingMessageEvent | OutgoingMessageEvent) => {
      if (event.originator !== 'remote') return;
      const request = (event as IncomingMessageEvent).request;
      const message: ReceivedMessage = {
        body: request.body ?? '',
        from: request.from.uri.toString(),
        contentType: request.getHeader('Content-Type'),
        request,
      };
      this.received.push(message);
      const index = this.waiters.findIndex((w) => w.test(message));
      if (index >= 0) this.waiters.splice(index, 1)[0]!.resolve(message);
    });
  }

  /** Starts a JsSIP UA and resolves once it is registered (rejects on registrationFailed). */
  static async start(options: JsSipOptions, timeoutMs = 5000): Promise<JsSipClient> {
    const client = new JsSipClient(options);
    const registered = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${options.uri}: JsSIP not registered within ${timeoutMs} ms`)), timeoutMs);
      client.ua.once('registered', () => {
        clearTimeout(timer);
        resolve();
      });
      client.ua.once('registrationFailed', (event) => {
        clearTimeout(timer);
        reject(new Error(`${options.uri}: JsSIP registration failed: ${event.cause} ${event.response?.status_code ?? ''}`));
      });
    });
    client.ua.start();
    try {
      await registered;
    } catch (error) {
      client.kill();
      throw error;
    }
    return client;
  }

  /** Resolves with the next incoming MESSAGE matching `test`, or one already received. */
  waitForMessage(test: (m: ReceivedMessage) => boolean = () => true, timeoutMs = 5000): Promise<ReceivedMessage> {
    const already = this.received.find(test);
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`JsSIP: no matching MESSAGE within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** ua.sendMessage; resolves with the final status on `succeeded` or `failed`. */
  sendMessage(target: string, body: string, timeoutMs = 10000): Promise<{ ok: boolean; status: number; cause?: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`JsSIP MESSAGE to ${target}: no outcome within ${timeoutMs} ms`)), timeoutMs);
      this.ua.sendMessage(target, body, {
        contentType: 'text/plain;charset=utf-8',
        eventHandlers: {
          succeeded: (event) => {
            clearTimeout(timer);
            resolve({ ok: true, status: (event as { response: { status_code: number } }).response.status_code });
          },
          failed: (event) => {
            clearTimeout(timer);
            resolve({ ok: false, status: event.response?.status_code ?? 0, cause: String(event.cause) });
          },
        },
      });
    });
  }

  /** A clean stop: JsSIP un-REGISTERs, then closes its WebSocket. */
  async stop(timeoutMs = 3000): Promise<void> {
    const ua = this.ua;
    if (ua.status === JsSIP.UA.C.STATUS_USER_CLOSED) return;
    const disconnected = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      ua.once('disconnected', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    ua.stop();
    await disconnected;
  }

  /** The connection dies under the client: no un-REGISTER reaches Parley. */
  kill(): void {
    this.socket.kill();
    if (this.ua.status !== JsSIP.UA.C.STATUS_USER_CLOSED) this.ua.stop();
  }
}
