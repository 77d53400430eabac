// `parley import-purplemap`: a Kamailio purple account map, from a mysqldump (test/fixtures/kamailio/
// purplemap.sql) or a SQLite database, copied into Parley's with the passwords sealed; what cannot
// be imported is reported, never with a password.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { SecretBox, sealContext } from '../../src/gateway/index.js';
import { insertedRows } from '../../src/store/mysql-dump.js';
import { openStore, type GatewayAccount, type GatewayAccountStore } from '../../src/store/index.js';
import { parley, ROOT } from '../support/cli.js';

const KEY = 'a-test-key-of-some-length';
const DUMP = join(ROOT, 'test', 'fixtures', 'kamailio', 'purplemap.sql');
/** Every ext_pass of the dump. */
const PASSWORDS = ['Xmpp-Secret-4711', 'it\'s; a "quoted" \\ pass),(word\n2', 'carol-pw', 'erin-pw', 'another-pw', 'frank-new-pw', 'gina-pw', 'harry-pw'];

delete process.env.PARLEY_GATEWAY_KEY;

const dir = mkdtempSync(join(tmpdir(), 'parley-import-purplemap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function setUp(name: string): { config: string; database: string } {
  const database = `sqlite:${join(dir, `${name}.db`)}`;
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, `domains: [localhost]\ndatabase: ${database}\ngateway:\n  secret_key: ${KEY}\n`);
  return { config, database };
}

async function withAccounts<T>(database: string, use: (accounts: GatewayAccountStore) => Promise<T>): Promise<T> {
  const store = await openStore(database);
  try {
    return await use(store.gatewayAccounts);
  } finally {
    await store.close();
  }
}

const passwordOf = (account: GatewayAccount) => new SecretBox(KEY).open(account.extPass!, sealContext(account));

describe('parley import-purplemap', () => {
  const { config, database } = setUp('dump');
  let firstRun = '';

  test('imports a mysqldump: seed protocols mapped, passwords sealed, the rest reported', async () => {
    // An account Parley has already: the import leaves it as it is.
    await withAccounts(database, (accounts) =>
      accounts.put({ sipUser: 'sip:frank@localhost', extProt: 'xmpp', extUser: 'frank@xmpp.test', extPass: new SecretBox(KEY).seal('frank-old-pw', sealContext({ sipUser: 'sip:frank@localhost', extProt: 'xmpp', extUser: 'frank@xmpp.test' })), tls: 'starttls' }),
    );
    const outcome = await parley(['import-purplemap', '--from', `dump:${DUMP}`, '--config', config]);
    assert.equal(outcome.code, 0, outcome.stderr);
    firstRun = outcome.stdout;
    const lines = outcome.stdout.trimEnd().split('\n');
    // gina's prpl-irc row goes in when this build serves IRC with such account names.
    const irc = lines.some((line) => line.startsWith('skipped row 8 ')) ? 0 : 1;
    assert.equal(lines[0], `imported ${3 + irc} accounts of 9 rows from dump:${DUMP}; skipped ${6 - irc} rows`);
    assert.deepEqual(lines.filter((line) => !line.startsWith('skipped row 8 ')).slice(1), [
      'skipped row 3 (sip:carol@localhost prpl-msn carol@msn.example): unknown network "prpl-msn" (served here: ' + /served here: ([^)]*)\)/.exec(outcome.stdout)![1] + ')',
      'skipped row 4 (sip:dave@localhost prpl-jabber dave@xmpp.test): the password is empty',
      'skipped row 5 (sip:erin@elsewhere.org prpl-jabber erin@xmpp.test): elsewhere.org is not one of the domains served here (localhost)',
      'skipped row 6 (sip:alice@localhost jabber alice@xmpp.test): Parley has this account already, as number 2',
      'skipped row 7 (sip:frank@localhost prpl-jabber frank@xmpp.test): Parley has this account already, as number 1',
    ]);
    if (!irc) assert.match(lines.find((line) => line.startsWith('skipped row 8 '))!, /irc/);
    for (const secret of PASSWORDS) assert.ok(!outcome.stdout.includes(secret) && !outcome.stderr.includes(secret), `the output shows ${secret}`);

    const accounts = await withAccounts(database, (map) => map.list());
    const xmpp = accounts.filter((a) => a.extProt === 'xmpp');
    assert.deepEqual(
      xmpp.map((a) => [a.sipUser, a.extUser, a.tls, a.enabled, passwordOf(a)]),
      [
        ['sip:frank@localhost', 'frank@xmpp.test', 'starttls', true, 'frank-old-pw'],
        ['sip:alice@localhost', 'alice@xmpp.test', 'starttls', true, 'Xmpp-Secret-4711'],
        ['sip:bob@localhost', 'bob@xmpp.test', 'starttls', true, 'it\'s; a "quoted" \\ pass),(word\n2'],
        ['sip:harry@localhost', 'harry@xmpp.test', 'starttls', true, 'harry-pw'],
      ],
    );
    for (const account of accounts) assert.ok(!PASSWORDS.some((secret) => account.extPass!.includes(secret)));
  });

  test('a second run imports nothing and reports every row it leaves', async () => {
    const outcome = await parley(['import-purplemap', '--from', `dump:${DUMP}`, '--config', config]);
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.match(outcome.stdout, /^imported 0 accounts of 9 rows .*; skipped 9 rows\n/);
    assert.match(outcome.stdout, /skipped row 1 \(sip:alice@localhost prpl-jabber alice@xmpp\.test\): Parley has this account already, as number 2\n/);
    assert.notEqual(outcome.stdout, firstRun);
  });

  test('a source that cannot be read is an error; so is a bad command line', async () => {
    const broken = join(dir, 'broken.sql');
    writeFileSync(broken, "-- cut short\nINSERT INTO `purplemap` VALUES (1,'sip:a@localhost','a@xmpp.test','xmpp','abc);\n");
    const cases: Array<[string[], number, RegExp]> = [
      [['--from', `dump:${broken}`], 1, /the dump .*broken\.sql cannot be read: line 2: expected the closing '/],
      [['--from', `dump:${join(dir, 'missing.sql')}`], 1, /cannot read the dump .*missing\.sql \(ENOENT\)/],
      [['--from', `sqlite:${join(dir, 'missing.db')}`], 1, /Cannot open SQLite database/],
      [[], 2, /missing --from SOURCE/],
      [['--from', `dump:${DUMP}`, '--table', 'purplemap; drop'], 2, /--table expects an SQL table name/],
    ];
    for (const [args, code, message] of cases) {
      const outcome = await parley(['import-purplemap', ...args, '--config', config]);
      assert.equal(outcome.code, code, args.join(' '));
      assert.match(outcome.stderr, message, args.join(' '));
    }
  });
});

test('import-purplemap reads a Kamailio SQLite database, any table name, into gateway.db_table', async () => {
  const source = join(dir, 'kamailio.db');
  const kamailio = new SqliteDatabase(source);
  // db_sqlite's purple-create.sql, under the name the seed's db_table gives it.
  kamailio.exec(`
    CREATE TABLE accounts_map (id INTEGER PRIMARY KEY NOT NULL, sip_user VARCHAR(128) NOT NULL, ext_user VARCHAR(128) NOT NULL,
      ext_prot VARCHAR(16) NOT NULL, ext_pass VARCHAR(64));
    INSERT INTO accounts_map (sip_user, ext_user, ext_prot, ext_pass) VALUES
      ('sip:alice@localhost', 'alice@xmpp.test', 'prpl-jabber', 'alice-pw'),
      ('sip:bob@localhost', 'bob@xmpp.test', 'prpl-yahoo', 'bob-pw');
  `);
  kamailio.close();
  const before = readFileSync(source);
  const database = `sqlite:${join(dir, 'custom.db')}`;
  const config = join(dir, 'custom.yaml');
  writeFileSync(config, `domains: [localhost]\ndatabase: ${database}\ngateway:\n  secret_key: ${KEY}\n  db_table: linked_accounts\n`);
  const outcome = await parley(['import-purplemap', '--from', `sqlite:${source}`, '--table', 'accounts_map', '--config', config]);
  assert.equal(outcome.code, 0, outcome.stderr);
  assert.match(outcome.stdout, /^imported 1 account of 2 rows from sqlite:.*; skipped 1 row\nskipped row 2 \(sip:bob@localhost prpl-yahoo bob@xmpp\.test\): unknown network "prpl-yahoo"/);
  const store = await openStore(database);
  try {
    const [alice] = await (await store.gatewayAccountsIn('linked_accounts')).list();
    assert.equal(passwordOf(alice!), 'alice-pw');
    assert.deepEqual(await store.gatewayAccounts.list(), []);
  } finally {
    await store.close();
  }
  assert.deepEqual(readFileSync(source), before, 'the source is only read');
});

describe('mysqldump reading', () => {
  const rows = (sql: string) => insertedRows(sql, 't', ['a', 'b']).map((row) => Object.fromEntries(row));

  test('quoted strings with backslash escapes and doubled quotes, NULL, numbers, hex, introducers', () => {
    assert.deepEqual(rows("INSERT INTO `t` VALUES (1,'x\\0y\\n\\r\\t\\Z\\b\\\\\\'\\\"\\%'),(-2.5e1,NULL),(0x414243,_utf8mb4'd''e'),(3,\"f\\\"g\");"), [
      { a: 1, b: 'x\0y\n\r\t\x1a\b\\\'"%' },
      { a: -25, b: null },
      { a: 'ABC', b: "d'e" },
      { a: 3, b: 'f"g' },
    ]);
  });

  test('other tables, comments, strings holding ";" or INSERT, column lists, db.table names', () => {
    const sql = [
      "/*!40101 SET NAMES utf8 */; -- INSERT INTO t VALUES (9,9);",
      "# a comment; INSERT INTO t VALUES (8,8);",
      "INSERT INTO `u` VALUES (1,'; INSERT INTO t VALUES (7,7);');",
      "INSERT IGNORE INTO `db`.`t` (`b`,`a`) VALUES ('first',1);",
      "REPLACE INTO t VALUES (2,'two') ;",
      "INSERT INTO t VALUES (3,'x') ON DUPLICATE KEY UPDATE b='y; z';",
    ].join('\n');
    assert.deepEqual(rows(sql), [{ b: 'first', a: 1 }, { a: 2, b: 'two' }, { a: 3, b: 'x' }]);
  });

  test('what cannot be read is said with its line', () => {
    assert.throws(() => rows("INSERT INTO t VALUES (1,'a'),\n(2,b'1');"), /line 2: expected a value \(NULL, a number or a quoted string\), found "b'1'\);"/);
    assert.throws(() => rows('INSERT INTO t VALUES (1,2,3);'), /at most 2 values in a row of t/);
    assert.throws(() => rows('INSERT INTO t SET a=1;'), /line 1: expected VALUES/);
  });
});
