// A room's address is a URI whatever its name: names come from the text of #create, so they may hold
// what a user part must escape, and every From and reply naming the room must parse back to it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roomUri } from '../../src/imc/rooms.js';
import { parseUri } from '../../src/sip/index.js';

for (const name of ['chat-team', 'chat-%FF%FE', 'chat-50%', 'chat with space', 'chat-é']) {
  test(`the address of room "${name}" parses back to its name`, () => {
    const uri = parseUri(roomUri({ name, domain: 'localhost' }));
    assert.equal(uri.user, name);
    assert.equal(uri.host, 'localhost');
  });
}
