// Runs a real tinyproxy (the Debian package) as the HTTP proxy of the gateway's proxy tests: the
// configuration is test/fixtures/tinyproxy/tinyproxy.conf filled in, on a free loopback port, in
// the foreground (-d), stopped by its pid and killed by pid if the tests exit first.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ForegroundServer, fillTemplate, freeTcpPort, tempDir } from './process.js';

const TEMPLATE = new URL('../fixtures/tinyproxy/tinyproxy.conf', import.meta.url);
/** Debian installs it in sbin, which a non-root PATH may lack. */
const BINARY = existsSync('/usr/sbin/tinyproxy') ? '/usr/sbin/tinyproxy' : 'tinyproxy';

export class Tinyproxy extends ForegroundServer {
  readonly host = '127.0.0.1';

  private constructor(
    readonly dir: string,
    readonly port: number,
    connectPorts: number[],
  ) {
    const config = join(dir, 'tinyproxy.conf');
    super('tinyproxy', [BINARY, '-d', '-c', config], [port]);
    const CONNECT_PORTS = connectPorts.map((p) => `ConnectPort ${p}`).join('\n');
    writeFileSync(config, fillTemplate(TEMPLATE, { PORT: port, DIR: dir, CONNECT_PORTS }));
  }

  /** A proxy that tunnels to any port, or only to `connectPorts` (others get 403). */
  static async start(connectPorts: number[] = []): Promise<Tinyproxy> {
    const proxy = new Tinyproxy(tempDir('parley-tinyproxy-'), await freeTcpPort(), connectPorts);
    await proxy.start();
    return proxy;
  }

  override log(): string {
    try {
      return readFileSync(join(this.dir, 'tinyproxy.log'), 'utf8');
    } catch {
      return '';
    }
  }
}
