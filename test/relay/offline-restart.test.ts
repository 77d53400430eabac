// Who has stored messages waiting is known without a read at each REGISTER: after kill -9, the
// restarted Parley reads it from the store, so a stored message still comes at the next registration.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { udpAgents } from '../support/ua.js';
import { killAll, startParley } from '../support/process.js';

const agent = udpAgents();
after(() => killAll());

test('kill -9 with a message stored for a user who is away: the user gets it on registering with the restarted Parley', async () => {
  let parley = await startParley();
  try {
    const sam = await agent('sam', parley.udp);
    const tom = await agent('tom', parley.udp);
    assert.equal((await sam.register()).status, 200);
    assert.equal((await sam.register(0)).status, 200);
    assert.equal((await tom.message('sip:sam@localhost', 'while you were away')).status, 202);

    parley.kill('SIGKILL');
    assert.equal((await parley.exited).signal, 'SIGKILL');
    parley = await startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });

    // Tom registers first: the restarted Parley has read who has messages waiting by the time Sam does.
    assert.equal((await tom.register()).status, 200);
    const delivered = sam.waitForRequest((m) => m.method === 'MESSAGE', 10_000);
    assert.equal((await sam.register()).status, 200);
    const message = await delivered;
    assert.equal(message.body.toString(), 'while you were away');
    assert.match(message.get('from')!, /sip:tom@localhost/);
  } finally {
    await parley.stop();
  }
});
