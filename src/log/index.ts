export { createLogger, type Logger } from './logger.js';
export { redactUrlPassword } from './redact.js';
export { internalErrors, moduleOf, reportInternalError } from './internal-errors.js';
