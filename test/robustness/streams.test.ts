// Bounded stream transports: connections in total and per source IP, a deadline for a whole
// message (slowloris), and a connection that breaks framing answered and then destroyed.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

/** A WebSocket connection made by hand (subprotocol sip), so that a frame can be sent in pieces. */
class RawWebSocket {
  readonly texts: string[] = [];
  closed = false;
  private unread = Buffer.alloc(0);

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.readFrames(chunk));
    socket.on('error', () => {});
    socket.once('close', () => (this.closed = true));
  }

  static open(port: number): Promise<RawWebSocket> {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.write(
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n',
    );
    return new Promise((resolve, reject) => {
      let head = '';
      const onData = (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        if (!head.startsWith('HTTP/1.1 101')) reject(new Error(`upgrade refused: ${head}`));
        else resolve(new RawWebSocket(socket));
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed before the upgrade')));
    });
  }

  /** A text frame as a client sends it: masked, here with a zero key, so the payload reads as it is. */
  static frame(text: string): Buffer {
    const payload = Buffer.from(text);
    assert.ok(payload.length < 65536);
    const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    return Buffer.concat([head, Buffer.alloc(4), payload]);
  }

  /** An OPTIONS in a frame, and how to find its answer. */
  static options(): { frame: Buffer; answered: (ws: RawWebSocket) => SipMessage | undefined } {
    const message = request('OPTIONS', 'sip:localhost', 0);
    const branch = `z9hG4bK${randomToken(12)}`;
    message.set('via', `SIP/2.0/WS ${randomToken(8)}.invalid;branch=${branch}`);
    const answered = (ws: RawWebSocket) => ws.texts.map((text) => lenient(Buffer.from(text))).find((response) => response?.via.branch === branch);
    return { frame: RawWebSocket.frame(message.toString()), answered };
  }

  closedByParley(): Promise<boolean> {
    return eventually(() => this.closed, 'Parley to close the WebSocket connection', 5000);
  }

  /** Server frames are unmasked; Parley sends each SIP message in one text frame. */
  private readFrames(chunk: Buffer): void {
    this.unread = Buffer.concat([this.unread, chunk]);
    for (;;) {
      if (this.unread.length < 2) return;
      const short = this.unread[1]! & 0x7f;
      const [length, start] = short === 126 ? [this.unread.length >= 4 ? this.unread.readUInt16BE(2) : Infinity, 4] : [short, 2];
      if (this.unread.length < start + length) return;
      this.texts.push(this.unread.subarray(start, start + length).toString());
      this.unread = this.unread.subarray(start + length);
    }
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

  test('a source holding max_pending_connections_per_ip connections without a whole message (slowloris) has a further one closed at once; one that carried a message frees its place', async () => {
    const s = await server({ max_pending_connections_per_ip: 2, exempt_sources: [] });
    const slow = [await RawStream.open(s.tcp.port), await RawStream.open(s.tcp.port)];
    slow[0]!.socket.write('OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/TCP ');

    const extra = await RawStream.open(s.tcp.port);
    await extra.closedByParley();
    assert.equal(s.server.transports.stats.refused.pending_connections_per_ip, 1);
    const [logged] = refusals(s, 'pending_connections_per_ip');
    assert.equal(logged?.host, '127.0.0.1');
    const metrics = (await scrape(s)).text;
    assert.equal(sample(metrics, 'parley_sip_refused_total{reason="pending_connections_per_ip"}'), 1);

    assert.equal((await slow[1]!.options()).status, 200, 'a pending connection that sends a whole message is served');
    const user = await RawStream.open(s.tcp.port);
    assert.equal((await user.options()).status, 200, 'the place a served connection left is taken again');
    assert.equal((await user.options()).status, 200);
    assert.equal(s.server.transports.stats.refused.pending_connections_per_ip, 1);
    for (const stream of [...slow, user]) stream.socket.destroy();
  });

  test('a WebSocket counts as pending until its first SIP message, not its upgrade', async () => {
    const s = await server({ max_pending_connections_per_ip: 1, exempt_sources: [] });
    const first = await RawWebSocket.open(s.ws!.port);
    await assert.rejects(RawWebSocket.open(s.ws!.port), 'a second pending WebSocket from the source was upgraded');
    assert.equal(s.server.transports.stats.refused.pending_connections_per_ip, 1);
    const { frame, answered } = RawWebSocket.options();
    first.socket.write(frame);
    assert.equal((await eventually(() => answered(first), 'an answer to OPTIONS', 5000)).status, 200);
    const second = await RawWebSocket.open(s.ws!.port);
    const options = RawWebSocket.options();
    second.socket.write(options.frame);
    assert.equal((await eventually(() => options.answered(second), 'an answer to OPTIONS', 5000)).status, 200);
    first.socket.destroy();
    second.socket.destroy();
  });

  test('loopback is exempt from max_connections_per_ip by default, not from max_connections', async () => {
    const s = await server({ max_connections_per_ip: 1, max_connections: 2 });
    const streams = [await RawStream.open(s.tcp.port), await RawStream.open(s.tcp.port)];
    for (const stream of streams) assert.equal((await stream.options()).status, 200);
    const extra = await RawStream.open(s.tcp.port);
    await extra.closedByParley();
    assert.deepEqual(s.server.transports.stats.refused, { rate: 0, connections: 1, connections_per_ip: 0, pending_connections_per_ip: 0, message_timeout: 0, send_buffer: 0 });
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

  test('a WebSocket frame dribbled in is cut off after message_timeout; a frame in pieces within it is served, and silence between frames is kept', async () => {
    const s = await server({ message_timeout: 1 });
    const slow = await RawWebSocket.open(s.ws!.port);
    const { frame } = RawWebSocket.options();
    slow.socket.write(frame.subarray(0, 10));
    let sent = 10;
    const dribble = setInterval(() => slow.socket.write(frame.subarray(sent, ++sent)), 100);
    try {
      await slow.closedByParley();
    } finally {
      clearInterval(dribble);
    }
    assert.ok(sent < frame.length, 'the frame was never complete');
    assert.equal(s.server.transports.stats.refused.message_timeout, 1);
    assert.equal(refusals(s, 'message_timeout').length, 1);

    const patient = await RawWebSocket.open(s.ws!.port);
    const first = RawWebSocket.options();
    patient.socket.write(first.frame.subarray(0, 20));
    await sleep(500);
    patient.socket.write(first.frame.subarray(20));
    assert.equal((await eventually(() => first.answered(patient), 'the answer to a frame sent in two pieces')).status, 200);
    await sleep(1500);
    const second = RawWebSocket.options();
    patient.socket.write(second.frame);
    assert.equal((await eventually(() => second.answered(patient), 'the answer after a silence')).status, 200);
    assert.equal(s.server.transports.stats.refused.message_timeout, 1);
    assert.equal(patient.closed, false);
    patient.socket.destroy();
  });

  test('a peer that never reads what Parley writes loses its connection past max_send_buffer, over TCP and WebSocket, counted and logged once; others go on', async () => {
    const s = await server({ max_send_buffer: 65536 });
    // Requests whose answers are large (they repeat every Via): Parley's answers pile up in the kernel's buffers, then in its own.
    const padding = 'x'.repeat(7800);
    const lowerVias = Array.from({ length: 6 }, (_, i) => `SIP/2.0/UDP 192.0.2.${i + 1}:5060;branch=z9hG4bK${randomToken(12)};pad=${padding}`);
    const largeAnswered = (topVia: string): SipMessage => {
      const message = request('OPTIONS', 'sip:localhost', 0);
      message.set('via', `${topVia};branch=z9hG4bK${randomToken(12)}`);
      for (const via of lowerVias) message.add('via', via);
      return message;
    };
    const untilGivenUp = async (refusedBefore: number, socket: Socket, send: () => void) => {
      socket.pause();
      await eventually(() => {
        if (s.server.transports.stats.refused.send_buffer > refusedBefore) return true;
        if (!socket.destroyed) for (let i = 0; i < 50; i++) send();
        return false;
      }, 'Parley to give up on the peer that does not read', 30_000);
      await eventually(() => s.server.transports.connectionCount === 0, 'Parley to destroy the connection');
    };

    const deaf = await RawStream.open(s.tcp.port);
    await untilGivenUp(0, deaf.socket, () => deaf.socket.write(largeAnswered(`SIP/2.0/TCP 127.0.0.1:${deaf.socket.localPort}`).toBuffer()));
    assert.equal(s.server.transports.stats.refused.send_buffer, 1);
    const [logged] = refusals(s, 'send_buffer');
    assert.equal(logged?.host, '127.0.0.1');
    assert.equal(logged?.level, 'warn');
    assert.equal(sample((await scrape(s)).text, 'parley_sip_refused_total{reason="send_buffer"}'), 1);
    const other = await RawStream.open(s.tcp.port);
    assert.equal((await other.options()).status, 200, 'another connection is served');
    other.socket.destroy();
    deaf.socket.destroy();

    const deafWs = await RawWebSocket.open(s.ws!.port);
    await untilGivenUp(1, deafWs.socket, () => deafWs.socket.write(RawWebSocket.frame(largeAnswered(`SIP/2.0/WS ${randomToken(8)}.invalid`).toString())));
    assert.equal(s.server.transports.stats.refused.send_buffer, 2);
    deafWs.socket.destroy();
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

  test('a TLS connection stops counting against max_pending_connections_per_ip at its first message', async () => {
    const certDir = mkdtempSync(join(tmpdir(), 'parley-cert-'));
    dirs.push(certDir);
    await promisify(execFile)(process.execPath, [join(ROOT, 'bin', 'parley.js'), 'cert', '--out', certDir, '--host', 'localhost'], { cwd: ROOT });
    const s = await server({ max_pending_connections_per_ip: 1, exempt_sources: [] }, {
      listen: [
        { proto: 'udp', host: '127.0.0.1', port: 0 },
        { proto: 'tls', host: '127.0.0.1', port: 0 },
      ],
      tls: { cert: join(certDir, 'cert.pem'), key: join(certDir, 'key.pem') },
    });
    const tls = { host: 'localhost', port: s.server.transports.bound.find((listener) => listener.proto === 'tls')!.port };
    const ca = readFileSync(join(certDir, 'cert.pem'));
    const first = await StreamUA.connect({ proto: 'tls', user: 'alice', server: tls, ca });
    assert.equal((await first.send(first.build('OPTIONS', 'sip:localhost'))).status, 200);
    const second = await StreamUA.connect({ proto: 'tls', user: 'bob', server: tls, ca });
    assert.equal((await second.send(second.build('OPTIONS', 'sip:localhost'))).status, 200);
    assert.equal(s.server.transports.stats.refused.pending_connections_per_ip, 0);
    first.close();
    second.close();
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
