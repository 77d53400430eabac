// Runs a real Prosody (the Debian package) for the XMPP tests: the configuration is
// test/fixtures/prosody/prosody.cfg.lua filled in, data, pid and log live in a temporary directory,
// c2s and component ports are free loopback ports. The process is spawned directly in the
// foreground, stopped by its pid, and killed by pid if the test process exits first.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ForegroundServer, fillTemplate, freeTcpPort, tempDir } from './process.js';

const TEMPLATE = new URL('../fixtures/prosody/prosody.cfg.lua', import.meta.url);
const HOST = '127.0.0.1';

export interface ProsodyOptions {
  domain?: string;
  componentDomain?: string;
  componentSecret?: string;
  /** Another configuration template (default test/fixtures/prosody/prosody.cfg.lua). */
  template?: URL;
  /** Further {{PLACEHOLDERS}} of the template. */
  values?: Record<string, string | number>;
  /** Runs before Prosody starts, with its directory (certificates go there). */
  setup?: (dir: string) => void;
}

export class Prosody extends ForegroundServer {
  readonly domain: string;
  readonly componentDomain: string;
  readonly componentSecret: string;
  readonly config: string;

  private constructor(
    options: ProsodyOptions,
    readonly dir: string,
    readonly c2sPort: number,
    readonly componentPort: number,
  ) {
    const config = join(dir, 'prosody.cfg.lua');
    super('prosody', ['prosody', '--config', config, '-F'], [c2sPort, componentPort]);
    this.config = config;
    this.domain = options.domain ?? 'xmpp.test';
    this.componentDomain = options.componentDomain ?? `sip.${this.domain}`;
    this.componentSecret = options.componentSecret ?? 'component-secret-for-tests';
    const values: Record<string, string | number> = {
      DIR: dir,
      LOG_LEVEL: process.env.PROSODY_TEST_LOG ?? 'info',
      C2S_PORT: c2sPort,
      COMPONENT_PORT: componentPort,
      DOMAIN: this.domain,
      COMPONENT_DOMAIN: this.componentDomain,
      COMPONENT_SECRET: this.componentSecret,
      ...options.values,
    };
    options.setup?.(dir);
    writeFileSync(config, fillTemplate(options.template ?? TEMPLATE, values));
  }

  /** Starts a Prosody and resolves once its c2s and component ports accept connections. */
  static async start(options: ProsodyOptions = {}): Promise<Prosody> {
    const prosody = new Prosody(options, tempDir('parley-prosody-'), await freeTcpPort(), await freeTcpPort());
    await prosody.start();
    return prosody;
  }

  get service(): string {
    return `xmpp://${HOST}:${this.c2sPort}`;
  }

  /** Creates an account (prosodyctl writes it to the data directory). */
  async register(user: string, password: string): Promise<void> {
    await promisify(execFile)('prosodyctl', ['--config', this.config, 'register', user, this.domain, password]);
  }

  override log(): string {
    try {
      return readFileSync(join(this.dir, 'prosody.log'), 'utf8');
    } catch {
      return '';
    }
  }
}
