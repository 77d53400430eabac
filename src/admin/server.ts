// The management endpoint: JSON-RPC at POST /rpc behind a bearer token, Prometheus at GET /metrics,
// the plugins' health at GET /health. What it serves is given to it (admin/plugin.ts gathers it
// from the plugins); it knows no server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config/index.js';
import type { Metric, PluginHealth, RpcMethods } from '../plugin/index.js';
import { STORE_RETRY_AFTER_SECONDS, isStoreUnavailable } from '../store/index.js';
import { createMetricsRegistry } from './metrics.js';
import { RpcDispatcher } from './rpc.js';
import { tokenFilePath, tokensMatch, writeGeneratedToken } from './token.js';

export interface AdminContent {
  settings: Config['admin'];
  /** Where a generated token is kept: beside a SQLite database. */
  database: string;
  methods: RpcMethods;
  metrics: readonly Metric[];
  /** Each plugin's that reports one, by name. */
  health(): Record<string, PluginHealth>;
}

/** Far above any real call or batch; a bound on what one request can make the server buffer. */
const MAX_BODY_BYTES = 1 << 20;

export class AdminServer {
  private readonly http: Server;
  private readonly dispatcher: RpcDispatcher;
  private readonly metrics: Registry;
  private readonly inFlight = new Set<Promise<void>>();
  private token = '';

  constructor(
    private readonly content: AdminContent,
    private readonly log: Logger,
  ) {
    this.dispatcher = new RpcDispatcher(content.methods, log);
    this.metrics = createMetricsRegistry(content.metrics);
    this.http = createServer((request, response) => this.track(this.serve(request, response)));
  }

  /** The port listened on: the configured one, or the one the system picked for port 0. */
  get port(): number {
    const address = this.http.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  async start(): Promise<void> {
    const { listen, token } = this.content.settings;
    const tokenFile = token === null ? tokenFilePath(this.content.database) : undefined;
    this.token = token ?? writeGeneratedToken(tokenFile!);
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(listen.port, listen.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.log.info({ listen: `${listen.host}:${this.port}`, tokenFile }, 'admin endpoint listening');
  }

  /** Lets the calls in progress finish, so that no room change is cut off halfway, then closes every connection. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    await Promise.allSettled([...this.inFlight]);
    this.http.closeAllConnections();
    await closed;
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    // Only a failed error answer gets here: given up, logged, never an unhandled rejection.
    work.catch((error: unknown) => this.log.error({ err: error }, 'admin request failed, and so did its error answer')).finally(() => this.inFlight.delete(work));
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const path = pathOf(request);
      if (path === '/rpc') await this.serveRpc(request, response);
      else if (path === '/metrics') await this.serveMetrics(request, response);
      else if (path === '/health') this.serveHealth(request, response);
      else reply(response, 404, 'not found; try POST /rpc, GET /metrics or GET /health\n');
    } catch (error) {
      if (isStoreUnavailable(error) && !response.headersSent) {
        // The outage itself is logged once by the store.
        return reply(response, 503, 'the store is unavailable; try again later\n', { 'retry-after': String(STORE_RETRY_AFTER_SECONDS) });
      }
      this.log.error({ err: error }, 'admin request failed');
      if (response.headersSent) response.destroy();
      else reply(response, 500, 'internal error\n');
    }
  }

  private async serveRpc(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'POST') return reply(response, 405, 'use POST\n', { allow: 'POST' });
    if (!this.authorized(request)) return this.refuse(request, response);
    const body = await readBody(request);
    if (body === undefined) return reply(response, 413, `the body exceeds ${MAX_BODY_BYTES} bytes\n`, { connection: 'close' });
    const answer = await this.dispatcher.handle(body);
    if (answer === undefined) return reply(response, 204);
    reply(response, 200, JSON.stringify(answer), { 'content-type': 'application/json' });
  }

  private async serveMetrics(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'GET') return reply(response, 405, 'use GET\n', { allow: 'GET' });
    if (this.content.settings.metrics_token && !this.authorized(request)) return this.refuse(request, response);
    reply(response, 200, await this.metrics.metrics(), { 'content-type': this.metrics.contentType });
  }

  /** 200 when every plugin is ok, 503 when one is degraded; behind the token as /metrics is. */
  private serveHealth(request: IncomingMessage, response: ServerResponse): void {
    if (request.method !== 'GET') return reply(response, 405, 'use GET\n', { allow: 'GET' });
    if (this.content.settings.metrics_token && !this.authorized(request)) return this.refuse(request, response);
    const plugins = this.content.health();
    const status = Object.values(plugins).every((health) => health.status === 'ok') ? 'ok' : 'degraded';
    reply(response, status === 'ok' ? 200 : 503, JSON.stringify({ status, plugins }), { 'content-type': 'application/json' });
  }

  private authorized(request: IncomingMessage): boolean {
    const presented = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
    return presented !== undefined && tokensMatch(presented, this.token);
  }

  private refuse(request: IncomingMessage, response: ServerResponse): void {
    this.log.warn({ remote: request.socket.remoteAddress, path: pathOf(request) }, 'admin request without a valid token');
    reply(response, 401, 'a valid bearer token is required\n', { 'www-authenticate': 'Bearer realm="parley"' });
  }
}

/** The path alone: a query string is not logged, since a client might put a token there. */
function pathOf(request: IncomingMessage): string {
  return new URL(request.url ?? '/', 'http://admin').pathname;
}

function reply(response: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  response.end(body);
}

/** The body as text, or undefined when it is larger than MAX_BODY_BYTES. */
async function readBody(request: IncomingMessage): Promise<string | undefined> {
  if (Number(request.headers['content-length'] ?? 0) > MAX_BODY_BYTES) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
