// The shipped authentication policy: required unless the operator opens it, with a warning when an
// open Parley listens where other hosts reach it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../src/config/index.js';
import { startServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { openStore, type Store } from '../../src/store/index.js';
import { computeHa1 } from '../../src/registrar/index.js';

const openWarnings = (logs: string[]) => logs.filter((line) => line.includes('"level":"warn"') && line.includes('auth.policy: open on'));

test('a configuration that says nothing about auth challenges REGISTER with 401', async () => {
  const s = await startServer({ auth: defaultConfig().auth });
  const alice = await TestUA.create({ user: 'alice', server: s.udp });
  try {
    const response = await alice.register();
    assert.equal(response.status, 401);
    assert.ok(response.get('www-authenticate'));
    assert.deepEqual(openWarnings(s.logs), []);
  } finally {
    alice.close();
    await s.stop();
  }
});

test('REGISTERs of unknown users, with or without credentials, get 401 and leave nothing in the store', async () => {
  const s = await startServer({ auth: defaultConfig().auth });
  const bare = await TestUA.create({ user: 'drifter', server: s.udp });
  const guessing = await TestUA.create({ user: 'guesser', server: s.udp, password: 'a guess' });
  try {
    for (const ua of [bare, guessing]) assert.equal((await ua.register()).status, 401);
    assert.deepEqual(await s.server.store.locations.listAll(), []);
    for (const aor of ['drifter@localhost', 'guesser@localhost']) {
      assert.equal(await s.server.store.locations.isKnown(aor), false, aor);
      assert.deepEqual(await s.server.store.deliveries.devicesOf(aor, 0), [], aor);
    }
    assert.equal(s.server.registrar.aorCount, 0);
  } finally {
    bare.close();
    guessing.close();
    await s.stop();
  }
});

test('auth.policy open on a listener other hosts reach logs a warning naming that listener', async () => {
  const s = await startServer({
    auth: { policy: 'open' },
    listen: [
      { proto: 'udp', host: '0.0.0.0', port: 0 },
      { proto: 'tcp', host: '127.0.0.1', port: 0 },
    ],
  });
  try {
    const warnings = openWarnings(s.logs);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, new RegExp(`"listener":"udp:0\\.0\\.0\\.0:${s.udp.port}"`));
  } finally {
    await s.stop();
  }
});

test('auth.policy open on loopback only starts without a warning', async () => {
  const s = await startServer({ auth: { policy: 'open' } });
  try {
    assert.deepEqual(openWarnings(s.logs), []);
  } finally {
    await s.stop();
  }
});

test('a password changed or a user removed through the server\'s store takes effect at once; by another process, only once the credentials the server read have aged out', async () => {
  const s = await startServer({ auth: { ...defaultConfig().auth, credentials_cache_seconds: 3600 } });
  const cli = await openStore(s.config.database, { writerThread: false });
  const agents: TestUA[] = [];
  const register = async (password: string) => {
    const ua = await TestUA.create({ user: 'alice', server: s.udp, password });
    agents.push(ua);
    return (await ua.register()).status;
  };
  const setPassword = (store: Store, password: string) => store.users.put({ username: 'alice', domain: 'localhost', ...computeHa1('alice', 'localhost', password) });
  try {
    await setPassword(s.server.store, 'first');
    assert.equal(await register('first'), 200);
    await setPassword(s.server.store, 'second');
    assert.equal(await register('first'), 401);
    assert.equal(await register('second'), 200);
    // Another process (parley user add): the server goes on with the credentials it read, for auth.credentials_cache_seconds.
    await setPassword(cli, 'third');
    assert.equal(await register('second'), 200);
    assert.equal(await register('third'), 401);
    assert.equal(await s.server.store.users.remove('alice', 'localhost'), true);
    assert.equal(await register('second'), 401);
  } finally {
    for (const ua of agents) ua.close();
    await cli.close();
    await s.stop();
  }
});
