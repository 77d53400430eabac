import assert from 'node:assert/strict';
import { beforeEach, afterEach, describe, test, mock } from 'node:test';
import { createLogger } from '../../src/log/index.js';
import { PublicationStore, type PublishOutcome, type PublishedDocument } from '../../src/presence/publications.js';
import { CLOSED, OPEN, type PresenceState, buildPidf } from '../../src/presence/index.js';
import { StoreError, openStore, type PresenceStore, type Store } from '../../src/store/index.js';

const BUSY = { basic: 'open' as const, notes: ['busy'], activities: [] };
const LIMITS = { minExpires: 60, maxExpires: 3600, defaultExpires: 1800, maxPublicationsPerPresentity: 3, maxPublications: 5 };
const silent = createLogger('silent');

function body(state: PresenceState): PublishedDocument {
  return { document: buildPidf('sip:bob@localhost', state), state };
}

/** Lets the expiries that timers started run to their end. */
function settled(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('publications (RFC 3903 entity tags and expiry)', () => {
  let db: Store;
  let store: PublicationStore;
  let expired: string[];

  beforeEach(async () => {
    db = await openStore('sqlite::memory:');
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    expired = [];
    store = new PublicationStore(LIMITS, db.presence, (aor) => expired.push(aor), silent);
  });
  afterEach(async () => {
    store.stop();
    mock.timers.reset();
    await db.close();
  });

  /** The expiry and entity tag of an accepted publication; fails on anything else. */
  async function accepted(outcome: Promise<PublishOutcome>): Promise<{ expires: number; etag: string }> {
    const result = await outcome;
    assert.ok(result.status === 200 && result.etag, `not accepted: ${JSON.stringify(result)}`);
    return { expires: result.expires, etag: result.etag };
  }
  const tagOf = async (outcome: Promise<PublishOutcome>) => (await accepted(outcome)).etag;

  test('an initial publication gets an entity tag and the default expiry; a longer one is cut to the maximum', async () => {
    assert.equal((await accepted(store.publish('bob@localhost', { body: body(OPEN) }))).expires, 1800);
    assert.equal((await accepted(store.publish('bob@localhost', { body: body(BUSY), expires: 100000 }))).expires, 3600);
    assert.deepEqual(store.statesOf('bob@localhost'), [OPEN, BUSY]);
  });

  test('an initial publication needs a body', async () => {
    assert.deepEqual(await store.publish('bob@localhost', {}), { status: 400, reason: 'Bad Request (a new publication needs a body)' });
  });

  test('an expiry shorter than the minimum is 423, 0 is not', async () => {
    assert.deepEqual(await store.publish('bob@localhost', { body: body(OPEN), expires: 59 }), { status: 423, minExpires: 60 });
    assert.deepEqual(await store.publish('bob@localhost', { body: body(OPEN), expires: 0 }), { status: 200, expires: 0 });
    assert.deepEqual(store.statesOf('bob@localhost'), []);
  });

  test('a refresh without a body keeps the state and gets a new tag; the old tag is then unknown (412)', async () => {
    const etag = await tagOf(store.publish('bob@localhost', { body: body(BUSY) }));
    const refreshed = await tagOf(store.publish('bob@localhost', { ifMatch: etag, expires: 600 }));
    assert.notEqual(refreshed, etag);
    assert.deepEqual(store.statesOf('bob@localhost'), [BUSY]);
    assert.equal((await store.publish('bob@localhost', { ifMatch: etag })).status, 412);
  });

  test('a modification replaces the state in place, so the order of publications stays', async () => {
    const desk = await tagOf(store.publish('bob@localhost', { body: body(BUSY) }));
    await tagOf(store.publish('bob@localhost', { body: body(OPEN) }));
    await tagOf(store.publish('bob@localhost', { ifMatch: desk, body: body(CLOSED) }));
    assert.deepEqual(store.statesOf('bob@localhost'), [CLOSED, OPEN]);
  });

  test('a tag is only good for its own presentity', async () => {
    const etag = await tagOf(store.publish('bob@localhost', { body: body(OPEN) }));
    assert.deepEqual(await store.publish('alice@localhost', { ifMatch: etag }), { status: 412, reason: 'Conditional Request Failed' });
    assert.equal((await store.publish('bob@localhost', { ifMatch: 'never-issued' })).status, 412);
  });

  test('412 comes before 423 (RFC 3903 §6 steps 4 and 5)', async () => {
    assert.equal((await store.publish('bob@localhost', { ifMatch: 'never-issued', expires: 1 })).status, 412);
  });

  test('Expires: 0 with the tag removes the publication', async () => {
    const etag = await tagOf(store.publish('bob@localhost', { body: body(OPEN) }));
    assert.deepEqual(await store.publish('bob@localhost', { ifMatch: etag, expires: 0 }), { status: 200, expires: 0 });
    assert.deepEqual(store.statesOf('bob@localhost'), []);
    assert.equal((await store.publish('bob@localhost', { ifMatch: etag })).status, 412);
  });

  test('a publication expires unless refreshed, and the refresh restarts its clock', async () => {
    const etag = await tagOf(store.publish('bob@localhost', { body: body(OPEN), expires: 60 }));
    mock.timers.tick(59_000);
    await tagOf(store.publish('bob@localhost', { ifMatch: etag, expires: 60 }));
    mock.timers.tick(59_000);
    await settled();
    assert.deepEqual(expired, []);
    assert.deepEqual(store.statesOf('bob@localhost'), [OPEN]);
    mock.timers.tick(1_000);
    await settled();
    assert.deepEqual(expired, ['bob@localhost']);
    assert.deepEqual(store.statesOf('bob@localhost'), []);
  });

  test('a presentity has at most maxPublicationsPerPresentity: a further new one gets 503 until the first expires; updates still pass', async () => {
    const first = await tagOf(store.publish('bob@localhost', { body: body(OPEN), expires: 600 }));
    mock.timers.tick(100_000);
    await store.publish('bob@localhost', { body: body(BUSY) });
    const third = await tagOf(store.publish('bob@localhost', { body: body(CLOSED) }));
    assert.deepEqual(await store.publish('bob@localhost', { body: body(OPEN) }), {
      status: 503,
      reason: 'Service Unavailable (too many publications for this presentity)',
      retryAfter: 500,
    });
    assert.equal((await store.publish('bob@localhost', { ifMatch: third, body: body(OPEN) })).status, 200, 'a modification is no new publication');
    await accepted(store.publish('alice@localhost', { body: body(OPEN) }));
    mock.timers.tick(500_000);
    await settled();
    assert.deepEqual(expired, ['bob@localhost']);
    assert.equal((await store.publish('bob@localhost', { ifMatch: first, body: body(OPEN) })).status, 412);
    await accepted(store.publish('bob@localhost', { body: body(OPEN) }));
  });

  test('at most maxPublications in all, new ones being written included: a further new one gets 503; a removal frees a place', async () => {
    const pending = ['a', 'b', 'c', 'd', 'e'].map((user) => tagOf(store.publish(`${user}@localhost`, { body: body(OPEN) })));
    assert.deepEqual(await store.publish('f@localhost', { body: body(OPEN) }), { status: 503, reason: 'Service Unavailable (too many publications)', retryAfter: 60 });
    const tags = await Promise.all(pending);
    assert.equal((await store.publish('a@localhost', { ifMatch: tags[0], expires: 0 })).status, 200);
    await accepted(store.publish('f@localhost', { body: body(OPEN) }));
  });

  test('what was acknowledged is taken back by the next run: same order, same tags, same expiry; removed and expired ones are not', async () => {
    const desk = await tagOf(store.publish('bob@localhost', { body: body(BUSY), expires: 600 }));
    const phone = await tagOf(store.publish('bob@localhost', { body: body(CLOSED), expires: 600 }));
    const gone = await tagOf(store.publish('carol@localhost', { body: body(OPEN), expires: 600 }));
    await store.publish('carol@localhost', { ifMatch: gone, expires: 0 });
    await accepted(store.publish('dave@localhost', { body: body(OPEN), expires: 60 }));
    store.stop();
    mock.timers.tick(100_000);

    const next = new PublicationStore(LIMITS, db.presence, (aor) => expired.push(aor), silent);
    next.restore((await db.presence.loadPresence(Date.now())).publications);
    assert.deepEqual(next.statesOf('bob@localhost'), [BUSY, CLOSED]);
    assert.deepEqual(next.statesOf('carol@localhost'), []);
    assert.deepEqual(next.statesOf('dave@localhost'), []);
    assert.equal((await next.publish('bob@localhost', { ifMatch: desk, expires: 600 })).status, 200);
    mock.timers.tick(500_000);
    await settled();
    assert.deepEqual(next.statesOf('bob@localhost'), [BUSY], 'the other publication expired when it would have');
    assert.equal((await next.publish('bob@localhost', { ifMatch: phone })).status, 412);
    next.stop();
  });

  test('an expiry timer that fires before Date.now() reaches the expiry is waited for again, and the publication still expires', async (t) => {
    // Node's timers keep another clock than Date.now() and fire up to a millisecond early by it. Here the
    // timers run on the mocked clock and Date.now() is the real one: the first tick fires the expiry
    // while Date.now() is still a minute short of it.
    mock.timers.reset();
    mock.timers.enable({ apis: ['setTimeout'] });
    await accepted(store.publish('bob@localhost', { body: body(OPEN), expires: 60 }));
    mock.timers.tick(60_000);
    await settled();
    assert.deepEqual(expired, [], 'expired before its time');
    assert.deepEqual(store.statesOf('bob@localhost'), [OPEN]);
    const pastExpiry = Date.now() + 61_000;
    t.mock.method(Date, 'now', () => pastExpiry);
    mock.timers.tick(60_000);
    await settled();
    assert.deepEqual(expired, ['bob@localhost'], 'never expired');
    assert.deepEqual(store.statesOf('bob@localhost'), []);
  });

  test('a store that cannot take the write fails the PUBLISH and changes nothing', async () => {
    const etag = await tagOf(store.publish('bob@localhost', { body: body(BUSY) }));
    const down = Object.create(db.presence) as PresenceStore;
    const unavailable = () => Promise.reject(new StoreError('UNAVAILABLE', 'Store unavailable: test'));
    down.updatePublication = unavailable;
    down.addPublication = unavailable;
    const failing = new PublicationStore({ ...LIMITS, maxPublications: 1 }, down, () => {}, silent);
    failing.restore((await db.presence.loadPresence(Date.now())).publications);
    await assert.rejects(failing.publish('bob@localhost', { ifMatch: etag, body: body(OPEN) }), { code: 'UNAVAILABLE' });
    assert.deepEqual(failing.statesOf('bob@localhost'), [BUSY]);
    assert.equal((await store.publish('bob@localhost', { ifMatch: etag })).status, 200, 'the tag is still good');
    failing.stop();
  });
});
