// auth.policy: required — REGISTER and requests from local users must pass digest authentication.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startServer, type TestServer } from '../support/server.js';
import { TestUA } from '../support/ua.js';
import { computeHa1 } from '../../src/registrar/index.js';

let s: TestServer;
const agents: TestUA[] = [];
const ua = async (user: string, password?: string) => {
  const agent = await TestUA.create({ user, password, server: s.udp });
  agents.push(agent);
  return agent;
};

before(async () => {
  s = await startServer({ auth: { policy: 'required' } as never });
  for (const [user, password] of [['alice', 'alice-secret'], ['bob', 'bob-secret'], ['carol', 'carol-secret']]) {
    await s.server.store.users.put({ username: user!, domain: 'localhost', ...computeHa1(user!, 'localhost', password!) });
  }
});
after(async () => {
  for (const agent of agents) agent.close();
  await s.stop();
});

test('REGISTER without credentials is challenged with 401 for SHA-256 and MD5', async () => {
  const alice = await ua('alice');
  const r = await alice.register();
  assert.equal(r.status, 401);
  const challenges = r.getAll('www-authenticate');
  assert.equal(challenges.length, 2);
  assert.match(challenges[0]!, /algorithm=SHA-256/);
  assert.match(challenges[1]!, /algorithm=MD5/);
});

test('REGISTER with the right password is accepted; a wrong one is challenged again', async () => {
  assert.equal((await (await ua('alice', 'alice-secret')).register()).status, 200);
  assert.equal((await (await ua('alice', 'wrong')).register()).status, 401);
});

test('credentials of another user are refused with 403', async () => {
  const mallory = await ua('bob', 'alice-secret');
  // Answer bob's challenge with alice's name: the registrar must not let alice register as bob.
  const first = await mallory.send(mallory.build('REGISTER', 'sip:localhost', { to: '<sip:bob@localhost>', headers: [{ name: 'contact', value: '<sip:bob@127.0.0.1:9>' }] }));
  const nonce = /nonce="([^"]+)"/.exec(first.getAll('www-authenticate')[0]!)![1];
  const retry = mallory.build('REGISTER', 'sip:localhost', { to: '<sip:bob@localhost>', headers: [{ name: 'contact', value: '<sip:bob@127.0.0.1:9>' }] });
  retry.add('authorization', `Digest username="alice", realm="localhost", nonce="${nonce}", uri="sip:localhost", response="00", algorithm=SHA-256`);
  assert.equal((await mallory.send(retry)).status, 403);
});

test('credentials computed for another Request-URI are refused with 400, whatever the password', async () => {
  const alice = await ua('alice', 'alice-secret');
  const register = () => alice.build('REGISTER', 'sip:localhost', { to: '<sip:alice@localhost>', headers: [{ name: 'contact', value: '<sip:alice@127.0.0.1:9>' }] });
  const challenge = (await alice.send(register())).getAll('www-authenticate')[0]!;
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  const uri = 'sip:elsewhere.example';
  const response = sha256(`${sha256('alice:localhost:alice-secret')}:${nonce}:00000001:c0ffee:auth:${sha256(`REGISTER:${uri}`)}`);
  const replayed = register();
  replayed.add('authorization', `Digest username="alice", realm="localhost", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c0ffee"`);
  const refused = await alice.send(replayed);
  assert.equal(refused.status, 400);
  assert.equal(refused.reason, 'Bad Request (the digest uri is not the Request-URI)');
  // The same answer for the right uri is taken.
  const right = register();
  const rightResponse = sha256(`${sha256('alice:localhost:alice-secret')}:${nonce}:00000002:c0ffee:auth:${sha256('REGISTER:sip:localhost')}`);
  right.add('authorization', `Digest username="alice", realm="localhost", nonce="${nonce}", uri="sip:localhost", response="${rightResponse}", algorithm=SHA-256, qop=auth, nc=00000002, cnonce="c0ffee"`);
  assert.equal((await alice.send(right)).status, 200);
});

test('a MESSAGE from a local user needs Proxy-Authorization (407), then goes through', async () => {
  const bob = await ua('bob', 'bob-secret');
  assert.equal((await bob.register()).status, 200);
  const alice = await ua('alice', 'alice-secret');
  const unauthenticated = await alice.send(alice.build('MESSAGE', 'sip:bob@localhost', { body: 'hi' }));
  assert.equal(unauthenticated.status, 407);
  assert.ok(unauthenticated.get('proxy-authenticate'));
  const received = bob.waitForRequest((m) => m.method === 'MESSAGE');
  assert.equal((await alice.message('sip:bob@localhost', 'authenticated hello')).status, 200);
  assert.equal((await received).body.toString(), 'authenticated hello');
});

test('a provisioned user who never registered is known: a MESSAGE to her is stored (202), an unknown user gets 404', async () => {
  const bob = await ua('bob', 'bob-secret');
  assert.equal((await bob.message('sip:carol@localhost', 'for later')).status, 202);
  assert.equal((await bob.message('sip:nobody@localhost', 'lost?')).status, 404);
});

test('passwords and digest responses never reach the log', () => {
  const text = s.logs.join('');
  assert.ok(!text.includes('alice-secret') && !text.includes('bob-secret'));
});
