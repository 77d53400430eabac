// Passwords of linked accounts at rest: AES-256-GCM, bound to the account, unreadable with another key.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SecretBox, sealContext } from '../../src/gateway/secrets.js';
import { networkOf } from '../../src/gateway/protocols.js';
import { parseGatewayCommand } from '../../src/gateway/commands.js';

const account = { sipUser: 'sip:alice@example.com', extProt: 'xmpp', extUser: 'alice@example.net' };

test('a sealed password opens with the same key and account only', () => {
  const box = new SecretBox('a key of sixteen+ characters');
  const sealed = box.seal('pässword 1', sealContext(account));
  assert.match(sealed, /^v1\.[A-Za-z0-9_-]+$/);
  assert.ok(!sealed.includes('pässword'));
  assert.notEqual(box.seal('pässword 1', sealContext(account)), sealed, 'a fresh IV each time');
  assert.equal(box.open(sealed, sealContext(account)), 'pässword 1');
  assert.throws(() => box.open(sealed, sealContext({ ...account, extUser: 'mallory@example.net' })), /does not open/);
  assert.throws(() => new SecretBox('another key, sixteen+').open(sealed, sealContext(account)), /does not open/);
  // One character of the tag changed (its last but one: every bit of it is the tag's).
  const tampered = `${sealed.slice(0, -2)}${sealed.at(-2) === 'A' ? 'B' : 'A'}${sealed.slice(-1)}`;
  assert.throws(() => box.open(tampered, sealContext(account)));
  assert.throws(() => new SecretBox('short'), /at least 16/);
});

test('protocol ids of the seeds are aliases', () => {
  assert.equal(networkOf('prpl-jabber'), 'xmpp');
  assert.equal(networkOf('GTALK'), 'xmpp');
  assert.equal(networkOf('prpl-irc'), 'irc');
  assert.equal(networkOf('prpl-msn'), undefined);
});

test('commands parse with usage errors', () => {
  assert.deepEqual(parseGatewayCommand('#link xmpp a@b.c pw'), { ok: true, command: { name: 'link', args: ['xmpp', 'a@b.c', 'pw'], syntax: '#link <network> <account> <password> [host[:port]] [tls=starttls|direct|none]' } });
  const missing = parseGatewayCommand('#link xmpp a@b.c');
  assert.ok(!missing.ok && /missing argument; usage: #link/.test(missing.error));
  const plain = parseGatewayCommand('hello');
  assert.ok(!plain.ok && /commands only/.test(plain.error));
});
