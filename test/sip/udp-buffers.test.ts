// The kernel buffers of Parley's UDP sockets: what sip.udp_receive_buffer and udp_send_buffer ask
// for, and the warning at start when Linux gives less (net.core.rmem_max, wmem_max).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { startServer, type TestServer } from '../support/server.js';

const RMEM_MAX = '/proc/sys/net/core/rmem_max';
const skip = existsSync(RMEM_MAX) ? undefined : `${RMEM_MAX} not readable (not Linux)`;

const warnings = (s: TestServer) =>
  s.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('UDP '));

test('a receive buffer above net.core.rmem_max is warned of at start, naming the listener, the key and the sysctl to raise', { skip }, async () => {
  const rmemMax = Number(readFileSync(RMEM_MAX, 'utf8'));
  const asked = 2 * rmemMax;
  const s = await startServer({ listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }], sip: { udp_receive_buffer: asked, udp_send_buffer: 65536 } });
  try {
    const logged = warnings(s);
    assert.equal(logged.length, 1, JSON.stringify(logged));
    const [warning] = logged as [Record<string, unknown>];
    assert.equal(warning.level, 'warn');
    assert.equal(warning.listener, `udp:127.0.0.1:${s.udp.port}`);
    assert.equal(warning.asked, asked);
    assert.equal(warning.got, rmemMax);
    assert.match(String(warning.msg), /^UDP receive buffer smaller than sip\.udp_receive_buffer: .* raise net\.core\.rmem_max \(sysctl -w net\.core\.rmem_max=\d+\)$/);
  } finally {
    await s.stop();
  }
});

test('buffers the kernel grants in full are not warned of', { skip }, async () => {
  const s = await startServer({ listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }], sip: { udp_receive_buffer: 65536, udp_send_buffer: 65536 } });
  try {
    assert.deepEqual(warnings(s), []);
  } finally {
    await s.stop();
  }
});
