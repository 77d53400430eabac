// The credentials cache of the users repository: a change made through it shows at once, one made
// by another process sharing the store (parley user add/del) once the cache's seconds have passed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.js';

const alice = (ha1: string) => ({ username: 'alice', domain: 'example.com', ha1Md5: `md5-${ha1}`, ha1Sha256: `sha-${ha1}` });

/** The server's store, whose clock the test moves, and another process's (the CLI's) on the same file. */
async function stores(options: { seconds: number; maxUsers?: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'parley-users-cache-'));
  const url = `sqlite:${join(dir, 'db.sqlite')}`;
  const clock = { now: 1_000_000 };
  const server = await openStore(url, { credentialsCache: { ...options, now: () => clock.now } });
  const cli = await openStore(url, { writerThread: false });
  return {
    server,
    cli,
    clock,
    async close() {
      await cli.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const ha1Of = async (store: Store) => (await store.users.get('alice', 'example.com'))?.ha1Sha256;

test('a password changed by another process is read again once the cache seconds have passed, not before', async () => {
  const { server, cli, clock, close } = await stores({ seconds: 10 });
  try {
    await cli.users.put(alice('old'));
    assert.equal(await ha1Of(server), 'sha-old');
    await cli.users.put(alice('new'));
    clock.now += 9_999;
    assert.equal(await ha1Of(server), 'sha-old', 'within the cache seconds');
    clock.now += 1;
    assert.equal(await ha1Of(server), 'sha-new', 'once they have passed');
  } finally {
    await close();
  }
});

test('a user removed by another process is gone once the cache seconds have passed; one added is found at once', async () => {
  const { server, cli, clock, close } = await stores({ seconds: 10 });
  try {
    assert.equal(await ha1Of(server), undefined);
    await cli.users.put(alice('first'));
    assert.equal(await ha1Of(server), 'sha-first', 'a user not found is not kept as such');
    assert.equal(await cli.users.remove('alice', 'example.com'), true);
    assert.equal(await ha1Of(server), 'sha-first');
    clock.now += 10_000;
    assert.equal(await ha1Of(server), undefined);
  } finally {
    await close();
  }
});

test('a change made through the same store shows at once, even in a read begun before it', async () => {
  const { server, close } = await stores({ seconds: 3600 });
  try {
    await server.users.put(alice('old'));
    assert.equal(await ha1Of(server), 'sha-old');
    await server.users.put(alice('new'));
    // A read under way when the user changes again gives what it read, but is not kept.
    const under = ha1Of(server);
    await server.users.put(alice('newer'));
    assert.equal(await under, 'sha-new');
    assert.equal(await ha1Of(server), 'sha-newer');
    assert.equal(await server.users.remove('alice', 'example.com'), true);
    assert.equal(await ha1Of(server), undefined);
  } finally {
    await close();
  }
});

test('past its most users, the cache reads those read longest ago from the store again', async () => {
  const { server, cli, close } = await stores({ seconds: 3600, maxUsers: 2 });
  try {
    for (const username of ['u1', 'u2', 'u3']) {
      await cli.users.put({ ...alice('old'), username });
      await server.users.get(username, 'example.com');
    }
    for (const username of ['u1', 'u2', 'u3']) await cli.users.put({ ...alice('new'), username });
    const seen = async (username: string) => (await server.users.get(username, 'example.com'))?.ha1Sha256;
    assert.equal(await seen('u3'), 'sha-old', 'kept');
    assert.equal(await seen('u1'), 'sha-new', 'dropped for u3, read again');
  } finally {
    await close();
  }
});

test('with 0 seconds every read goes to the store', async () => {
  const { server, cli, close } = await stores({ seconds: 0 });
  try {
    await cli.users.put(alice('old'));
    assert.equal(await ha1Of(server), 'sha-old');
    await cli.users.put(alice('new'));
    assert.equal(await ha1Of(server), 'sha-new');
  } finally {
    await close();
  }
});
