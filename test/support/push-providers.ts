// Local stand-ins for the push providers: an HTTP/2 TLS server (APNs, FCM and Google's token
// endpoint) with a self-signed certificate, and a plain HTTP server for webhooks. Each records the
// requests it gets and answers what the test queues, 200 with an empty body otherwise.
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createSecureServer, type Http2SecureServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** SHA-256 fingerprint of the client certificate the request came with, if any. */
  clientCertificate?: string;
}

export interface StandInAnswer {
  status: number;
  body?: string;
}

/** What the stand-in does with a request: answer it, or hold it unanswered (`held` resolves once its stream closes). */
export type StandInRule = (request: RecordedRequest) => StandInAnswer | 'hold';

export interface StandIn {
  url: string;
  requests: RecordedRequest[];
  /** Resolves with the next request (registered before what sends it). */
  nextRequest(): Promise<RecordedRequest>;
  /** Answers requests whose path starts with `prefix` with the next queued answer (then 200). */
  answer(prefix: string, ...answers: Array<StandInAnswer | 'hold'>): void;
  /** Resolves when a held stream was closed by the client. */
  heldClosed(): Promise<void>;
  close(): Promise<void>;
}

export async function selfSignedCertificate(): Promise<{ cert: string; key: string }> {
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  return { cert: pems.cert, key: pems.private };
}

function recorder() {
  const requests: RecordedRequest[] = [];
  const waiters: Array<(request: RecordedRequest) => void> = [];
  const queues = new Map<string, Array<StandInAnswer | 'hold'>>();
  let heldWaiter: (() => void) | undefined;
  return {
    requests,
    record(request: RecordedRequest): StandInAnswer | 'hold' {
      requests.push(request);
      waiters.shift()?.(request);
      for (const [prefix, queue] of queues) if (request.path.startsWith(prefix) && queue.length) return queue.shift()!;
      return { status: 200 };
    },
    heldStreamClosed: () => heldWaiter?.(),
    api: {
      nextRequest: () => new Promise<RecordedRequest>((resolve) => waiters.push(resolve)),
      answer: (prefix: string, ...answers: Array<StandInAnswer | 'hold'>) => queues.set(prefix, [...(queues.get(prefix) ?? []), ...answers]),
      heldClosed: () => new Promise<void>((resolve) => (heldWaiter = resolve)),
    },
  };
}

/** `clientCa`: ask for a client certificate, and trust those it signed (APNs certificate authentication). */
export async function startHttp2StandIn(tls: { cert: string; key: string }, clientCa?: string): Promise<StandIn> {
  const book = recorder();
  const server: Http2SecureServer = createSecureServer(clientCa ? { ...tls, requestCert: true, rejectUnauthorized: false, ca: clientCa } : tls);
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate();
      const request: RecordedRequest = { method: String(headers[':method']), path: String(headers[':path']), headers: headers as IncomingHttpHeaders, body: Buffer.concat(chunks).toString('utf8') };
      if (peer?.fingerprint256) request.clientCertificate = peer.fingerprint256;
      const answer = book.record(request);
      if (answer === 'hold') {
        stream.on('close', book.heldStreamClosed);
        return;
      }
      stream.respond({ ':status': answer.status, 'content-type': 'application/json' });
      stream.end(answer.body ?? '');
    });
  });
  server.on('session', (session) => session.on('error', () => {}));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    requests: book.requests,
    ...book.api,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function startHttpStandIn(): Promise<StandIn> {
  const book = recorder();
  const server: Server = createHttpServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const answer = book.record({ method: request.method ?? '', path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (answer === 'hold') {
        request.socket.on('close', book.heldStreamClosed);
        return;
      }
      response.writeHead(answer.status, { 'content-type': 'application/json' });
      response.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: book.requests,
    ...book.api,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
