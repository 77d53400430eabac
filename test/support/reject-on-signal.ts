// Loaded into a Parley child process (`node --import`) by tests of its last-resort handler: each
// SIGUSR2 makes a promise reject with nobody to handle it, the error coming from Parley's SIP
// parser (so its stack names the module, sip). Parley itself has no such path on purpose.
import { parseMessage } from '../../src/sip/index.js';

process.on('SIGUSR2', () => {
  // Left unhandled on purpose: that is what the handler under test must survive.
  void (async () => parseMessage(Buffer.from('not a SIP message\r\n\r\n')))();
});
