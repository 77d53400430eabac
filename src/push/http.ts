// HTTPS requests to the push providers. APNs speaks HTTP/2 only and Google's endpoints take it, so
// both go over one long-lived HTTP/2 session per origin, which APNs asks providers to keep open;
// webhooks, which may be HTTP/1.1 servers of any kind, get one request each.
import { connect, constants, type ClientHttp2Session, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** TLS settings of a provider's connections. */
export interface TlsOptions {
  /** PEM certificate authorities trusted (Node's bundled ones when absent). */
  ca?: string | string[];
  /** Client certificate and key (APNs certificate-based authentication). */
  cert?: string;
  key?: string;
}

/** Most bytes of a response body read: providers answer with short JSON. */
const MAX_BODY = 64 * 1024;

export class Http2Client {
  private readonly sessions = new Map<string, ClientHttp2Session>();

  constructor(
    private readonly tls: TlsOptions,
    private readonly timeoutMs: number,
  ) {}

  /** Sends one request; rejects on a connection failure, a timeout or `signal` aborting it. */
  request(url: URL, headers: OutgoingHttpHeaders, body: string, signal?: AbortSignal): Promise<HttpResponse> {
    const session = this.sessionFor(url.origin);
    return new Promise((resolve, reject) => {
      const stream = session.request({ [constants.HTTP2_HEADER_METHOD]: 'POST', [constants.HTTP2_HEADER_PATH]: url.pathname + url.search, ...headers }, { signal });
      const timer = setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), this.timeoutMs);
      let responseHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (received) => (responseHeaders = received as IncomingHttpHeaders));
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY) chunks.push(chunk);
      });
      stream.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      stream.on('close', () => {
        clearTimeout(timer);
        const status = Number(responseHeaders[constants.HTTP2_HEADER_STATUS]);
        if (!status) reject(new Error(signal?.aborted ? 'cancelled' : `no response within ${this.timeoutMs} ms or stream reset`));
        else resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') });
      });
      stream.end(body);
    });
  }

  close(): void {
    for (const session of this.sessions.values()) session.close();
    this.sessions.clear();
  }

  private sessionFor(origin: string): ClientHttp2Session {
    const open = this.sessions.get(origin);
    if (open && !open.closed && !open.destroyed) return open;
    const options: SecureClientSessionOptions = { ...this.tls };
    const session = connect(origin, options);
    const forget = () => {
      if (this.sessions.get(origin) === session) this.sessions.delete(origin);
    };
    // A failed connection fails the requests on it (they reject and are retried); the next
    // request opens a new session.
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.unref();
    this.sessions.set(origin, session);
    return session;
  }
}

/** One HTTP/1.1 POST (http: or https:), for webhooks. */
export function postHttp1(url: URL, headers: Record<string, string>, body: string, tls: TlsOptions, timeoutMs: number, signal?: AbortSignal): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, ca: tls.ca, signal, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY) chunks.push(chunk);
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no response within ${timeoutMs} ms`)));
    request.on('error', (error) => reject(signal?.aborted ? new Error('cancelled') : error));
    request.end(body);
  });
}
