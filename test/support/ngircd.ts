// Runs a real ngIRCd (the Debian package) for the IRC gateway tests: the configuration is
// test/fixtures/ngircd/ngircd.conf filled in, pid file and include directory live in a temporary
// directory, the port is a free loopback one (kept across stop/start, for restart tests). The
// server runs in the foreground (-n), is stopped by its pid and killed by pid if the tests exit first.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ForegroundServer, fillTemplate, freeTcpPort, tempDir } from './process.js';

const TEMPLATE = new URL('../fixtures/ngircd/ngircd.conf', import.meta.url);
/** Debian installs it in sbin, which a non-root PATH may lack. */
const BINARY = existsSync('/usr/sbin/ngircd') ? '/usr/sbin/ngircd' : 'ngircd';

export interface NgircdOptions {
  /** The server's name (the prefix of its own replies). */
  name?: string;
  /** Server password every client must send (PASS); none by default. */
  password?: string;
}

export class Ngircd extends ForegroundServer {
  readonly host = '127.0.0.1';
  readonly name: string;

  private constructor(
    options: NgircdOptions,
    readonly dir: string,
    readonly port: number,
  ) {
    const config = join(dir, 'ngircd.conf');
    super('ngircd', [BINARY, '-n', '-f', config], [port]);
    this.name = options.name ?? 'irc.test';
    mkdirSync(join(dir, 'conf.d'));
    const values = {
      NAME: this.name,
      PORT: port,
      PASSWORD: options.password ?? '',
      DIR: dir,
      UID: process.getuid?.() ?? 0,
      GID: process.getgid?.() ?? 0,
    };
    writeFileSync(config, fillTemplate(TEMPLATE, values));
  }

  /** Starts an ngIRCd and resolves once its port accepts connections; start() again after stop() restarts it on the same port. */
  static async start(options: NgircdOptions = {}): Promise<Ngircd> {
    const ngircd = new Ngircd(options, tempDir('parley-ngircd-'), await freeTcpPort());
    await ngircd.start();
    return ngircd;
  }
}
