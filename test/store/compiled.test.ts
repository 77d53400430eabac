import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { CompiledGroups, CompiledStatements } from '../../src/store/compiled.js';
import type { Database } from '../../src/store/schema.js';

const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(':memory:') }) });

describe('statements compiled once per shape', () => {
  it('puts each value where kysely would have, in the SQL compiled the first time', () => {
    const statements = new CompiledStatements();
    const build = ([aor, now]: readonly unknown[]) =>
      db.selectFrom('offline_messages').selectAll().where('expires_at', '>', now as number).where('aor', '=', aor as string);
    const first = statements.compile('list', ['alice@example.com', 1], build);
    const second = statements.compile('list', ['bob@example.com', 2], build);
    const direct = build(['bob@example.com', 2]).compile();
    assert.equal(second.sql, direct.sql);
    assert.deepEqual(second.parameters, direct.parameters);
    assert.equal(second.sql, first.sql);
    assert.deepEqual(first.parameters, [1, 'alice@example.com']);
  });

  it('keeps a constant the statement passes as a parameter, and still compiles it once', () => {
    const statements = new CompiledStatements();
    let built = 0;
    const build = ([aor]: readonly unknown[]) => {
      built++;
      return db.selectFrom('offline_messages').selectAll().where('per_device', '=', 0).where('aor', '=', aor as string);
    };
    statements.compile('constant', ['alice@example.com'], build);
    const second = statements.compile('constant', ['bob@example.com'], build);
    assert.deepEqual(second.parameters, build(['bob@example.com']).compile().parameters);
    assert.deepEqual(second.parameters, [0, 'bob@example.com']);
    assert.equal(built, 2, 'once with markers, then only to compare here');
  });

  it('builds anew every time a shape whose values do not all become one parameter each', () => {
    const statements = new CompiledStatements();
    let built = 0;
    const build = ([aor, limit]: readonly unknown[]) => {
      built++;
      return db.selectFrom('offline_messages').selectAll().where('aor', '=', aor as string).limit(sql.lit(limit as number));
    };
    const first = statements.compile('inlined', ['alice@example.com', 5], build);
    const second = statements.compile('inlined', ['bob@example.com', 7], build);
    assert.match(first.sql, /limit 5$/);
    assert.match(second.sql, /limit 7$/);
    assert.deepEqual(second.parameters, ['bob@example.com']);
    assert.equal(built, 3, 'once with markers, then once for each call');
  });
});

describe('statement groups compiled once per shape', () => {
  const build = ([aor, contact, now]: readonly unknown[]) => [
    db.deleteFrom('locations').where('aor', '=', aor as string).where('contact', '!=', contact as string),
    db.insertInto('known_aors').values({ aor: aor as string, first_seen: now as number }),
    db.insertInto('devices').values({ aor: aor as string, device: contact as string, contact: contact as string, user_agent: aor as string, last_seen: now as number }),
  ];

  it('gives each statement the values kysely would have, a value taken by several statements held once', () => {
    const groups = new CompiledGroups();
    let built = 0;
    const counted = (values: readonly unknown[]) => (built++, build(values));
    const first = groups.group('register', ['alice@example.com', 'sip:alice@192.0.2.1', 1], counted);
    const second = groups.group('register', ['bob@example.com', 'sip:bob@192.0.2.2', 2], counted);
    assert.equal(second, first, 'the same group');
    assert.equal(built, 1, 'built once, with markers');
    const values = ['bob@example.com', 'sip:bob@192.0.2.2', 2];
    const direct = build(values).map((query) => query.compile());
    const expanded = second.expand(values);
    assert.deepEqual(expanded.map((query) => [query.sql, query.parameters]), direct.map((query) => [query.sql, query.parameters]));
    assert.equal(second.valueCount, 3);
  });

  it('refuses statements whose SQL holds a value, or whose parameter is none of the values', () => {
    const groups = new CompiledGroups();
    const inlined = ([aor, limit]: readonly unknown[]) => [db.selectFrom('locations').selectAll().where('aor', '=', aor as string).limit(sql.lit(limit as number))];
    assert.throws(() => groups.group('inlined', ['alice@example.com', 5], inlined), /cannot be a group/);
    const constant = ([aor]: readonly unknown[]) => [db.selectFrom('offline_messages').selectAll().where('per_device', '=', 0).where('aor', '=', aor as string)];
    assert.throws(() => groups.group('constant', ['alice@example.com'], constant), /cannot be a group/);
  });
});
