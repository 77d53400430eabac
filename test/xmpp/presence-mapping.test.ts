// The presence mapping of the XMPP gateway (RFC 7248) on its own: <show/> and <status/> to PIDF
// state and back, and which XMPP threads can be Call-IDs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import xml from '@xmpp/xml';
import { callIdOfThread } from '../../src/xmpp/messages.js';
import { showOfActivities, stanzaOfState, stateOfStanza } from '../../src/xmpp/presence.js';

describe('XMPP presence to PIDF state', () => {
  const presence = (attrs: Record<string, string>, show?: string, status?: string) =>
    xml('presence', attrs, show !== undefined && xml('show', {}, show), status !== undefined && xml('status', {}, status));

  test('available, with each <show/>', () => {
    assert.deepEqual(stateOfStanza(presence({})), { basic: 'open', notes: [], activities: [] });
    assert.deepEqual(stateOfStanza(presence({}, 'chat')), { basic: 'open', notes: [], activities: [] });
    assert.deepEqual(stateOfStanza(presence({}, 'away', 'Back soon')), { basic: 'open', notes: ['Back soon'], activities: ['away'] });
    assert.deepEqual(stateOfStanza(presence({}, 'xa')), { basic: 'open', notes: [], activities: ['away', 'extended-away'] });
    assert.deepEqual(stateOfStanza(presence({}, 'dnd')), { basic: 'open', notes: [], activities: ['busy'] });
    assert.deepEqual(stateOfStanza(presence({}, 'sleepy')), { basic: 'open', notes: [], activities: [] });
  });

  test('unavailable keeps its status as a note', () => {
    assert.deepEqual(stateOfStanza(presence({ type: 'unavailable' }, undefined, ' Logged out ')), { basic: 'closed', notes: ['Logged out'], activities: [] });
  });
});

describe('PIDF state to XMPP presence', () => {
  const attrs = { from: 'alice*localhost@sip.xmpp.test', to: 'romeo@xmpp.test' };

  test('activities pick the <show/>: dnd over xa over away', () => {
    assert.equal(showOfActivities([]), undefined);
    assert.equal(showOfActivities(['working']), undefined);
    assert.equal(showOfActivities(['meal']), 'away');
    assert.equal(showOfActivities(['away', 'extended-away']), 'xa');
    assert.equal(showOfActivities(['vacation', 'away']), 'xa');
    assert.equal(showOfActivities(['away', 'on-the-phone']), 'dnd');
  });

  test('open with notes and activities, closed, and XML specials', () => {
    const open = stanzaOfState({ basic: 'open', notes: ['In a meeting', '<until> 3 & later'], activities: ['meeting'] }, attrs);
    assert.equal(open.toString(), `<presence from="${attrs.from}" to="${attrs.to}"><show>dnd</show><status>In a meeting\n&lt;until&gt; 3 &amp; later</status></presence>`);
    const closed = stanzaOfState({ basic: 'closed', notes: [], activities: ['away'] }, attrs);
    assert.equal(closed.toString(), `<presence from="${attrs.from}" to="${attrs.to}" type="unavailable"/>`);
    assert.equal(stanzaOfState({ basic: 'open', notes: [], activities: [] }, attrs).toString(), `<presence from="${attrs.from}" to="${attrs.to}"/>`);
  });
});

describe('threads as Call-IDs', () => {
  test('a thread that is a Call-ID is one; others are not', () => {
    assert.equal(callIdOfThread('abc123@host.example'), 'abc123@host.example');
    assert.equal(callIdOfThread('e0ffe42b28561960c6b12b944a092794b9683a38'), 'e0ffe42b28561960c6b12b944a092794b9683a38');
    assert.equal(callIdOfThread(undefined), undefined);
    assert.equal(callIdOfThread(''), undefined);
    assert.equal(callIdOfThread('two words'), undefined);
    assert.equal(callIdOfThread('a@b@c'), undefined);
    assert.equal(callIdOfThread('line\r\nbreak'), undefined);
    assert.equal(callIdOfThread('é'), undefined);
    assert.equal(callIdOfThread('x'.repeat(257)), undefined);
  });
});
