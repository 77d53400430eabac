// Bounded stream transports: connections in total and per source IP, a deadline for a whole
// message (slowloris), and a connection that breaks framing answered and then destroyed.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { type SipMessage, randomToken } from '../../src/sip/index.js';
import { startServer, type ConfigPatch, type TestServer } from '../support/server.js';
import { StreamUA } from '../support/stream-ua.js';
import { eventually } from '../support/eventually.js';
import { sample, scrape } from '../admin/client.js';
import { StreamSplitter, lenient, request, sleep } from './wire.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');
const servers: TestServer[] = [];
const dirs: string[] = [];
after(async () => {
  for (const server of servers) await server.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function server(sip: ConfigPatch['sip'], patch: ConfigPatch = {}): Promise<TestServer> {
  const started = await startServer({ sip, presence: { enabled: false }, ...patch });
  servers.push(started);
  return started;
}

/** A raw TCP connection that reads what Parley writes and notes when Parley closes it; it never closes its own side. */
class RawStream {
  readonly responses: SipMessage[] = [];
  closed = false;
  private readonly splitter = new StreamSplitter();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of this.splitter.push(chunk).messages) {
        const message = lenient(bytes);
        if (message) this.responses.push(message);
      }
    });
    // Writing to a connection Parley destroyed fails: expected here.
    socket.on('error', () => {});
    // Half-open allowed, Parley's FIN shows as 'end' alone.
    socket.once('end', () => (this.closed = true));
    socket.once('close', () => (this.closed = true));
  }

  static open(port: number): Promise<RawStream> {
    // Half-open allowed: a hostile peer goes on sending after Parley's FIN.
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(new RawStream(socket)));
      socket.once('error', reject);
    });
  }

  closedByParley(): Promise<boolean> {
    return eventually(() => this.closed, 'Parley to close the connection', 5000);
  }

  /** Sends an OPTIONS and resolves with its response. */
  async options(): Promise<SipMessage> {
    const message = request('OPTIONS', 'sip:localhost', this.socket.localPort!);
    const branch = `z9hG4bK${randomToken(12)}`;
    message.set('via', `SIP/2.0/TCP 127.0.0.1:${this.socket.localPort};branch=${branch}`);
    this.socket.write(message.toBuffer());
    return eventually(() => this.responses.find((response) => response.via.branch === branch), 'a response to OPTIONS', 5000);
  }
}

function refusals(s: TestServer, reason: string): Array<Record<string, unknown>> {
  return s.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.msg === 'SIP traffic refused' && entry.reason === reason);
}

describe('stream connection limits', () => {
  test('a TCP connection over max_connections_per_ip is closed at once; the others serve, and a freed place is taken again', async () => {
    const s = await server({ max_connections_per_ip: 3, exempt_sources: [] });
    const admitted = [await RawStream.open(s.tcp.port), await RawStream.open(s.tcp.port), await RawStream.open(s.tcp.port)];
    for (const stream of admitted) assert.equal((await stream.options()).status, 200);

    const extra = await RawStream.open(s.tcp.port);
    await extra.closedByParley();
    assert.equal(s.server.transports.stats.refused.connections_per_ip, 1);
    const [logged] = refusals(s, 'connections_per_ip');
    assert.equal(logged?.host, '127.0.0.1');
    assert.equal(logged?.level, 'warn');
    const metrics = (await scrape(s)).text;
    assert.equal(sample(metrics, 'parley_sip_refused_total{reason="connections_per_ip"}'), 1);
    assert.equal(sample(metrics, 'parley_sip_connections'), 3);

    assert.equal((await admitted[0]!.options()).status, 200, 'an admitted connection no longer serves');
    admitted[2]!.socket.destroy();
    await eventually(() => s.server.transports.connectionCount === 2, 'the closed connection to be forgotten');
    const replacement = await RawStream.open(s.tcp.port);
    assert.equal((await replacement.options()).status, 200);
    for (const stream of [...admitted, replacement]) stream.socket.destroy();
  });

  test('a WebSocket connection over max_connections_per_ip is refused', async () => {
    const s = await server({ max_connections_per_ip: 2, exempt_sources: [] });
    const ws = { host: s.ws!.host, port: s.ws!.port };
    const first = await StreamUA.connect({ proto: 'ws', user: 'alice', server: ws });
    const second = await StreamUA.connect({ proto: 'ws', user: 'bob', server: ws });
    await assert.rejects(StreamUA.connect({ proto: 'ws', user: 'carol', server: ws }));
    assert.equal(s.server.transports.stats.refused.connections_per_ip, 1);
    assert.equal((await second.register()).status, 200, 'an admitted WebSocket no longer serves');
    first.close();
    second.close();
  });

  test('loopback is exempt from max_connections_per_ip by default, not from max_connections', async () => {
    const s = await server({ max_connections_per_ip: 1, max_connections: 2 });
    const streams = [await RawStream.open(s.tcp.port), await RawStream.open(s.tcp.port)];
    for (const stream of streams) assert.equal((await stream.options()).status, 200);
    const extra = await RawStream.open(s.tcp.port);
    await extra.closedByParley();
    assert.deepEqual(s.server.transports.stats.refused, { rate: 0, connections: 1, connections_per_ip: 0, message_timeout: 0 });
    for (const stream of streams) stream.socket.destroy();
  });
});

describe('stream messages', () => {
  test('a connection whose message is incomplete after message_timeout is closed (slowloris); a message in pieces within it is served', async () => {
    const s = await server({ message_timeout: 1 });
    const slow = await RawStream.open(s.tcp.port);
    slow.socket.write('OPTIONS sip:localhost SIP/2.0\r\n');
    const dribble = setInterval(() => slow.socket.write('X'), 100);
    try {
      await slow.closedByParley();
    } finally {
      clearInterval(dribble);
    }
    assert.equal(s.server.transports.stats.refused.message_timeout, 1);
    assert.equal(refusals(s, 'message_timeout').length, 1);

    const patient = await RawStream.open(s.tcp.port);
    assert.equal((await patient.options()).status, 200);
    const message = request('OPTIONS', 'sip:localhost', patient.socket.localPort!);
    const branch = `z9hG4bK${randomToken(12)}`;
    message.set('via', `SIP/2.0/TCP 127.0.0.1:${patient.socket.localPort};branch=${branch}`);
    const bytes = message.toBuffer();
    patient.socket.write(bytes.subarray(0, 20));
    await sleep(500);
    patient.socket.write(bytes.subarray(20));
    const response = await eventually(() => patient.responses.find((r) => r.via.branch === branch), 'the answer to a message sent in two pieces');
    assert.equal(response.status, 200);
    // Silence between messages is no incomplete message: the connection stays.
    await sleep(1500);
    assert.equal((await patient.options()).status, 200);
    assert.equal(s.server.transports.stats.refused.message_timeout, 1);
    patient.socket.destroy();
  });

  test('a TLS handshake and a WebSocket upgrade request have message_timeout to complete too', async () => {
    const certDir = mkdtempSync(join(tmpdir(), 'parley-cert-'));
    dirs.push(certDir);
    await promisify(execFile)(process.execPath, [join(ROOT, 'bin', 'parley.js'), 'cert', '--out', certDir, '--host', 'localhost'], { cwd: ROOT });
    const s = await server({ message_timeout: 1 }, {
      listen: [
        { proto: 'udp', host: '127.0.0.1', port: 0 },
        { proto: 'tcp', host: '127.0.0.1', port: 0 },
        { proto: 'tls', host: '127.0.0.1', port: 0 },
        { proto: 'ws', host: '127.0.0.1', port: 0 },
      ],
      tls: { cert: join(certDir, 'cert.pem'), key: join(certDir, 'key.pem') },
    });
    const port = (proto: string) => s.server.transports.bound.find((listener) => listener.proto === proto)!.port;

    const handshake = await RawStream.open(port('tls'));
    handshake.socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a TLS record, and no more
    await handshake.closedByParley();
    assert.equal(s.server.transports.stats.refused.message_timeout, 1);

    const upgrade = await RawStream.open(port('ws'));
    upgrade.socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n');
    const dribble = setInterval(() => upgrade.socket.write('X-Slow: 1\r\n'), 200);
    try {
      await upgrade.closedByParley();
    } finally {
      clearInterval(dribble);
    }
  });

  test('messages over rate_limit on a connection are answered 503 on it, and the connection stays; the rate is per IP over every transport', async () => {
    const s = await server({ rate_limit: 2, rate_window: 60, exempt_sources: [] });
    const stream = await RawStream.open(s.tcp.port);
    const answers = [await stream.options(), await stream.options(), await stream.options()];
    assert.deepEqual(answers.map((response) => response.status), [200, 200, 503]);
    assert.equal(answers[2]!.get('retry-after'), '30');
    assert.equal(stream.closed, false);

    const ws = await StreamUA.connect({ proto: 'ws', user: 'dave', server: { host: s.ws!.host, port: s.ws!.port } });
    const overWebSocket = await ws.send(ws.build('OPTIONS', 'sip:localhost'));
    assert.equal(overWebSocket.status, 503);
    assert.equal(s.server.transports.stats.refused.rate, 2);
    stream.socket.destroy();
    ws.close();
  });

  test('a message that breaks framing is answered 400, then the connection is destroyed, whatever the peer sends after it', async () => {
    const s = await server({});
    const stream = await RawStream.open(s.tcp.port);
    const message = request('OPTIONS', 'sip:localhost', stream.socket.localPort!);
    message.set('via', `SIP/2.0/TCP 127.0.0.1:${stream.socket.localPort};branch=z9hG4bK${randomToken(12)}`);
    stream.socket.write(message.toString().replace(/Content-Length: 0/, 'Content-Length: many'));
    const answer = await eventually(() => stream.responses[0], 'an answer to the message with a bad Content-Length');
    assert.equal(answer.status, 400);
    assert.equal(answer.reason, 'Bad Content-Length');
    // A peer that goes on sending after the error: megabytes that Parley must not keep.
    const junk = Buffer.alloc(1 << 20, 'x');
    for (let i = 0; i < 8 && !stream.closed; i++) stream.socket.write(junk);
    await stream.closedByParley();
    await eventually(() => s.server.transports.connectionCount === 0, 'Parley to destroy its end of the connection');
  });
});
