// All of Parley's SIP listeners behind one object: messages in, bytes out to a peer over the
// right socket or connection. Stream connections are indexed by id and by remote address, so
// responses and later requests reuse the connection the client opened (RFC 3261 §18, RFC 5626).
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import { createServer as createTcpServer, connect as tcpConnect, isIP, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SipMessage } from '../message.js';
import { SipParseError, parseMessage } from '../parser.js';
import { StreamFramer } from './framer.js';
import { AddressRanges, PendingConnections, SourceRateLimiter } from './limits.js';
import { isStun, stunBindingResponse } from './stun.js';
import { ReceiveBacklog, type UdpSocketBuffer } from './receive-backlog.js';
import {
  type Address, type ListenSpec, type Peer, type Protocol, type TlsFiles, TransportError, formatPeer,
} from './types.js';

export interface TransportOptions {
  listen: ListenSpec[];
  tls?: TlsFiles;
  maxMessageSize: number;
  /** Seconds a stream connection may stay silent before it is closed. */
  idleTimeout: number;
  /** Seconds a message (a WebSocket frame) may take to arrive whole on a stream connection once its first byte came; also the TLS handshake and WebSocket upgrade deadline. */
  messageTimeout: number;
  /** Bytes written to a stream connection and not yet taken by the peer past which the connection is destroyed. */
  maxSendBuffer: number;
  /** Kernel receive and send buffer sizes asked for on each UDP socket (SO_RCVBUF, SO_SNDBUF). */
  udpReceiveBuffer: number;
  udpSendBuffer: number;
  /** Most stream connections peers may have open at once (TCP, TLS and WebSocket together). */
  maxConnections: number;
  /** Most stream connections one source address may have open at once. */
  maxConnectionsPerIp: number;
  /** Most stream connections one source address may have open that have not carried a whole SIP message yet; absent: no limit. */
  maxPendingConnectionsPerIp?: number;
  /** SIP messages one source address may send per `window` seconds, at most `burst` at once; absent: no limit. */
  rate?: { limit: number; window: number; burst: number; action: 'reply' | 'drop' };
  /** Source addresses (IP or CIDR) that none of `rate`, `maxConnectionsPerIp` and `maxPendingConnectionsPerIp` applies to. */
  exemptSources: readonly string[];
  /** Whether outgoing TLS connections check the peer's certificate. */
  verifyTlsPeers?: boolean;
}

/**
 * Why Parley turned traffic away: a message over the rate, a connection over a limit, a message that
 * came too slowly, a peer that did not read what Parley sent it.
 */
export type RefusalReason = 'rate' | 'connections' | 'connections_per_ip' | 'pending_connections_per_ip' | 'message_timeout' | 'send_buffer';

export const REFUSAL_REASONS: readonly RefusalReason[] = ['rate', 'connections', 'connections_per_ip', 'pending_connections_per_ip', 'message_timeout', 'send_buffer'];

/** A UDP socket's kernel buffer smaller than asked for (Linux caps it at net.core.rmem_max or wmem_max). */
export interface UdpBufferCapped {
  listener: string;
  buffer: 'receive' | 'send';
  asked: number;
  got: number;
}

/** A refusal as reported: the latest one, and how many of that reason went unreported since the last report. */
export interface Refusal {
  reason: RefusalReason;
  host: string;
  unreported: number;
}

export interface TransportStats {
  refused: Record<RefusalReason, number>;
}

/** At most one 'refused' event per reason in this time, so that a flood does not flood the log too. */
const REFUSAL_REPORT_INTERVAL_MS = 10_000;
/** How long a connection closed for a framing error may take to send its last response. */
const FLUSH_GRACE_MS = 2000;

interface Connection {
  id: string;
  proto: Protocol;
  remote: Address;
  lastActive: number;
  write(data: Buffer): void;
  close(): void;
}

export declare interface TransportLayer {
  on(event: 'message', listener: (message: import('../message.js').SipMessage, source: Peer) => void): this;
  on(event: 'malformed', listener: (error: SipParseError, source: Peer) => void): this;
  /** A request over the rate limit, to be answered 503 with Retry-After (rate action `reply`). */
  on(event: 'rateLimited', listener: (request: SipMessage, source: Peer, retryAfter: number) => void): this;
  on(event: 'refused', listener: (refusal: Refusal) => void): this;
  /** Told once per socket and buffer at start. */
  on(event: 'udpBufferCapped', listener: (capped: UdpBufferCapped) => void): this;
  on(event: 'connectionClosed', listener: (connectionId: string) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}

export class TransportLayer extends EventEmitter {
  private readonly udpSockets = new Map<string, UdpSocket>();
  /** The first UDP listener of each address family: where datagrams to that family leave from. */
  private udp4: UdpSocket | undefined;
  private udp6: UdpSocket | undefined;
  private readonly servers: Array<TcpServer | HttpServer> = [];
  private readonly wsServers: WebSocketServer[] = [];
  private readonly connections = new Map<string, Connection>();
  private readonly connectionByRemote = new Map<string, string>();
  private readonly pendingConnects = new Map<string, Promise<Connection>>();
  private nextConnectionId = 1;
  private idleSweep: NodeJS.Timeout | undefined;
  private tlsMaterial: { cert: Buffer; key: Buffer; ca?: Buffer } | undefined;
  private readonly exempt: AddressRanges;
  private readonly rate: SourceRateLimiter | undefined;
  /** Connections peers opened, in total and by source address (those Parley opened are not counted). */
  private inboundConnections = 0;
  private readonly inboundFrom = new Map<string, number>();
  private readonly pending = new PendingConnections();
  private readonly refusalReports = new Map<RefusalReason, { at: number; unreported: number }>();
  /** Bound addresses, with real ports when port 0 was asked for. */
  readonly bound: ListenSpec[] = [];
  readonly stats: TransportStats = { refused: Object.fromEntries(REFUSAL_REASONS.map((reason) => [reason, 0])) as Record<RefusalReason, number> };
  /** The UDP listeners' addresses and receive buffers, as bound: what the receive backlog is measured for. */
  private readonly udpBuffers: UdpSocketBuffer[] = [];
  /** How full the UDP listeners' kernel receive buffers are, sampled once someone watches it. */
  readonly receiveBacklog = new ReceiveBacklog(() => this.udpBuffers);

  constructor(private readonly options: TransportOptions) {
    super();
    this.exempt = new AddressRanges(options.exemptSources);
    const rate = options.rate;
    // A bucket of `burst` refilled at limit per window: a flood starting on a full allowance gets `burst` through, not a window's worth.
    const burst = rate && Math.min(rate.burst, rate.limit);
    this.rate = rate && new SourceRateLimiter(burst!, (burst! / rate.limit) * rate.window * 1000, this.exempt);
  }

  private get messageTimeoutMs(): number {
    return this.options.messageTimeout * 1000;
  }

  /** Open stream connections, both those peers opened and Parley's own. */
  get connectionCount(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    if (this.options.tls) {
      this.tlsMaterial = {
        cert: readFileSync(this.options.tls.cert),
        key: readFileSync(this.options.tls.key),
        ca: this.options.tls.ca ? readFileSync(this.options.tls.ca) : undefined,
      };
    }
    for (const spec of this.options.listen) {
      const port = await this.startListener(spec);
      this.bound.push({ ...spec, port });
    }
    this.idleSweep = setInterval(() => {
      this.closeIdle();
      this.rate?.forgetIdle();
    }, 5000).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.idleSweep);
    this.receiveBacklog.stop();
    for (const ws of this.wsServers) ws.close();
    for (const c of this.connections.values()) c.close();
    await Promise.all(this.servers.map((s) => new Promise<void>((done) => s.close(() => done()))));
    for (const socket of this.udpSockets.values()) socket.close();
    this.udpSockets.clear();
    this.udpBuffers.length = 0;
    this.udp4 = this.udp6 = undefined;
    this.connections.clear();
    this.connectionByRemote.clear();
  }

  /** The address Parley listens on for a protocol (the first such listener). */
  local(proto: Protocol): ListenSpec | undefined {
    return this.bound.find((b) => b.proto === proto);
  }

  has(proto: Protocol): boolean {
    return this.bound.some((b) => b.proto === proto);
  }

  isConnected(connectionId: string): boolean {
    return this.connections.has(connectionId);
  }

  /**
   * Sends bytes to a peer. A connectionId that is still open wins; otherwise stream protocols reuse
   * any connection to that address or open one (tcp/tls; ws/wss peers can only be reached on
   * their own connection). Resolves once written; rejects with TransportError when the peer is unreachable.
   * Never throws: whatever a peer's message named as its address, the failure is a rejection.
   */
  send(data: Buffer, target: Peer): Promise<void> {
    if (!(target.port >= 1 && target.port <= 65535 && Number.isInteger(target.port)) || target.host === '') {
      return Promise.reject(new TransportError(`cannot send to ${formatPeer(target)}: not an address`));
    }
    if (target.proto !== 'udp') return this.sendStream(data, target);
    // Fire and forget: UDP gives no delivery report worth a promise per datagram on the hot path;
    // socket errors surface as 'error' events and lost datagrams through transaction timers.
    const socket = target.host.includes(':') ? this.udp6 : this.udp4;
    if (!socket) return Promise.reject(new TransportError(`no UDP listener for ${target.host.includes(':') ? 'IPv6' : 'IPv4'}`));
    try {
      socket.send(data, target.port, target.host);
    } catch (error) {
      // dgram throws at once for what it can tell is wrong (a closed socket while stopping, a bad argument).
      return Promise.reject(new TransportError(`cannot send to ${formatPeer(target)}: ${(error as Error).message}`));
    }
    return SENT;
  }

  /**
   * send() for a caller that only needs to hear of a failure: a datagram handed to the socket at
   * once, as nearly every one is, costs no promise and no later turn of the event loop.
   */
  sendOrReport(data: Buffer, target: Peer, onFailure: (error: Error) => void): void {
    const sent = this.send(data, target);
    if (sent !== SENT) sent.catch(onFailure);
  }

  private async sendStream(data: Buffer, target: Peer): Promise<void> {
    const connection = this.findConnection(target) ?? (await this.connect(target));
    connection.lastActive = Date.now();
    connection.write(data);
  }

  private findConnection(target: Peer): Connection | undefined {
    if (target.connectionId) {
      const byId = this.connections.get(target.connectionId);
      if (byId) return byId;
    }
    const id = this.connectionByRemote.get(formatPeer(target));
    return id ? this.connections.get(id) : undefined;
  }

  private connect(target: Address): Promise<Connection> {
    if (target.proto === 'ws' || target.proto === 'wss') {
      return Promise.reject(new TransportError(`no open WebSocket connection to ${formatPeer(target)}`));
    }
    const proto = target.proto === 'tls' ? 'tls' : 'tcp';
    const key = formatPeer(target);
    const pending = this.pendingConnects.get(key);
    if (pending) return pending;
    const attempt = new Promise<Connection>((resolve, reject) => {
      const socket: Socket | TLSSocket =
        target.proto === 'tls'
          ? tlsConnect({
              host: target.host,
              port: target.port,
              servername: isIP(target.host) ? undefined : target.host,
              ca: this.tlsMaterial?.ca,
              rejectUnauthorized: this.options.verifyTlsPeers ?? true,
            })
          : tcpConnect({ host: target.host, port: target.port });
      const onError = (error: Error) => reject(new TransportError(`cannot connect to ${key}: ${error.message}`));
      socket.once('error', onError);
      socket.once(proto === 'tls' ? 'secureConnect' : 'connect', () => {
        socket.off('error', onError);
        resolve(this.adoptStream(socket, proto));
      });
      socket.setTimeout(10_000, () => socket.destroy(new Error('connect timeout')));
    }).finally(() => this.pendingConnects.delete(key));
    this.pendingConnects.set(key, attempt);
    return attempt;
  }

  private async startListener(spec: ListenSpec): Promise<number> {
    switch (spec.proto) {
      case 'udp':
        return this.startUdp(spec);
      case 'tcp':
        return this.listenServer(createTcpServer(), spec, (socket) => this.adoptStream(socket, 'tcp'));
      case 'tls':
        return this.listenServer(
          createTlsServer({ ...this.requireTls(), handshakeTimeout: this.messageTimeoutMs }, (socket) => this.adoptStream(socket, 'tls')).on(
            'tlsClientError',
            (error: NodeJS.ErrnoException, socket: TLSSocket) => {
              // A failed handshake leaves the connection of no use: Node does not close it by itself.
              if (error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.refuse('message_timeout', socket.remoteAddress ?? '');
              socket.destroy();
            },
          ),
          spec,
        );
      case 'ws':
      case 'wss':
        return this.startWebSocket(spec);
    }
  }

  private requireTls(): { cert: Buffer; key: Buffer } {
    if (!this.tlsMaterial) throw new TransportError('a tls or wss listener needs tls.cert and tls.key');
    return this.tlsMaterial;
  }

  private startUdp(spec: ListenSpec): Promise<number> {
    const socket = createSocket({
      type: isIP(spec.host) === 6 ? 'udp6' : 'udp4',
      recvBufferSize: this.options.udpReceiveBuffer,
      sendBufferSize: this.options.udpSendBuffer,
      lookup: resolveForSend,
    });
    socket.on('message', (data: Buffer, rinfo: RemoteInfo) => this.onDatagram(data, rinfo, socket));
    socket.on('error', (error) => this.emit('error', error));
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(spec.port, spec.host, () => {
        socket.off('error', reject);
        const listener = formatPeer({ proto: 'udp', host: spec.host, port: socket.address().port });
        // Linux reports twice what it granted, the other half being for its own bookkeeping.
        const granted = (reported: number) => (process.platform === 'linux' ? reported / 2 : reported);
        const receive = granted(socket.getRecvBufferSize());
        const send = granted(socket.getSendBufferSize());
        if (receive < this.options.udpReceiveBuffer) this.emit('udpBufferCapped', { listener, buffer: 'receive', asked: this.options.udpReceiveBuffer, got: receive });
        if (send < this.options.udpSendBuffer) this.emit('udpBufferCapped', { listener, buffer: 'send', asked: this.options.udpSendBuffer, got: send });
        this.udpSockets.set(spec.host, socket);
        this.udpBuffers.push({ ...socket.address(), receiveBuffer: socket.getRecvBufferSize() });
        if (isIP(spec.host) === 6) this.udp6 ??= socket;
        else this.udp4 ??= socket;
        resolve(socket.address().port);
      });
    });
  }

  private onDatagram(data: Buffer, rinfo: RemoteInfo, socket: UdpSocket): void {
    if (isKeepalive(data)) return;
    if (isStun(data)) return this.answerStun(data, rinfo, socket);
    // Before parsing: a flood costs one Map lookup per datagram, and nothing is made for it but,
    // once a second, its answer (not even its source, nor a closure to parse it).
    if (this.overRate(rinfo.address)) {
      if (this.tellsOverRate(rinfo.address, 'udp')) this.answerOverRate(() => parseMessage(data), { proto: 'udp', host: rinfo.address, port: rinfo.port });
      return;
    }
    const source: Peer = { proto: 'udp', host: rinfo.address, port: rinfo.port };
    if (data.length > this.options.maxMessageSize) {
      this.emit('malformed', new SipParseError('Message Too Large', undefined, 513), source);
      return;
    }
    try {
      this.emit('message', parseMessage(data), source);
    } catch (error) {
      if (error instanceof SipParseError) this.emit('malformed', error, source);
      else this.emit('error', error as Error);
    }
  }

  /** A STUN keep-alive gets its binding response from the socket it reached, within the sender's rate. */
  private answerStun(data: Buffer, rinfo: RemoteInfo, socket: UdpSocket): void {
    if (this.overRate(rinfo.address)) return this.refuse('rate', rinfo.address);
    const response = stunBindingResponse(data, rinfo.address, rinfo.port);
    if (response) socket.send(response, rinfo.port, rinfo.address);
  }

  /**
   * Listens; every connection a peer opens is counted against the limits first, and `adopt`
   * (for plain TCP) only sees those admitted. TLS and HTTP servers have taken the socket already:
   * closing it ends their handshake or request.
   */
  private listenServer(server: TcpServer | HttpServer, spec: ListenSpec, adopt?: (socket: Socket) => void): Promise<number> {
    this.servers.push(server);
    server.on('connection', (socket: Socket) => {
      if (this.admitConnection(socket)) adopt?.(socket);
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.port, spec.host, () => {
        server.off('error', reject);
        server.on('error', (error) => this.emit('error', error));
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : spec.port);
      });
    });
  }

  private admitConnection(socket: Socket): boolean {
    const host = socket.remoteAddress;
    if (host === undefined) {
      socket.destroy(); // already gone
      return false;
    }
    const fromHost = this.inboundFrom.get(host) ?? 0;
    const refusal: RefusalReason | undefined =
      this.inboundConnections >= this.options.maxConnections ? 'connections'
      : fromHost >= this.options.maxConnectionsPerIp && !this.exempt.has(host) ? 'connections_per_ip'
      : this.pending.from(host) >= (this.options.maxPendingConnectionsPerIp ?? Infinity) && !this.exempt.has(host) ? 'pending_connections_per_ip'
      : undefined;
    if (refusal) {
      socket.destroy();
      this.refuse(refusal, host);
      return false;
    }
    this.inboundConnections++;
    this.inboundFrom.set(host, fromHost + 1);
    const port = socket.remotePort ?? 0;
    this.pending.opened(host, port);
    socket.once('close', () => {
      this.pending.settled(host, port);
      this.inboundConnections--;
      const left = (this.inboundFrom.get(host) ?? 1) - 1;
      if (left > 0) this.inboundFrom.set(host, left);
      else this.inboundFrom.delete(host);
    });
    return true;
  }

  /** Counts a refusal, and reports it unless one of the same reason was reported a moment ago. */
  private refuse(reason: RefusalReason, host: string): void {
    this.stats.refused[reason]++;
    const now = Date.now();
    const report = this.refusalReports.get(reason);
    if (report && now - report.at < REFUSAL_REPORT_INTERVAL_MS) {
      report.unreported++;
      return;
    }
    this.refusalReports.set(reason, { at: now, unreported: 0 });
    this.emit('refused', { reason, host, unreported: report?.unreported ?? 0 });
  }

  /** A message from a source over its rate: counted, and a request answered 503 unless the action is to drop. */
  private refuseOverRate(read: () => SipMessage, source: Peer): void {
    if (this.tellsOverRate(source.host, source.proto)) this.answerOverRate(read, source);
  }

  /** Counts a message over the rate, and tells whether its sender is to be answered. */
  private tellsOverRate(host: string, proto: Protocol): boolean {
    this.refuse('rate', host);
    if (this.options.rate?.action !== 'reply') return false;
    // Over UDP one answer a second: a flood costs no parse and no send, and a forged source gets no reflection.
    return proto !== 'udp' || this.rate!.mayTell(host);
  }

  /** Answers 503 to the message over the rate, when it is a request and parses. */
  private answerOverRate(read: () => SipMessage, source: Peer): void {
    let message: SipMessage;
    try {
      message = read();
    } catch {
      return; // what does not parse is not answered when over the rate
    }
    if (message.isRequest) this.emit('rateLimited', message, source, this.rate!.retryAfter(source.host));
  }

  /** A peer that does not read what Parley writes to it: its connection goes, rather than memory growing with what waits for it. */
  private dropUnread(host: string, destroy: () => void): void {
    this.refuse('send_buffer', host);
    destroy();
  }

  /** Takes one message from the allowance of `host`: true when it had none left. */
  private overRate(host: string): boolean {
    return this.rate !== undefined && !this.rate.admit(host);
  }

  private register(connection: Omit<Connection, 'id' | 'lastActive'>): Connection {
    const id = `c${this.nextConnectionId++}`;
    const full: Connection = { ...connection, id, lastActive: Date.now() };
    this.connections.set(id, full);
    this.connectionByRemote.set(formatPeer(full.remote), id);
    return full;
  }

  private unregister(connection: Connection): void {
    if (!this.connections.delete(connection.id)) return;
    const key = formatPeer(connection.remote);
    if (this.connectionByRemote.get(key) === connection.id) this.connectionByRemote.delete(key);
    this.emit('connectionClosed', connection.id);
  }

  private adoptStream(socket: Socket | TLSSocket, proto: 'tcp' | 'tls'): Connection {
    socket.setNoDelay(true);
    socket.setTimeout(0);
    const remote: Address = { proto, host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const connection = this.register({
      proto,
      remote,
      write: (data) => {
        if (!socket.write(data) && socket.writableLength > this.options.maxSendBuffer && !socket.destroyed) {
          this.dropUnread(remote.host, () => socket.destroy());
        }
      },
      close: () => socket.destroy(),
    });
    const source: Peer = { ...remote, connectionId: connection.id };
    const framer = new StreamFramer(this.options.maxMessageSize);
    // Armed while a message is incomplete: a peer dribbling bytes (slowloris) is cut off.
    let messageDeadline: NodeJS.Timeout | undefined;
    let carriedMessage = false;
    socket.on('data', (chunk: Buffer) => {
      connection.lastActive = Date.now();
      const results = framer.push(chunk);
      for (const result of results) {
        if ('message' in result) {
          if (!carriedMessage) {
            carriedMessage = true;
            this.pending.settled(remote.host, remote.port);
          }
          if (this.overRate(remote.host)) this.refuseOverRate(() => result.message, source);
          else this.emit('message', result.message, source);
        } else if ('keepalive' in result) socket.write('\r\n');
        else {
          // The stack answers 400 at once, before the connection goes.
          this.emit('malformed', result.error, source);
          if (result.fatal) closeAfterFlush(socket);
        }
      }
      // What is buffered now began in this chunk when something completed in it: its clock starts now.
      if (results.length > 0 || framer.buffered === 0) {
        clearTimeout(messageDeadline);
        messageDeadline = undefined;
      }
      if (framer.buffered > 0 && messageDeadline === undefined) {
        messageDeadline = setTimeout(() => {
          this.refuse('message_timeout', remote.host);
          socket.destroy();
        }, this.messageTimeoutMs).unref();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearTimeout(messageDeadline);
      this.unregister(connection);
    });
    return connection;
  }

  private startWebSocket(spec: ListenSpec): Promise<number> {
    // The upgrade request is a message too: its headers get the same deadline (Node answers 408).
    const deadlines = {
      headersTimeout: this.messageTimeoutMs,
      requestTimeout: this.messageTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, this.messageTimeoutMs),
    };
    const http = spec.proto === 'wss' ? createHttpsServer({ ...this.requireTls(), ...deadlines }) : createHttpServer(deadlines);
    http.on('request', (_req, res) => {
      res.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain' }).end('SIP over WebSocket (RFC 7118): connect with subprotocol "sip"\n');
    });
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.options.maxMessageSize, handleProtocols: () => 'sip' });
    this.wsServers.push(wss);
    http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      const offered = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim().toLowerCase());
      if (!offered.includes('sip')) {
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nsubprotocol "sip" required (RFC 7118)\n');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => this.adoptWebSocket(ws, request, spec.proto as 'ws' | 'wss'));
    });
    return this.listenServer(http, spec);
  }

  private adoptWebSocket(ws: WebSocket, request: IncomingMessage, proto: 'ws' | 'wss'): void {
    const remote: Address = { proto, host: request.socket.remoteAddress ?? '', port: request.socket.remotePort ?? 0 };
    const connection = this.register({
      proto,
      remote,
      write: (data) => {
        ws.send(data.toString('utf8'));
        if (ws.bufferedAmount > this.options.maxSendBuffer && ws.readyState === ws.OPEN) this.dropUnread(remote.host, () => ws.terminate());
      },
      close: () => ws.terminate(),
    });
    const source: Peer = { ...remote, connectionId: connection.id };
    // A frame dribbled in (slowloris) gets message_timeout to complete, as a message over TCP. ws tells
    // of whole frames only, so bytes that completed none are the start of an incomplete frame; ws
    // reads the socket before this listener, so a frame a chunk completed is known here.
    let framesCompleted = 0;
    let framesAtLastChunk = 0;
    let carriedMessage = false;
    let frameDeadline: NodeJS.Timeout | undefined;
    const frameCompleted = () => framesCompleted++;
    ws.on('ping', frameCompleted);
    ws.on('pong', frameCompleted);
    request.socket.on('data', () => {
      if (framesCompleted !== framesAtLastChunk) {
        framesAtLastChunk = framesCompleted;
        clearTimeout(frameDeadline);
        frameDeadline = undefined;
      } else {
        frameDeadline ??= setTimeout(() => {
          this.refuse('message_timeout', remote.host);
          ws.terminate();
        }, this.messageTimeoutMs).unref();
      }
    });
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      frameCompleted();
      connection.lastActive = Date.now();
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isKeepalive(bytes)) {
        // A ping (double CRLF) gets its pong (single CRLF), as on TCP (RFC 5626 §3.5.1).
        if (bytes.length >= 4) ws.send('\r\n');
        return;
      }
      // Once, as over TCP: not a key built and looked up for every message.
      if (!carriedMessage) {
        carriedMessage = true;
        this.pending.settled(remote.host, remote.port);
      }
      if (this.overRate(remote.host)) return this.refuseOverRate(() => parseMessage(bytes), source);
      try {
        this.emit('message', parseMessage(bytes), source);
      } catch (error) {
        if (error instanceof SipParseError) this.emit('malformed', error, source);
        else this.emit('error', error as Error);
      }
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      clearTimeout(frameDeadline);
      this.unregister(connection);
    });
  }

  private closeIdle(): void {
    const limit = Date.now() - this.options.idleTimeout * 1000;
    for (const connection of this.connections.values()) if (connection.lastActive < limit) connection.close();
  }
}

const SENT = Promise.resolve();

/**
 * dgram resolves every destination before sending, even a literal IP, through dns.lookup and a
 * deferred callback; nearly every datagram Parley sends goes to a literal IP, answered here at once.
 * The last literal is remembered: an answer goes where its request came from, often the same peer
 * as the one before, and comparing the text is cheaper than reading it as an address again.
 */
function resolveForSend(
  address: string,
  options: number | LookupOneOptions,
  callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  if (address === lastLiteral.address) return callback(null, address, lastLiteral.family);
  const literal = isIP(address);
  if (literal) {
    lastLiteral.address = address;
    lastLiteral.family = literal;
    callback(null, address, literal);
  } else dnsLookup(address, typeof options === 'number' ? { family: options } : options, callback);
}

/** The last address resolveForSend() found to be an IP literal, and its family. */
const lastLiteral = { address: '', family: 0 };

/**
 * Sends what was written (the 400 for a message that broke framing), then destroys the connection:
 * nothing more is read meanwhile, so a peer that goes on sending cannot make Parley buffer it.
 */
function closeAfterFlush(socket: Socket): void {
  socket.pause();
  socket.end(() => socket.destroy());
  setTimeout(() => socket.destroy(), FLUSH_GRACE_MS).unref();
}

function isKeepalive(data: Buffer): boolean {
  // Indexed rather than iterated: every datagram passes here, and a SIP one fails at its first byte.
  for (let i = 0; i < data.length; i++) if (data[i] !== 0x0d && data[i] !== 0x0a) return false;
  return true;
}
