import { loadConfig } from '../config/index.js';
import { createLogger, reportInternalError, type Logger } from '../log/index.js';
import { CONFIG_OPTION, DB_OPTION, HELP_OPTION, parseCommandLine, printHelp, type Command } from './args.js';

const USAGE = `Usage: parley start [--config FILE] [--listen PROTO:HOST:PORT]... [--domain NAME]...
                    [--db URL] [--log-level LEVEL] [--log-format FORMAT] [--admin-listen HOST:PORT]

Runs the server until SIGTERM or SIGINT, then stops it cleanly (a second signal exits at once).
Options given here replace the configuration file's.

Options:
  -c, --config FILE              configuration file (default: none, the built-in defaults)
  -l, --listen PROTO:HOST:PORT   socket to listen on, e.g. udp:0.0.0.0:5060; repeatable
  -d, --domain NAME              SIP domain served; repeatable
      --db URL                   sqlite:PATH or postgres://USER:PASSWORD@HOST/DATABASE
      --log-level LEVEL          trace, debug, info, warn, error, fatal or silent
      --log-format FORMAT        json, pretty (readable lines) or auto (pretty on a terminal)
      --admin-listen HOST:PORT   management endpoint (RPC, metrics), e.g. 127.0.0.1:0 for any free port
  -h, --help                     show this help
`;

const OPTIONS = {
  ...HELP_OPTION,
  ...CONFIG_OPTION,
  ...DB_OPTION,
  listen: { type: 'string', short: 'l', multiple: true },
  domain: { type: 'string', short: 'd', multiple: true },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'admin-listen': { type: 'string' },
} as const;

/** Resolves once a signal has stopped the server: 0 when it stopped cleanly. */
function stopOnSignal(server: { stop(): Promise<void> }, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal, exiting without waiting');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'stopping');
      server.stop().then(
        () => resolve(0),
        (error: unknown) => {
          logger.error({ err: error }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/**
 * The last resort for errors that escaped every handler. The command installs it, not the server:
 * a library must not decide what the process does with them.
 */
function installLastResortHandlers(logger: Logger): void {
  // A rejection nobody handled failed one operation, which already ended: the others go on.
  process.on('unhandledRejection', (reason) => reportInternalError(logger, 'unhandled rejection', reason));
  // An exception thrown through a callback may have left any state half-changed: exit, so that the
  // service manager (systemd's Restart=on-failure) starts a clean process.
  process.on('uncaughtException', (error) => {
    reportInternalError(logger, 'uncaught exception', error);
    process.exit(1);
  });
}

export const startCommand: Command = {
  name: 'start',
  summary: 'run the server',
  async run(args) {
    const { values } = parseCommandLine({ args, options: OPTIONS }, USAGE);
    if (values.help) return printHelp(USAGE);
    const config = loadConfig(values.config, {
      listen: values.listen,
      domains: values.domain,
      database: values.db,
      logLevel: values['log-level'],
      logFormat: values['log-format'],
      adminListen: values['admin-listen'],
    });
    const logger = createLogger(config.log.level, undefined, config.log.format);
    installLastResortHandlers(logger);
    // Loaded only here so that the other commands do not pay for the whole server.
    const { createServer } = await import('../server/index.js');
    const server = createServer(config, { logger });
    try {
      await server.start();
    } catch (error) {
      logger.fatal({ err: error }, 'start failed');
      process.stderr.write(`parley: cannot start: ${(error as Error).message}\n`);
      return 1;
    }
    return stopOnSignal(server, logger);
  },
};
