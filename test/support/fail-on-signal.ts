// Loaded into a Parley child process (`node --import`) by tests of its last-resort handlers: each
// SIGUSR2 makes an error escape every handler, an error of Parley's SIP parser (so its stack names
// the module, sip): a rejected promise, or with `?throw` after this module's URL an exception
// thrown from a callback. Parley itself has no such path on purpose.
import { parseMessage } from '../../src/sip/index.js';

const parseGarbage = () => parseMessage(Buffer.from('not a SIP message\r\n\r\n'));
const throwing = new URL(import.meta.url).searchParams.has('throw');

process.on('SIGUSR2', () => {
  // Left unhandled on purpose: that is what the handlers under test must deal with.
  if (throwing) setImmediate(parseGarbage);
  else void (async () => parseGarbage())();
});
