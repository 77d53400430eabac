// Starts a real Parley server for a test, on ephemeral loopback ports, with an in-memory logger.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServer, type ParleyPlugin, type ParleyServer } from '../../src/server/index.js';
import { defaultConfig, type Config } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';

export interface TestServer {
  server: ParleyServer;
  config: Config;
  udp: { host: string; port: number };
  tcp: { host: string; port: number };
  ws?: { host: string; port: number };
  logs: string[];
  dir: string;
  stop(): Promise<void>;
}

export type ConfigPatch = { [K in keyof Config]?: Config[K] extends object ? Partial<Config[K]> | Config[K] : Config[K] };

/**
 * A config for tests: loopback, port 0 everywhere (the admin endpoint too), sqlite in a temp dir
 * unless `database` is given, and auth.policy open unless `auth` says otherwise.
 */
export function testConfig(patch: ConfigPatch = {}, dir = mkdtempSync(join(tmpdir(), 'parley-test-'))): Config {
  const defaults = defaultConfig();
  const base = { ...defaults, auth: { ...defaults.auth, policy: 'open' } };
  const config = { ...base } as Record<string, unknown>;
  for (const [key, value] of Object.entries(patch)) {
    const current = (base as Record<string, unknown>)[key];
    config[key] = value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
      ? { ...current, ...value }
      : value;
  }
  const result = config as Config;
  if (!patch.listen) {
    result.listen = [
      { proto: 'udp', host: '127.0.0.1', port: 0 },
      { proto: 'tcp', host: '127.0.0.1', port: 0 },
      { proto: 'ws', host: '127.0.0.1', port: 0 },
    ];
  }
  if (!patch.admin?.listen) result.admin = { ...result.admin, listen: { host: '127.0.0.1', port: 0 } };
  if (!patch.database) result.database = `sqlite:${join(dir, 'parley.db')}`;
  return result;
}

/** `plugins`: the server's own list instead of defaultPlugins(). */
export async function startServer(patch: ConfigPatch = {}, plugins?: ParleyPlugin[]): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-test-'));
  const config = testConfig(patch, dir);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const server = createServer(config, { logger: createLogger(process.env.PARLEY_TEST_LOG ?? 'debug', sink), plugins });
  await server.start();
  const find = (proto: string) => {
    const b = server.transports.bound.find((l) => l.proto === proto);
    return b ? { host: b.host, port: b.port } : undefined;
  };
  return {
    server,
    config,
    udp: find('udp')!,
    tcp: find('tcp')!,
    ws: find('ws'),
    logs,
    dir,
    async stop() {
      await server.stop(1000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
