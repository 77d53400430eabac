import { pino, type DestinationStream, type Logger } from 'pino';

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

/** A logger writing one JSON line per event to `destination` (standard output by default). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names rather than pino's numbers, so the lines read without a lookup table.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
