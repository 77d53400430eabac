// import-imc from a Kamailio database on PostgreSQL into Parley's SQLite store.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { openStore } from '../../src/store/index.js';
import { parley } from '../support/cli.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { IMC_TABLES, kamailioImcScript } from './kamailio.js';

let postgres: PostgresServer | undefined;
const dir = mkdtempSync(join(tmpdir(), 'parley-import-pg-'));
after(async () => {
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('import-imc reads a Kamailio PostgreSQL database', async () => {
  postgres = await startPostgres();
  const source = await postgres.createDatabase('kamailio');
  const client = new pg.Client({ connectionString: source });
  await client.connect();
  await client.query(kamailioImcScript('postgres'));
  await client.end();

  const database = `sqlite:${join(dir, 'parley.db')}`;
  const outcome = await parley(['import-imc', '--from', source, '--db', database]);
  assert.equal(outcome.code, 0, outcome.stderr);
  assert.match(outcome.stdout, /^imported 4 rooms with 8 members from postgres:\/\/.*; skipped 1 room\nskipped sip:chat-orphan@localhost: no owner\n$/);

  const store = await openStore(database);
  try {
    const { rooms, members } = await (await store.rooms(IMC_TABLES)).loadAll();
    assert.deepEqual(rooms.filter((r) => r.private).map((r) => r.name), ['chat-secret']);
    assert.deepEqual(
      members.filter((m) => m.roomName === 'chat-team').map((m) => [m.username, m.invited ? 'invited' : m.role]),
      [['alice', 'owner'], ['bob', 'admin'], ['carol', 'member'], ['dave', 'invited']],
    );
  } finally {
    await store.close();
  }
});
