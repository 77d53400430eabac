// Temporary GRUUs across restarts (RFC 5627 §5.1: valid as long as the registration they came with):
// the key sealing them is kept in the store, so one handed out before a restart, graceful or
// kill -9, still reaches its device after it; its key is never logged.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import SqliteDatabase from 'better-sqlite3';
import { udpAgents } from '../support/ua.js';
import { killAll, startParley, type ParleyProcess } from '../support/process.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { contactParam, newInstance, registerDevice } from './devices.js';

const agent = udpAgents();
let postgres: PostgresServer;
before(async () => {
  postgres = await startPostgres();
});
after(async () => {
  killAll();
  await postgres.stop();
});

for (const [signal, driver] of [['SIGTERM', 'sqlite'], ['SIGKILL', 'sqlite'], ['SIGKILL', 'postgres']] as const) {
  test(`a temporary GRUU handed out before a restart (${signal}, ${driver}) reaches its device after it while its registration lasts`, async () => {
    let parley: ParleyProcess = await startParley(driver === 'postgres' ? { db: await postgres.createDatabase(`parley_gruu_${signal.toLowerCase()}`) } : {});
    try {
      const phone = await agent('gus', parley.udp);
      const sender = await agent('hal', parley.udp);
      const instance = newInstance();
      const temporary = contactParam(await registerDevice(phone, { instance, supported: 'gruu' }), phone.contact, 'temp-gruu')!;
      assert.ok(temporary);

      parley.kill(signal);
      const exited = await parley.exited;
      assert.ok(signal === 'SIGKILL' ? exited.signal === 'SIGKILL' : exited.code === 0, `stopped by ${signal}`);
      parley = await startParley({ db: parley.db, udpPort: parley.udp.port, tcpPort: parley.tcp.port });

      const toPhone = phone.waitForRequest((m) => m.method === 'MESSAGE');
      assert.equal((await sender.message(temporary, 'after the restart')).status, 200);
      const got = await toPhone;
      assert.equal(got.body.toString(), 'after the restart');
      assert.equal(got.uri, phone.contact);

      // Its registration ended: the GRUU is no longer valid, restart or not.
      assert.equal((await registerDevice(phone, { instance, expires: 0 })).status, 200);
      assert.equal((await sender.message(temporary, 'gone')).status, 480);

      if (driver === 'sqlite') {
        const db = new SqliteDatabase(parley.db.slice('sqlite:'.length), { readonly: true });
        const { value } = db.prepare("select value from server_keys where name = 'temporary-gruu'").get() as { value: Buffer };
        db.close();
        const logs = parley.logs.join('\n');
        for (const form of ['hex', 'base64', 'base64url'] as const) assert.ok(!logs.includes(value.toString(form)), `the key is not logged (${form})`);
      }
    } finally {
      await parley.stop();
    }
  });
}
