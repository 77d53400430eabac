// Errors that escaped every handler, as `parley start`'s last-resort process handlers report them:
// logged and counted by the Parley module they came from, the first frame of their stack in
// src/<module>/ (dist/<module>/ once built). The process owns these handlers, so the counts are
// process-wide.
import { fileURLToPath } from 'node:url';
import type { Logger } from './logger.js';

/** The directory of Parley's modules: src/ in a checkout, dist/ once built. */
const MODULES_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Errors that escaped every handler, by module ('unknown' when no stack frame is Parley's). */
export const internalErrors = new Map<string, number>();

export function moduleOf(error: unknown): string {
  const frames = error instanceof Error && error.stack ? error.stack.split('\n').slice(1) : [];
  for (const frame of frames) {
    const at = frame.indexOf(MODULES_ROOT);
    const module = at >= 0 ? /^([\w-]+)\//.exec(frame.slice(at + MODULES_ROOT.length))?.[1] : undefined;
    if (module) return module;
  }
  return 'unknown';
}

/** Logs an error nobody handled (`what` says how it surfaced) with its module, and counts it. */
export function reportInternalError(logger: Logger, what: string, error: unknown): void {
  const module = moduleOf(error);
  internalErrors.set(module, (internalErrors.get(module) ?? 0) + 1);
  const message = error instanceof Error ? error.message : String(error);
  logger.error({ err: error, module }, `internal error: ${what} in ${module}: ${message}`);
}
