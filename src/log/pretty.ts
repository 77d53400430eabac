// Log events as a person at a terminal reads them: `HH:MM:SS.mmm LEVEL module: message key=value...`.
// pino has already serialized (and redacted) each event when it reaches the destination, so this
// only rearranges the JSON line: no secret that the JSON format hides can show here.
import type { DestinationStream } from 'pino';

/** Fields every event carries, shown in the line's head or left out as noise at a terminal. */
const HEAD_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'module', 'msg']);

function clockTime(iso: unknown): string {
  const date = typeof iso === 'string' ? new Date(iso) : new Date();
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** A value as written after `key=`: bare when it reads unambiguously, JSON otherwise. */
function formatValue(value: unknown): string {
  if (typeof value === 'string' && /^[^\s"=]+$/.test(value)) return value;
  return JSON.stringify(value);
}

interface SerializedError {
  message?: string;
  stack?: string;
}

/** One JSON log line as a readable line; an error's stack follows on lines of its own, indented. */
export function formatLogLine(json: string): string {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = String(event.level).toUpperCase().padEnd(5);
  const module = typeof event.module === 'string' ? `${event.module}: ` : '';
  const fields = Object.entries(event)
    .filter(([key]) => !HEAD_FIELDS.has(key))
    .map(([key, value]) => {
      const error = key === 'err' && typeof value === 'object' && value !== null ? (value as SerializedError) : undefined;
      return `${key}=${formatValue(error?.message ?? value)}`;
    });
  const head = [`${clockTime(event.time)} ${level} ${module}${String(event.msg ?? '')}`, ...fields].join(' ');
  const stack = (event.err as SerializedError | undefined)?.stack;
  return typeof stack === 'string' ? `${head}\n${stack.replace(/^/gm, '    ')}\n` : `${head}\n`;
}

/** A pino destination writing readable lines to `out` (a terminal, usually). */
export function prettyDestination(out: { write(text: string): unknown }): DestinationStream {
  return { write: (line: string) => void out.write(formatLogLine(line)) };
}
