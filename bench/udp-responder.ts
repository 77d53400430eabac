// The floor for workload (a) of bench/run.ts: a bare Node.js UDP responder that answers every
// request 200 with no SIP stack behind it. It reads only the header lines a response copies (Via,
// From, To, Call-ID, CSeq) and parses nothing: what Node's own datagram path costs, against which
// Parley's answered MESSAGE is put in the same run.
//
//   node --import tsx bench/udp-responder.ts --port 5080 [--host 127.0.0.1] [--parse]
//
// With --parse it first parses each request with Parley's own parser, compiled (dist/sip/parser.js,
// `bash scripts/build-if-changed.sh` makes it), and answers as before: what parsing and validating a
// request costs under load, the rest of Parley's path left out (bare, bare with --parse, Parley: CPU
// per answer at the same rate tells the parser's share from the rest).
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, parse: { type: 'boolean', default: false } },
});
if (!args.port) throw new Error('--port is required');
const parser = args.parse
  ? ((await import(pathToFileURL(join(import.meta.dirname, '..', 'dist', 'sip', 'parser.js')).href)) as typeof import('../src/sip/parser.js'))
  : undefined;

/** Header lines a response copies (RFC 3261 §8.2.6), long and compact forms. */
const COPIED = /^(?:via|v|from|f|to|t|call-id|i|cseq)[ \t]*:/i;
const IS_TO = /^(?:to|t)[ \t]*:/i;

// As Parley's transport does: a literal IP is handed to the socket at once, not through dns.lookup.
const socket = createSocket({
  type: 'udp4',
  recvBufferSize: 4 << 20,
  sendBufferSize: 4 << 20,
  lookup: (address, _options, callback) => callback(null, address, 4),
});
socket.on('message', (data, rinfo) => {
  if (parser) {
    try {
      parser.parseMessage(data);
    } catch {
      return; // malformed: not the load this measures
    }
  }
  const text = data.toString('latin1');
  if (text.startsWith('SIP/2.0')) return; // a response: nothing to answer
  const headEnd = text.indexOf('\r\n\r\n');
  let response = 'SIP/2.0 200 OK\r\n';
  for (const line of text.slice(0, headEnd < 0 ? text.length : headEnd).split('\r\n')) {
    if (!COPIED.test(line)) continue;
    response += IS_TO.test(line) && !line.includes(';tag=') ? `${line};tag=bare\r\n` : `${line}\r\n`;
  }
  socket.send(`${response}Content-Length: 0\r\n\r\n`, rinfo.port, rinfo.address);
});
socket.bind(Number(args.port), args.host);
