// A small SIP user agent for tests: registers, sends MESSAGEs, answers what it receives.
// Deliberately built on Parley's message model but not on its stack, so a stack bug cannot hide itself.
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { after } from 'node:test';
import { SipMessage, SipParseError, parseMessage, createResponse, randomToken, type Header } from '../../src/sip/index.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';
import { parseDigest } from '../../src/registrar/index.js';
import { eventually } from './eventually.js';

export interface UaOptions {
  proto?: 'udp' | 'tcp';
  user: string;
  domain?: string;
  server: { host: string; port: number };
  password?: string;
}

export class TestUA {
  readonly received: SipMessage[] = [];
  /** Retransmissions of requests received before, in the order they came. */
  readonly retransmitted: SipMessage[] = [];
  /** Status this UA answers incoming requests with; null: it records them and never answers (a device gone unresponsive). */
  answer: number | null = 200;
  private readonly waiters = new Map<string, (m: SipMessage) => void>();
  private readonly requestWaiters: Array<{ test: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }> = [];
  private udp?: UdpSocket;
  private tcp?: Socket;
  private cseq = 1;
  readonly callId = `${randomToken(12)}@test`;
  localPort = 0;
  private closed = false;
  private readonly seenBranches = new Set<string>();

  private constructor(readonly options: Required<Omit<UaOptions, 'password'>> & { password?: string }) {}

  static async create(options: UaOptions): Promise<TestUA> {
    const ua = new TestUA({ proto: 'udp', domain: 'localhost', ...options });
    await ua.open();
    return ua;
  }

  get aor(): string {
    return `sip:${this.options.user}@${this.options.domain}`;
  }

  get contact(): string {
    return `sip:${this.options.user}@127.0.0.1:${this.localPort}${this.options.proto === 'tcp' ? ';transport=tcp' : ''}`;
  }

  private async open(): Promise<void> {
    if (this.options.proto === 'udp') {
      this.udp = createSocket('udp4');
      this.udp.on('message', (data) => {
        let message: SipMessage;
        try {
          message = lenientParse(data);
        } catch {
          return; // a request that does not parse is dropped, as a phone would
        }
        this.onData(message);
      });
      await new Promise<void>((resolve) => this.udp!.bind(0, '127.0.0.1', resolve));
      this.localPort = this.udp.address().port;
    } else {
      const framer = new StreamFramer(1 << 20);
      this.tcp = connect(this.options.server.port, this.options.server.host);
      this.tcp.on('data', (chunk) => {
        for (const r of framer.push(chunk)) {
          if ('message' in r) this.onData(r.message);
          else if ('error' in r && r.error.partial && !r.error.partial.isRequest) this.onData(r.error.partial);
        }
      });
      await new Promise<void>((resolve) => this.tcp!.once('connect', () => resolve()));
      this.localPort = this.tcp.localPort!;
    }
  }

  /** Sends raw bytes to the server (for malformed-input tests). */
  sendRaw(data: Buffer | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.closed) return;
    if (this.udp) this.udp.send(bytes, this.options.server.port, this.options.server.host);
    else this.tcp!.write(bytes);
  }

  private onData(message: SipMessage): void {
    if (message.isRequest) {
      // A UAS transaction absorbs retransmissions: answer again, record once.
      const key = `${message.via.branch}|${message.method}`;
      if (this.seenBranches.has(key)) {
        this.retransmitted.push(message);
        this.respond(message);
        return;
      }
      this.seenBranches.add(key);
      this.received.push(message);
      const waiter = this.requestWaiters.findIndex((w) => w.test(message));
      this.respond(message);
      if (waiter >= 0) this.requestWaiters.splice(waiter, 1)[0]!.resolve(message);
      return;
    }
    if (message.status < 200) return;
    const key = `${message.via.branch}`;
    this.waiters.get(key)?.(message);
    this.waiters.delete(key);
  }

  private respond(request: SipMessage): void {
    if (request.method !== 'ACK' && this.answer !== null) this.sendRaw(createResponse(request, this.answer).toBuffer());
  }

  /** Resolves with the next incoming request matching `test` (or the one already received). */
  waitForRequest(test: (m: SipMessage) => boolean = () => true, timeoutMs = 5000): Promise<SipMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.options.user}: no matching request within ${timeoutMs} ms`)), timeoutMs);
      this.requestWaiters.push({
        test,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  build(method: string, uri: string, extra: { to?: string; headers?: Header[]; body?: string | Buffer; contentType?: string } = {}): SipMessage {
    const branch = `z9hG4bK${randomToken(12)}`;
    const headers: Header[] = [
      { name: 'via', value: `SIP/2.0/${this.options.proto.toUpperCase()} 127.0.0.1:${this.localPort};branch=${branch};rport` },
      { name: 'max-forwards', value: '70' },
      { name: 'from', value: `<${this.aor}>;tag=${randomToken()}` },
      { name: 'to', value: extra.to ?? `<${uri}>` },
      { name: 'call-id', value: method === 'REGISTER' ? this.callId : `${randomToken(12)}@test` },
      { name: 'cseq', value: `${this.cseq++} ${method}` },
      ...(extra.headers ?? []),
    ];
    if (extra.body !== undefined) headers.push({ name: 'content-type', value: extra.contentType ?? 'text/plain' });
    return new SipMessage({ method, uri, headers, body: extra.body === undefined ? undefined : Buffer.from(extra.body) });
  }

  /** Sends a request and resolves with its final response, retransmitting over UDP like a real UA. */
  send(request: SipMessage, timeoutMs = 10000): Promise<SipMessage> {
    const branch = request.via.branch!;
    const bytes = request.toBuffer();
    return new Promise((resolve, reject) => {
      let interval = 500;
      let retransmit: NodeJS.Timeout | undefined;
      const again = () => {
        retransmit = setTimeout(() => {
          this.sendRaw(bytes);
          interval = Math.min(interval * 2, 4000);
          again();
        }, interval);
      };
      if (this.udp) again();
      const timer = setTimeout(() => {
        clearTimeout(retransmit);
        this.waiters.delete(branch);
        reject(new Error(`${request.method} to ${request.uri}: no final response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(branch, (response) => {
        clearTimeout(timer);
        clearTimeout(retransmit);
        resolve(response);
      });
      this.sendRaw(bytes);
    });
  }

  /** Sends a request, answering one digest challenge when the UA has a password. */
  async sendAuthenticated(make: () => SipMessage): Promise<SipMessage> {
    const first = await this.send(make());
    if ((first.status !== 401 && first.status !== 407) || !this.options.password) return first;
    const challengeName = first.status === 401 ? 'www-authenticate' : 'proxy-authenticate';
    const challenge = first.getAll(challengeName)[0]!;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="?([^",]+)"?/g)].map((m) => [m[1]!, m[2]!]));
    const algorithm = params.algorithm ?? 'MD5';
    const h = (s: string) => createHash(algorithm === 'MD5' ? 'md5' : 'sha256').update(s).digest('hex');
    const retry = make();
    const ha1 = h(`${this.options.user}:${params.realm}:${this.options.password}`);
    const ha2 = h(`${retry.method}:${retry.uri}`);
    const cnonce = randomToken(8);
    const response = h(`${ha1}:${params.nonce}:00000001:${cnonce}:auth:${ha2}`);
    const value = `Digest username="${this.options.user}", realm="${params.realm}", nonce="${params.nonce}", uri="${retry.uri}", response="${response}", algorithm=${algorithm}, qop=auth, nc=00000001, cnonce="${cnonce}"`;
    if (!parseDigest(value)) throw new Error('test UA built an unparseable Authorization');
    retry.add(first.status === 401 ? 'authorization' : 'proxy-authorization', value);
    return this.send(retry);
  }

  register(expires = 3600): Promise<SipMessage> {
    return this.sendAuthenticated(() =>
      this.build('REGISTER', `sip:${this.options.domain}`, {
        to: `<${this.aor}>`,
        headers: [
          { name: 'contact', value: `<${this.contact}>` },
          { name: 'expires', value: String(expires) },
        ],
      }),
    );
  }

  message(to: string, body: string | Buffer, headers: Header[] = [], contentType?: string): Promise<SipMessage> {
    return this.sendAuthenticated(() => this.build('MESSAGE', to, { body, headers, contentType }));
  }

  close(): void {
    this.closed = true;
    this.udp?.close();
    this.tcp?.destroy();
  }
}

/** Responses Parley builds from a malformed request repeat its bad headers: read them anyway. */
function lenientParse(data: Buffer): SipMessage {
  try {
    return parseMessage(data);
  } catch (error) {
    if (error instanceof SipParseError && error.partial && !error.partial.isRequest) return error.partial;
    throw error;
  }
}

/** Registered test users by name, each created and registered on first use. */
export class UserPool {
  private readonly agents = new Map<string, TestUA>();

  constructor(private readonly server: () => { host: string; port: number }) {}

  async get(name: string): Promise<TestUA> {
    let agent = this.agents.get(name);
    if (!agent) {
      agent = await TestUA.create({ user: name, server: this.server() });
      this.agents.set(name, agent);
      const registered = await agent.register();
      if (registered.status !== 200) throw new Error(`${name} could not register: ${registered.status} ${registered.reason}`);
    }
    return agent;
  }

  closeAll(): void {
    for (const agent of this.agents.values()) agent.close();
    this.agents.clear();
  }
}

/** A maker of UDP agents for a test file, every one of them closed after it. */
export function udpAgents(): (user: string, server: { host: string; port: number }) => Promise<TestUA> {
  const agents: TestUA[] = [];
  after(() => {
    for (const agent of agents) agent.close();
  });
  return async (user, server) => {
    const agent = await TestUA.create({ user, proto: 'udp', server });
    agents.push(agent);
    return agent;
  };
}

/** The MESSAGEs `ua` has received so far that pass `test`, in the order they came. */
export function sipMessagesTo(ua: TestUA, test: (request: SipMessage) => boolean = () => true): SipMessage[] {
  return ua.received.filter((request) => request.method === 'MESSAGE' && test(request));
}

/** Resolves with the first MESSAGE `ua` received (before or later) that passes `test`. */
export function waitForSipMessage(ua: TestUA, test: (request: SipMessage) => boolean, what: string, timeoutMs = 10_000): Promise<SipMessage> {
  return eventually(() => sipMessagesTo(ua, test)[0], what, timeoutMs);
}

/** Resolves with every MESSAGE `ua` received that passes `test`, once there are at least `count`. */
export function waitForSipMessages(ua: TestUA, count: number, test: (request: SipMessage) => boolean, timeoutMs = 10_000): Promise<SipMessage[]> {
  return eventually(() => {
    const found = sipMessagesTo(ua, test);
    return found.length >= count ? found : undefined;
  }, `${count} MESSAGEs for ${ua.aor}`, timeoutMs);
}

/** A user of localhost on a TCP agent to `server`, registered (200). */
export async function registeredTcpUser(server: { host: string; port: number }, user: string): Promise<TestUA> {
  const ua = await TestUA.create({ proto: 'tcp', user, server });
  const response = await ua.register();
  assert.equal(response.status, 200, `REGISTER of ${user}: ${response.status} ${response.reason}`);
  return ua;
}
