// WaitingUsers: who may have stored messages waiting, so that a REGISTER of anyone else reads nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WaitingUsers } from '../../src/store/offline.js';

test('until the store has been read, every user may have messages waiting; then only those it listed', () => {
  const users = new WaitingUsers(async () => {});
  assert.equal(users.mayHave('ann@localhost'), true);
  users.loaded(['ann@localhost']);
  assert.equal(users.mayHave('ann@localhost'), true);
  assert.equal(users.mayHave('bea@localhost'), false);
});

test('a user is added when a message for them starts being stored, and taken out by a read that found none', () => {
  const users = new WaitingUsers(async () => {});
  users.loaded([]);
  const stored = users.storing('bea@localhost');
  assert.equal(users.mayHave('bea@localhost'), true, 'while being stored');
  stored();
  assert.equal(users.mayHave('bea@localhost'), true, 'once stored');
  users.foundNone('bea@localhost', users.reading('bea@localhost'));
  assert.equal(users.mayHave('bea@localhost'), false);
});

test('a read that found none keeps the user when a message of theirs was being stored as it began, or began being stored meanwhile', () => {
  const users = new WaitingUsers(async () => {});
  users.loaded([]);
  // Its commit may come after the read's snapshot.
  const underWay = users.storing('cy@localhost');
  const readDuring = users.reading('cy@localhost');
  underWay();
  users.foundNone('cy@localhost', readDuring);
  assert.equal(users.mayHave('cy@localhost'), true);

  const readBefore = users.reading('cy@localhost');
  users.storing('cy@localhost')();
  users.foundNone('cy@localhost', readBefore);
  assert.equal(users.mayHave('cy@localhost'), true);

  users.foundNone('cy@localhost', users.reading('cy@localhost'));
  assert.equal(users.mayHave('cy@localhost'), false);
});

test('users the store listed stay until a read finds none, also when the list came while a read was under way', () => {
  const users = new WaitingUsers(async () => {});
  const read = users.reading('dee@localhost');
  users.loaded(['dee@localhost']);
  users.foundNone('dee@localhost', read);
  assert.equal(users.mayHave('dee@localhost'), true);
  users.foundNone('dee@localhost', users.reading('dee@localhost'));
  assert.equal(users.mayHave('dee@localhost'), false);
});

test('the store\'s list is read once, by the first question; a read that failed is tried again by the next', async () => {
  let reads = 0;
  let fail = true;
  const users: WaitingUsers = new WaitingUsers(async () => {
    reads++;
    if (fail) throw new Error('store unavailable');
    users.loaded(['dee@localhost']);
  });
  assert.equal(users.mayHave('eve@localhost'), true, 'the read failed: anyone may');
  await new Promise((resolve) => setImmediate(resolve));
  fail = false;
  assert.equal(users.mayHave('eve@localhost'), false, 'read again, and listed');
  assert.equal(users.mayHave('dee@localhost'), true);
  assert.equal(reads, 2);
});
