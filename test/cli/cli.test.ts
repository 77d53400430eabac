// Runs the `parley` command as a user would and checks what they would see.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { after, describe, test } from 'node:test';
import { computeHa1 } from '../../src/registrar/credentials.js';
import { openStore } from '../../src/store/index.js';
import { parley, ROOT } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function writeFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('parley', () => {
  test('--help lists the subcommands', async () => {
    const { code, stdout } = await parley(['--help']);
    assert.equal(code, 0);
    for (const command of ['start', 'check-config', 'user', 'cert', 'rpc', 'rooms', 'members', 'import-imc']) assert.match(stdout, new RegExp(`^  ${command} `, 'm'));
  });

  test('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual(await parley(['--version']), { code: 0, stdout: `parley ${version}\n`, stderr: '' });
  });

  test('every subcommand has --help', async () => {
    const commands = [['start'], ['check-config'], ['user'], ['user', 'add'], ['user', 'del'], ['user', 'list'], ['cert'], ['rpc'], ['rooms'], ['members'], ['import-imc']];
    const outcomes = await Promise.all(commands.map((args) => parley([...args, '--help'])));
    commands.forEach((args, i) => {
      assert.equal(outcomes[i].code, 0, args.join(' '));
      assert.match(outcomes[i].stdout, new RegExp(`^Usage: parley ${args.join(' ')} `), args.join(' '));
    });
  });

  test('no subcommand, an unknown one or a bad flag print the usage on stderr, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [[], /missing command/],
      [['serve'], /unknown command "serve"/],
      [['check-config', '--verbose'], /Unknown option '--verbose'/],
      [['user', 'remove', 'a@localhost'], /unknown command "remove"/],
    ];
    const outcomes = await Promise.all(cases.map(([args]) => parley(args)));
    cases.forEach(([args, complaint], i) => {
      const { code, stdout, stderr } = outcomes[i];
      assert.equal(code, 2, args.join(' '));
      assert.equal(stdout, '');
      assert.match(stderr, complaint);
      assert.match(stderr, /Usage: parley/);
    });
  });
});

describe('parley check-config', () => {
  test('summarizes a valid configuration', async () => {
    const { code, stdout } = await parley(['check-config', '--config', 'parley.yaml']);
    assert.equal(code, 0);
    assert.equal(
      stdout,
      'config OK: listening on udp:127.0.0.1:5060, tcp:127.0.0.1:5060, ws:127.0.0.1:8080; domains localhost; database sqlite:./data/parley.db\n',
    );
  });

  test('does not show the database password', async () => {
    const config = writeFile('postgres.yaml', 'database: postgres://parley:hunter2@db.example/parley\n');
    const { code, stdout } = await parley(['check-config', '-c', config]);
    assert.equal(code, 0);
    assert.match(stdout, /database postgres:\/\/parley:\*\*\*@db\.example\/parley/);
    assert.doesNotMatch(stdout, /hunter2/);
  });

  test('names every key that is wrong, exit 2', async () => {
    const config = writeFile('bad.yaml', 'registrar:\n  max_expire: 100\nlisten: ["udp:127.0.0.1"]\n');
    const { code, stdout, stderr } = await parley(['check-config', '--config', config]);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.equal(
      stderr,
      'config: listen[0]: expected PROTO:HOST:PORT with PROTO one of udp, tcp, tls, ws, wss\n' +
        'config: registrar.max_expire: unknown key (did you mean max_expires?)\n',
    );
  });
});

describe('parley user', () => {
  const db = `sqlite:${join(dir, 'users.db')}`;
  const password = 'correct horse battery staple';

  async function storedUser(username: string, domain: string) {
    const store = await openStore(db);
    try {
      return await store.users.get(username, domain);
    } finally {
      await store.close();
    }
  }

  test('add takes the password from --password or from standard input', async () => {
    // One after the other: the first creates the database, and two creations would race.
    const outcomes = [
      await parley(['user', 'add', 'alice@localhost', '--password', password, '--db', db]),
      await parley(['user', 'add', 'bob@LocalHost', '--db', db], `${password}\n`),
    ];
    for (const outcome of outcomes) {
      assert.equal(outcome.code, 0, outcome.stderr);
      assert.doesNotMatch(outcome.stdout + outcome.stderr, /horse/);
    }
    assert.equal(outcomes[1].stdout, 'saved bob@localhost (realm localhost)\n');
    assert.deepEqual(
      { ...(await storedUser('bob', 'localhost')), createdAt: 0 },
      { username: 'bob', domain: 'localhost', ...computeHa1('bob', 'localhost', password), createdAt: 0 },
    );
  });

  test('add hashes with auth.realm when the configuration sets one', async () => {
    const config = writeFile('realm.yaml', `domains: [example.com]\nauth: { realm: parley }\ndatabase: "${db}"\n`);
    const { code, stdout } = await parley(['user', 'add', 'carol@example.com', '-p', password, '-c', config]);
    assert.equal(code, 0);
    assert.equal(stdout, 'saved carol@example.com (realm parley)\n');
    assert.equal((await storedUser('carol', 'example.com'))?.ha1Sha256, computeHa1('carol', 'parley', password).ha1Sha256);
  });

  test('add refuses a domain the configuration does not serve, and an empty password', async () => {
    const [foreign, empty, malformed] = await Promise.all([
      parley(['user', 'add', 'eve@example.org', '-p', password, '--db', db]),
      parley(['user', 'add', 'eve@localhost', '--db', db], '\n'),
      parley(['user', 'add', 'eve', '--db', db]),
    ]);
    assert.equal(foreign.code, 1);
    assert.equal(foreign.stderr, 'parley: example.org is not one of the configured domains (localhost)\n');
    assert.equal(empty.code, 1);
    assert.equal(empty.stderr, 'parley: the password is empty\n');
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /expected USER@DOMAIN, got "eve"/);
  });

  test('list prints the users, all or of one domain', async () => {
    const all = await parley(['user', 'list', '--db', db]);
    assert.equal(all.code, 0);
    assert.deepEqual(all.stdout.trim().split('\n').sort(), ['alice@localhost', 'bob@localhost', 'carol@example.com']);
    const local = await parley(['user', 'list', '--domain', 'example.com', '--db', db]);
    assert.equal(local.stdout, 'carol@example.com\n');
  });

  test('del removes a user, and fails for one that does not exist', async () => {
    assert.deepEqual(await parley(['user', 'del', 'alice@localhost', '--db', db]), {
      code: 0,
      stdout: 'removed alice@localhost\n',
      stderr: '',
    });
    assert.equal(await storedUser('alice', 'localhost'), undefined);
    const again = await parley(['user', 'del', 'alice@localhost', '--db', db]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'parley: no user alice@localhost\n');
  });
});

describe('parley cert', () => {
  test('writes a certificate and a private key that TLS accepts for the names given', async () => {
    const out = join(dir, 'tls');
    const { code, stdout } = await parley(['cert', '--out', out, '--host', 'localhost', '--host', 'sip.test']);
    assert.equal(code, 0);
    assert.match(stdout, /cert\.pem/);
    const cert = readFileSync(join(out, 'cert.pem'), 'utf8');
    const key = readFileSync(join(out, 'key.pem'), 'utf8');
    assert.match(cert, /^-----BEGIN CERTIFICATE-----/);
    assert.match(key, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);

    const server = createServer({ cert, key }, (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      for (const servername of ['localhost', 'sip.test', undefined]) {
        const socket: TLSSocket = await new Promise((resolve, reject) => {
          const client = connect({ host: '127.0.0.1', port, ca: cert, servername }, () => resolve(client));
          client.on('error', reject);
        });
        assert.ok(socket.authorized, String(servername));
        socket.destroy();
      }
    } finally {
      server.close();
    }
  });

  test('needs --out', async () => {
    const { code, stderr } = await parley(['cert']);
    assert.equal(code, 2);
    assert.match(stderr, /--out DIR is required/);
  });
});
