import assert from 'node:assert/strict';
import { beforeEach, afterEach, describe, test, mock } from 'node:test';
import { PublicationStore, type PublishOutcome } from '../../src/presence/publications.js';
import { CLOSED, OPEN } from '../../src/presence/index.js';

const BUSY = { basic: 'open' as const, notes: ['busy'], activities: [] };

describe('publications (RFC 3903 entity tags and expiry)', () => {
  let store: PublicationStore;
  let expired: string[];

  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    expired = [];
    store = new PublicationStore(
      { minExpires: 60, maxExpires: 3600, defaultExpires: 1800, maxPublicationsPerPresentity: 3, maxPublications: 5 },
      (aor) => expired.push(aor),
    );
  });
  afterEach(() => {
    store.clear();
    mock.timers.reset();
  });

  /** The expiry and entity tag of an accepted publication; fails on anything else. */
  function accepted(outcome: PublishOutcome): { expires: number; etag: string } {
    assert.ok(outcome.status === 200 && outcome.etag, `not accepted: ${JSON.stringify(outcome)}`);
    return { expires: outcome.expires, etag: outcome.etag };
  }
  const tagOf = (outcome: PublishOutcome) => accepted(outcome).etag;

  test('an initial publication gets an entity tag and the default expiry; a longer one is cut to the maximum', () => {
    assert.equal(accepted(store.publish('bob@localhost', { state: OPEN })).expires, 1800);
    assert.equal(accepted(store.publish('bob@localhost', { state: BUSY, expires: 100000 })).expires, 3600);
    assert.deepEqual(store.statesOf('bob@localhost'), [OPEN, BUSY]);
  });

  test('an initial publication needs a body', () => {
    assert.deepEqual(store.publish('bob@localhost', {}), { status: 400, reason: 'Bad Request (a new publication needs a body)' });
  });

  test('an expiry shorter than the minimum is 423, 0 is not', () => {
    assert.deepEqual(store.publish('bob@localhost', { state: OPEN, expires: 59 }), { status: 423, minExpires: 60 });
    assert.deepEqual(store.publish('bob@localhost', { state: OPEN, expires: 0 }), { status: 200, expires: 0 });
    assert.deepEqual(store.statesOf('bob@localhost'), []);
  });

  test('a refresh without a body keeps the state and gets a new tag; the old tag is then unknown (412)', () => {
    const etag = tagOf(store.publish('bob@localhost', { state: BUSY }));
    const refreshed = tagOf(store.publish('bob@localhost', { ifMatch: etag, expires: 600 }));
    assert.notEqual(refreshed, etag);
    assert.deepEqual(store.statesOf('bob@localhost'), [BUSY]);
    assert.equal(store.publish('bob@localhost', { ifMatch: etag }).status, 412);
  });

  test('a modification replaces the state in place, so the order of publications stays', () => {
    const desk = tagOf(store.publish('bob@localhost', { state: BUSY }));
    tagOf(store.publish('bob@localhost', { state: OPEN }));
    tagOf(store.publish('bob@localhost', { ifMatch: desk, state: CLOSED }));
    assert.deepEqual(store.statesOf('bob@localhost'), [CLOSED, OPEN]);
  });

  test('a tag is only good for its own presentity', () => {
    const etag = tagOf(store.publish('bob@localhost', { state: OPEN }));
    assert.deepEqual(store.publish('alice@localhost', { ifMatch: etag }), { status: 412, reason: 'Conditional Request Failed' });
    assert.equal(store.publish('bob@localhost', { ifMatch: 'never-issued' }).status, 412);
  });

  test('412 comes before 423 (RFC 3903 §6 steps 4 and 5)', () => {
    assert.equal(store.publish('bob@localhost', { ifMatch: 'never-issued', expires: 1 }).status, 412);
  });

  test('Expires: 0 with the tag removes the publication', () => {
    const etag = tagOf(store.publish('bob@localhost', { state: OPEN }));
    assert.deepEqual(store.publish('bob@localhost', { ifMatch: etag, expires: 0 }), { status: 200, expires: 0 });
    assert.deepEqual(store.statesOf('bob@localhost'), []);
    assert.equal(store.publish('bob@localhost', { ifMatch: etag }).status, 412);
  });

  test('a publication expires unless refreshed, and the refresh restarts its clock', () => {
    const etag = tagOf(store.publish('bob@localhost', { state: OPEN, expires: 60 }));
    mock.timers.tick(59_000);
    tagOf(store.publish('bob@localhost', { ifMatch: etag, expires: 60 }));
    mock.timers.tick(59_000);
    assert.deepEqual(expired, []);
    assert.deepEqual(store.statesOf('bob@localhost'), [OPEN]);
    mock.timers.tick(1_000);
    assert.deepEqual(expired, ['bob@localhost']);
    assert.deepEqual(store.statesOf('bob@localhost'), []);
  });

  test('a presentity has at most maxPublicationsPerPresentity: a further new one gets 503 until the first expires; updates still pass', () => {
    const first = tagOf(store.publish('bob@localhost', { state: OPEN, expires: 600 }));
    mock.timers.tick(100_000);
    store.publish('bob@localhost', { state: BUSY });
    const third = tagOf(store.publish('bob@localhost', { state: CLOSED }));
    assert.deepEqual(store.publish('bob@localhost', { state: OPEN }), {
      status: 503,
      reason: 'Service Unavailable (too many publications for this presentity)',
      retryAfter: 500,
    });
    assert.equal(store.publish('bob@localhost', { ifMatch: third, state: OPEN }).status, 200, 'a modification is no new publication');
    accepted(store.publish('alice@localhost', { state: OPEN }));
    mock.timers.tick(500_000);
    assert.deepEqual(expired, ['bob@localhost']);
    assert.equal(store.publish('bob@localhost', { ifMatch: first, state: OPEN }).status, 412);
    accepted(store.publish('bob@localhost', { state: OPEN }));
  });

  test('at most maxPublications in all: a further new one gets 503; a removal frees a place', () => {
    const tags = ['a', 'b', 'c', 'd', 'e'].map((user) => tagOf(store.publish(`${user}@localhost`, { state: OPEN })));
    assert.deepEqual(store.publish('f@localhost', { state: OPEN }), { status: 503, reason: 'Service Unavailable (too many publications)', retryAfter: 60 });
    assert.equal(store.publish('a@localhost', { ifMatch: tags[0], expires: 0 }).status, 200);
    accepted(store.publish('f@localhost', { state: OPEN }));
  });
});
