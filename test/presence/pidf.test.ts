import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CLOSED, OPEN, PidfError, buildPidf, composeStates, parsePidf, sameState } from '../../src/presence/index.js';
import { pidf } from '../support/presence.js';

describe('PIDF parsing', () => {
  test('basic status and the tuple note', () => {
    assert.deepEqual(parsePidf(pidf('sip:bob@localhost', 'open', { note: 'in a meeting' })), {
      basic: 'open',
      notes: ['in a meeting'],
      activities: [],
    });
    assert.deepEqual(parsePidf(pidf('sip:bob@localhost', 'closed')), CLOSED);
  });

  test('RPID activities in a data-model person, with prefixes other than the usual ones', () => {
    const xml = `<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:x="urn:ietf:params:xml:ns:pidf:rpid"
        xmlns:d="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:bob@localhost">
      <p:tuple id="a"><p:status><p:basic>open</p:basic></p:status></p:tuple>
      <d:person id="b"><x:activities><x:busy/><x:on-the-phone/><x:other>knitting</x:other></x:activities><d:note>call later</d:note></d:person>
    </p:presence>`;
    assert.deepEqual(parsePidf(xml), { basic: 'open', notes: ['call later'], activities: ['busy', 'on-the-phone', 'knitting'] });
  });

  test('several tuples: any open one makes the presentity open; notes are trimmed, empty and repeated ones dropped', () => {
    const xml = `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@localhost">
      <tuple id="desk"><status><basic>closed</basic></status><note> away </note></tuple>
      <tuple id="phone"><status><basic>open</basic></status><note>away</note><note> </note></tuple>
      <note>presence-level &amp; escaped</note>
    </presence>`;
    assert.deepEqual(parsePidf(xml), { basic: 'open', notes: ['away', 'presence-level & escaped'], activities: [] });
  });

  test('a document without any <basic> is closed', () => {
    assert.equal(parsePidf('<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>').basic, 'closed');
  });

  test('what is not PIDF is refused with a PidfError', () => {
    for (const bad of [
      '',
      'not xml at all',
      '<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple>',
      '<presence xmlns="urn:ietf:params:xml:ns:pidf">&bogus;</presence>',
      '<presence entity="sip:a@b"/>',
      '<status xmlns="urn:ietf:params:xml:ns:pidf"/>',
      pidf('sip:a@b', 'open').replace('>open<', '>maybe<'),
    ]) {
      assert.throws(() => parsePidf(bad), PidfError, bad);
    }
  });

  test('regression: a document nested 8,000 deep is refused with a PidfError, not a stack overflow', () => {
    // Was (found by the semantic fuzzer): the recursive search for <note> and activities overflowed the
    // stack on a deep document; the RangeError became a 500 and a 'request failed' error in the log.
    for (const name of ['x', 'note']) {
      const deep = pidf('sip:a@b', 'open').replace('</tuple>', `${`<${name}>`.repeat(8000)}deep${`</${name}>`.repeat(8000)}</tuple>`);
      assert.throws(() => parsePidf(deep), (error: unknown) => error instanceof PidfError && /nested deeper than \d+ elements/.test(error.message), name);
    }
    const sane = pidf('sip:a@b', 'open').replace('</tuple>', `${'<x>'.repeat(20)}${'</x>'.repeat(20)}</tuple>`);
    assert.equal(parsePidf(sane).basic, 'open');
  });
});

describe('PIDF building', () => {
  test('what is built parses back to the same state, text escaped', () => {
    const state = { basic: 'open' as const, notes: ['<lunch> & "tea"'], activities: ['meal', 'reading a book'] };
    const xml = buildPidf('sip:bob@localhost', state);
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>/);
    assert.match(xml, /entity="sip:bob@localhost"/);
    assert.match(xml, /<rpid:meal\/>/);
    assert.match(xml, /<rpid:other>reading a book<\/rpid:other>/, 'an activity RPID does not name travels as <other>');
    assert.deepEqual(parsePidf(xml), state);
    assert.deepEqual(parsePidf(buildPidf('sip:bob@localhost', CLOSED)), CLOSED);
  });
});

describe('composition', () => {
  test('any open publication makes the presentity open; notes and activities are combined in order', () => {
    const composed = composeStates([
      { basic: 'closed', notes: ['desk: gone home'], activities: ['away'] },
      { basic: 'open', notes: ['mobile: on the road', 'desk: gone home'], activities: ['travel', 'away'] },
    ]);
    assert.deepEqual(composed, { basic: 'open', notes: ['desk: gone home', 'mobile: on the road'], activities: ['away', 'travel'] });
    assert.equal(composeStates([CLOSED, CLOSED]).basic, 'closed');
  });

  test('sameState compares every field', () => {
    assert.ok(sameState(OPEN, { basic: 'open', notes: [], activities: [] }));
    assert.ok(!sameState(OPEN, CLOSED));
    assert.ok(!sameState(OPEN, { ...OPEN, notes: ['x'] }));
    assert.ok(!sameState({ ...OPEN, activities: ['a', 'b'] }, { ...OPEN, activities: ['b', 'a'] }));
  });
});
