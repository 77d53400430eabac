import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogFormat } from '../config/schema.js';
import { prettyDestination } from './pretty.js';

export type { Logger };

// Field names that hold secrets wherever they appear: at the top of a log event or one object down
// (pino's redaction has no "any depth" wildcard, and deeper paths cost on every event).
const SECRET_FIELDS = [
  'password',
  'passwd',
  'secret',
  'token',
  'authorization',
  '["proxy-authorization"]',
  'proxyAuthorization',
  'ha1',
  'ha1Md5',
  'ha1Sha256',
  'ha1_md5',
  'ha1_sha256',
];

const REDACTED_PATHS = SECRET_FIELDS.flatMap((field) => {
  const nested = field.startsWith('[') ? `*${field}` : `*.${field}`;
  return [field, nested];
});

function isTerminal(stream: unknown): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/**
 * A logger writing to `destination` (standard output by default) one JSON line per event, or with
 * `format` pretty one readable line; auto is pretty when the destination is a terminal.
 */
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  const options = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names rather than pino's numbers, so the lines read without a lookup table.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const out = destination ?? process.stdout;
  const pretty = format === 'pretty' || (format === 'auto' && isTerminal(out));
  if (pretty) return pino(options, prettyDestination(out));
  // Without a destination pino writes to standard output itself, faster than through process.stdout.
  return destination ? pino(options, destination) : pino(options);
}
