export { createLogger, type Logger } from './logger.js';
export { redactUrlPassword } from './redact.js';
