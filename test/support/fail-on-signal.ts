// Loaded into a Parley child process (`node --import`) by tests of its last-resort handlers: each
// SIGUSR2 makes an error escape every handler, a fault inside Parley's SIP parser (so its stack names
// the module, sip): a rejected promise, or with `?throw` after this module's URL an exception
// thrown from a callback. Parley itself has no such path on purpose. A fault, not a malformed
// message: the parser's own SipParseError carries no stack (it is answered 400, never traced).
import { parseMessage } from '../../src/sip/index.js';

// No buffer at all: the parser fails reading it, as a bug of Parley's would.
const parseGarbage = () => parseMessage(undefined as unknown as Buffer);
const throwing = new URL(import.meta.url).searchParams.has('throw');

process.on('SIGUSR2', () => {
  // Left unhandled on purpose: that is what the handlers under test must deal with.
  if (throwing) setImmediate(parseGarbage);
  else void (async () => parseGarbage())();
});
