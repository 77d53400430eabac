// The floor for workload (a) of bench/run.ts: a bare Node.js UDP responder that answers every
// request 200 with no SIP stack behind it. It reads only the header lines a response copies (Via,
// From, To, Call-ID, CSeq) and parses nothing: what Node's own datagram path costs, against which
// Parley's answered MESSAGE is put in the same run.
//
//   node --import tsx bench/udp-responder.ts --port 5080 [--host 127.0.0.1]
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
if (!args.port) throw new Error('--port is required');

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
