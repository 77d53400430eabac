// The management commands as an operator runs them: import-imc from a Kamailio database, then
// rooms, members and rpc against the server started on the result.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { openStore } from '../../src/store/index.js';
import { parley } from '../support/cli.js';
import { startServer, type TestServer } from '../support/server.js';
import { adminToken, adminUrl, rpc } from './client.js';
import { IMC_TABLES, kamailioImcScript } from './kamailio.js';

function createKamailioDatabase(path: string, tables = IMC_TABLES): void {
  const db = new SqliteDatabase(path);
  db.exec(kamailioImcScript('sqlite', tables));
  db.close();
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('parley import-imc, then the management commands', () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-admin-cli-'));
  const kamailio = join(dir, 'kamailio.db');
  const database = `sqlite:${join(dir, 'parley.db')}`;
  let imported: Awaited<ReturnType<typeof parley>>;
  let kamailioDigest: string;
  let s: TestServer;

  before(async () => {
    createKamailioDatabase(kamailio);
    kamailioDigest = sha256(kamailio);
    const store = await openStore(database);
    const rooms = await store.rooms(IMC_TABLES);
    await rooms.createRoom(
      { name: 'chat-existing', domain: 'localhost', private: false, createdAt: 1 },
      { roomName: 'chat-existing', roomDomain: 'localhost', username: 'ivy', domain: 'localhost', role: 'owner', invited: false },
    );
    await store.close();
    imported = await parley(['import-imc', '--from', `sqlite:${kamailio}`, '--db', database]);
    s = await startServer({ database });
  });
  after(async () => {
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('import-imc', () => {
    test('prints what it imported and what it left out', () => {
      assert.equal(imported.code, 0, imported.stderr);
      assert.equal(
        imported.stdout,
        [
          `imported 3 rooms with 7 members from sqlite:${kamailio}; skipped 2 rooms`,
          'skipped sip:chat-orphan@localhost: no owner',
          'skipped sip:chat-existing@localhost: Parley has this room already',
          '',
        ].join('\n'),
      );
    });

    test('the rooms and members are in the store, with their roles; an existing room is untouched', async () => {
      const store = await openStore(database);
      try {
        const { rooms, members } = await (await store.rooms(IMC_TABLES)).loadAll();
        assert.deepEqual(
          rooms.map((r) => [r.name, r.private]).sort(),
          [['chat-existing', false], ['chat-secret', true], ['chat-team', false], ['chat-two words', false]],
        );
        const of = (room: string) => members.filter((m) => m.roomName === room).map((m) => [m.username, m.role, m.invited]);
        assert.deepEqual(of('chat-team'), [['alice', 'owner', false], ['bob', 'admin', false], ['carol', 'member', false], ['dave', 'member', true]]);
        assert.deepEqual(of('chat-secret'), [['erin', 'owner', false], ['frank', 'member', true]]);
        assert.deepEqual(of('chat-existing'), [['ivy', 'owner', false]]);
        // Kamailio keeps a URI's user part escaped; Parley names a room and a member unescaped, as it reads their addresses.
        assert.deepEqual(of('chat-two words'), [['dora@home', 'owner', false]]);
      } finally {
        await store.close();
      }
    });

    test('a server started on the result serves them', async () => {
      assert.deepEqual((await rpc(s, 'imc.list_members', ['chat-team'])).result.map((m: { role: string }) => m.role), ['owner', 'admin', 'member', 'invited']);
      const secret = (await rpc(s, 'imc.list_rooms')).result.find((r: { uri: string }) => r.uri === 'sip:chat-secret@localhost');
      assert.deepEqual(secret, { uri: 'sip:chat-secret@localhost', private: true, members: 1, owner: 'sip:erin@localhost' });
      assert.deepEqual((await rpc(s, 'imc.list_members', ['sip:chat-two%20words@localhost'])).result, [{ uri: 'sip:dora%40home@localhost', role: 'owner', nick: 'dora@home' }]);
    });

    test('the Kamailio database is only read', () => {
      assert.equal(sha256(kamailio), kamailioDigest);
      assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('kamailio')), ['kamailio.db']);
    });

    test('a second run imports nothing', async () => {
      const again = await parley(['import-imc', '--from', `sqlite:${kamailio}`, '--db', database]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /^imported 0 rooms with 0 members .*; skipped 5 rooms$/m);
      assert.match(again.stdout, /^skipped sip:chat-two%20words@localhost: Parley has this room already$/m, 'a room named by its address');
    });

    test('other table names', async () => {
      const source = join(dir, 'renamed.db');
      const target = `sqlite:${join(dir, 'renamed-target.db')}`;
      createKamailioDatabase(source, { rooms: 'kam_rooms', members: 'kam_members' });
      const outcome = await parley(['import-imc', '--from', `sqlite:${source}`, '--rooms-table', 'kam_rooms', '--members-table', 'kam_members', '--db', target]);
      assert.equal(outcome.code, 0, outcome.stderr);
      assert.match(outcome.stdout, /^imported 4 rooms with 8 members /);
    });

    test('a missing source or --from is an error', async () => {
      const missing = await parley(['import-imc', '--from', `sqlite:${join(dir, 'nope.db')}`, '--db', database]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /nope\.db/);
      const usage = await parley(['import-imc', '--db', database]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /missing --from/);
    });
  });

  describe('rooms, members, rpc', () => {
    const endpoint = () => ['--admin', adminUrl(s), '--token', adminToken(s)];

    test('parley rooms prints a table of the rooms', async () => {
      const { code, stdout } = await parley(['rooms', ...endpoint()]);
      assert.equal(code, 0);
      const lines = stdout.trimEnd().split('\n');
      assert.match(lines[0]!, /^ROOM +PRIVATE +MEMBERS +OWNER +TOPIC$/);
      assert.deepEqual(lines.slice(1).map((line) => line.split(/ +/)).sort(), [
        ['sip:chat-existing@localhost', 'no', '1', 'sip:ivy@localhost'],
        ['sip:chat-secret@localhost', 'yes', '1', 'sip:erin@localhost'],
        ['sip:chat-team@localhost', 'no', '3', 'sip:alice@localhost'],
        ['sip:chat-two%20words@localhost', 'no', '1', 'sip:dora%40home@localhost'],
      ]);
    });

    test('parley members prints a room’s members and roles', async () => {
      const { code, stdout } = await parley(['members', 'chat-team', ...endpoint()]);
      assert.equal(code, 0);
      assert.deepEqual(stdout.trimEnd().split('\n').map((line) => line.split(/ +/)), [
        ['MEMBER', 'ROLE', 'NICK'],
        ['sip:alice@localhost', 'owner', 'alice'],
        ['sip:bob@localhost', 'admin', 'bob'],
        ['sip:carol@localhost', 'member', 'carol'],
        ['sip:dave@localhost', 'invited', 'dave'],
      ]);
    });

    test('parley rpc takes NAME=VALUE or JSON and prints the result as JSON', async () => {
      const [named, positional] = await Promise.all([
        parley(['rpc', 'imc.list_members', 'room=chat-secret', ...endpoint()]),
        parley(['rpc', 'imc.list_members', '["sip:chat-secret@localhost"]', ...endpoint()]),
      ]);
      const expected = [
        { uri: 'sip:erin@localhost', role: 'owner', nick: 'erin' },
        { uri: 'sip:frank@localhost', role: 'invited', nick: 'frank' },
      ];
      for (const outcome of [named, positional]) {
        assert.equal(outcome.code, 0, outcome.stderr);
        assert.equal(outcome.stdout, `${JSON.stringify(expected, null, 2)}\n`);
      }
    });

    test('an RPC error: its message, exit 1; a refused token: exit 1; bad arguments: usage, exit 2', async () => {
      const [refused, unknown, badToken, badArgs] = await Promise.all([
        parley(['rpc', 'imc.destroy_room', 'room=chat-nope', ...endpoint()]),
        parley(['members', 'chat-nope', ...endpoint()]),
        parley(['rooms', '--admin', adminUrl(s), '--token', 'not-the-token']),
        parley(['rpc', 'imc.list_members', 'chat-team', ...endpoint()]),
      ]);
      assert.deepEqual(refused, { code: 1, stdout: '', stderr: 'parley: no room chat-nope\n' });
      assert.deepEqual(unknown, { code: 1, stdout: '', stderr: 'parley: no room chat-nope\n' });
      assert.equal(badToken.code, 1);
      assert.match(badToken.stderr, /refused the token/);
      assert.equal(badArgs.code, 2);
      assert.match(badArgs.stderr, /expected NAME=VALUE/);
    });

    test('without --admin and --token: the endpoint from admin.listen, the token from the file beside the database', async () => {
      const config = join(dir, 'parley.yaml');
      writeFileSync(config, `database: ${database}\nadmin:\n  listen: 127.0.0.1:${s.server.admin!.port}\n`);
      const { code, stdout, stderr } = await parley(['rpc', 'imc.active_rooms', '--config', config]);
      assert.equal(code, 0, stderr);
      assert.equal(stdout, '4\n');
    });
  });
});
