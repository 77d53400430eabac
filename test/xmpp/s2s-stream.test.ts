// A server-to-server stream acknowledges what the peer writes at once: an incoming stream carries
// only the peer's stanzas, so without a write of ours the TCP acknowledgement would wait for the
// delayed-ACK timer and a peer keeping Nagle's algorithm (Prosody's default) would hold its next
// stanzas back meanwhile. A whitespace goes back when nothing else is written in that turn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { createLogger } from '../../src/log/index.js';
import { XmlStream } from '../../src/xmpp/s2s/stream.js';
import { eventually } from '../support/eventually.js';

const PEER_HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='peer.example' to='parley.example' version='1.0'>";

/** Parley's side of a loopback connection as an XmlStream, and the peer's socket with what it read. */
async function streamPair(): Promise<{ stream: XmlStream; peer: Socket; read: () => string; close(): void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const peer = connect(port, '127.0.0.1');
  const [socket] = await accepted;
  let input = '';
  peer.on('data', (chunk: Buffer) => (input += chunk.toString('utf8')));
  const stream = new XmlStream(socket, createLogger('silent'), 60_000, () => {}, { maxStanzaBytes: 65_536, maxDepth: 32 });
  return {
    stream,
    peer,
    read: () => input,
    close() {
      stream.destroy();
      peer.destroy();
      server.close();
    },
  };
}

test('a stanza the peer writes on a stream we only read is answered by a whitespace in the same turn; a stanza we write in that turn carries the acknowledgement instead', async () => {
  const { stream, peer, read, close } = await streamPair();
  try {
    const elements: string[] = [];
    stream.on('element', (element) => {
      elements.push(element.toString());
      // What Parley writes back in the turn it read the stanza: no whitespace is added then.
      if (element.attrs.id === 'answered') stream.write("<message from='parley.example' to='peer.example' id='reply'/>");
    });
    stream.open({ from: 'parley.example', to: 'peer.example' });
    await eventually(() => read().includes('<stream:stream') || undefined, 'our stream header');
    const afterHeader = read().length;
    peer.write(`${PEER_HEADER}<message from='a@peer.example' to='b@parley.example' id='m1'><body>hi</body></message>`);
    await eventually(() => read().length > afterHeader || undefined, 'something written back');
    assert.equal(read().slice(afterHeader), ' ', 'a whitespace only');
    assert.equal(elements.length, 1);

    const afterAck = read().length;
    peer.write("<message from='a@peer.example' to='b@parley.example' id='answered'><body>again</body></message>");
    await eventually(() => read().includes("id='reply'") || undefined, 'the reply');
    // One more turn: a whitespace, were one added, would be written by now.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(read().slice(afterAck), "<message from='parley.example' to='peer.example' id='reply'/>");
  } finally {
    close();
  }
});

test('nothing is written back before our stream header is out (a whitespace would come before the XML declaration)', async () => {
  const { stream, peer, read, close } = await streamPair();
  try {
    const opened = once(stream, 'open');
    peer.write(PEER_HEADER);
    await opened;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(read(), '');
  } finally {
    close();
  }
});
