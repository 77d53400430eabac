// Per-source message rate (like Kamailio's pike): over sip.rate_limit a source's requests get 503
// with Retry-After (over UDP one a second), or nothing with rate_action drop; its allowance comes
// back as the window passes.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket as UdpSocket } from 'node:dgram';
import type { SipMessage } from '../../src/sip/index.js';
import { startServer, type ConfigPatch, type TestServer } from '../support/server.js';
import { eventually } from '../support/eventually.js';
import { sample, scrape } from '../admin/client.js';
import { bindUdp, closeUdp, lenient, request, sleep, transact } from './wire.js';

const servers: TestServer[] = [];
const sockets: UdpSocket[] = [];
after(async () => {
  for (const socket of sockets) closeUdp(socket);
  for (const server of servers) await server.stop();
});

async function server(sip: ConfigPatch['sip']): Promise<TestServer> {
  const started = await startServer({ sip, presence: { enabled: false } });
  servers.push(started);
  return started;
}

async function socket(): Promise<UdpSocket> {
  const bound = await bindUdp();
  sockets.push(bound);
  return bound;
}

/** Sends `count` OPTIONS at once, each sent once, and collects what comes back for them until `settled` says enough. */
async function burst(s: TestServer, from: UdpSocket, count: number, settled: (responses: SipMessage[]) => boolean): Promise<SipMessage[]> {
  const requests = Array.from({ length: count }, () => request('OPTIONS', 'sip:localhost', from.address().port));
  const branches = new Set(requests.map((message) => message.via.branch));
  const responses: SipMessage[] = [];
  const collect = (data: Buffer) => {
    const response = lenient(data);
    if (response && !response.isRequest && branches.has(response.via.branch)) responses.push(response);
  };
  from.on('message', collect);
  try {
    for (const message of requests) from.send(message.toBuffer(), s.udp.port, s.udp.host);
    return await eventually(() => settled(responses) && responses, `answers to a burst of ${count}`, 5000);
  } finally {
    from.off('message', collect);
  }
}

const statuses = (responses: SipMessage[]) => responses.map((response) => response.status).sort();

describe('per-source rate', () => {
  test('requests over rate_limit get 503 with Retry-After, one a second over UDP; after Retry-After they are answered again', async () => {
    // 5 at once, one more every 400 ms.
    const s = await server({ rate_limit: 5, rate_window: 2, exempt_sources: [] });
    const from = await socket();
    const responses = await burst(s, from, 10, (got) => got.length >= 6 && s.server.transports.stats.refused.rate === 5);
    // The other four over the rate are dropped: anything they could have caused would have come by now.
    await sleep(300);
    assert.deepEqual(statuses(responses), [200, 200, 200, 200, 200, 503]);
    for (const refused of responses.filter((response) => response.status === 503)) {
      assert.equal(refused.reason, 'Service Unavailable (too many requests from this address)');
      assert.equal(refused.get('retry-after'), '1');
    }
    assert.equal(s.server.transports.stats.refused.rate, 5);
    const logged = s.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.msg === 'SIP traffic refused');
    assert.equal(logged.length, 1, 'five refusals in a row are logged once');
    assert.equal(logged[0]!.reason, 'rate');
    assert.equal(logged[0]!.host, '127.0.0.1');
    const metrics = (await scrape(s)).text;
    assert.equal(sample(metrics, 'parley_sip_refused_total{reason="rate"}'), 5);
    assert.equal(sample(metrics, 'parley_sip_refused_total{reason="connections"}'), 0);

    await sleep(1000);
    assert.equal((await transact(from, s.udp, request('OPTIONS', 'sip:localhost', from.address().port)))?.status, 200);
  });

  test('with rate_action drop, requests over the limit get no answer; after the window they are answered', async () => {
    const s = await server({ rate_limit: 3, rate_window: 1, rate_action: 'drop', exempt_sources: [] });
    const from = await socket();
    const responses = await burst(s, from, 6, (got) => got.length >= 3 && s.server.transports.stats.refused.rate === 3);
    // Anything the dropped ones could have caused would have been sent while they were refused.
    await sleep(300);
    assert.deepEqual(statuses(responses), [200, 200, 200]);

    await sleep(1000);
    const again = await burst(s, from, 3, (got) => got.length === 3);
    assert.deepEqual(statuses(again), [200, 200, 200]);
  });

  test('a source with its whole allowance gets rate_burst requests through at once, not rate_limit', async () => {
    // 100 per 1000 s: one more every 10 s, none during the test.
    const s = await server({ rate_limit: 100, rate_window: 1000, rate_burst: 3, rate_action: 'drop', exempt_sources: [] });
    const from = await socket();
    const responses = await burst(s, from, 8, (got) => got.length >= 3 && s.server.transports.stats.refused.rate === 5);
    // Anything the dropped ones could have caused would have been sent while they were refused.
    await sleep(300);
    assert.deepEqual(statuses(responses), [200, 200, 200]);
  });

  test('loopback is exempt by default', async () => {
    const s = await server({ rate_limit: 2, rate_window: 60 });
    const from = await socket();
    const responses = await burst(s, from, 10, (got) => got.length === 10);
    assert.deepEqual(statuses(responses), Array(10).fill(200));
    assert.equal(s.server.transports.stats.refused.rate, 0);
  });
});
