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
import { startParley } from '../support/process.js';

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
  /** A self-signed pair valid from `from` for `days`, written to DIR/NAME.{crt,key}. */
  async function certificate(name: string, from: Date, days: number): Promise<{ cert: string; key: string }> {
    const { generate } = await import('selfsigned');
    const pems = await generate([{ name: 'commonName', value: 'sip.example.com' }], {
      keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: from, notAfterDate: new Date(from.getTime() + days * 86_400_000),
    });
    return { cert: writeFile(`${name}.crt`, pems.cert), key: writeFile(`${name}.key`, pems.private) };
  }

  test('summarizes the sample parley.yaml, with no warning', async () => {
    const { code, stdout, stderr } = await parley(['check-config', '--config', 'parley.yaml']);
    assert.equal(code, 0);
    assert.equal(
      stdout,
      'config OK\n' +
        '  listen:   udp:127.0.0.1:5060, tcp:127.0.0.1:5060, ws:127.0.0.1:8080\n' +
        '  domains:  localhost\n' +
        '  auth:     open: anyone may register and send as anyone\n' +
        '  database: sqlite:./data/parley.db\n' +
        '  relay:    other domains refused (403), own-message sync on\n' +
        '  offline:  stored, 100 per user for 604800 s\n' +
        '  rooms:    manager sip:chat-manager@localhost, rooms chat-*, history 20\n' +
        '  presence: policy open\n' +
        '  xmpp:     off\n' +
        '  gateways: off\n' +
        '  push:     off\n' +
        '  admin:    http://127.0.0.1:8090, RPC token generated at each start, /metrics open\n',
    );
    assert.equal(stderr, '');
  });

  test('summarizes every feature of a public server set up safely, with no warning', async () => {
    const { cert, key } = await certificate('good', new Date(Date.now() - 86_400_000), 365);
    const config = writeFile('public.yaml', [
      'domains: [example.com]',
      'listen: ["udp:0.0.0.0:5060", "tls:0.0.0.0:5061"]',
      `tls: { cert: ${cert}, key: ${key} }`,
      'database: postgres://parley:hunter2@db.example/parley',
      'relay: { outbound_proxy: "sip:proxy.example.com", sync_sent: false }',
      'imc: { enabled: false }',
      'presence: { policy: same-domain }',
      'xmpp: { enabled: true, backend: server, xmpp_domain: xmpp.example.com, dialback_secret: "0123456789abcdef" }',
      'gateway: { enabled: true, secret_key: "0123456789abcdef", jaddress: xmpp.example.net, http_proxy_host: 127.0.0.1, irc_networks: { libera: { host: irc.libera.chat } } }',
      'push: { enabled: true, webhook_url: "https://push.example.com/wake?key=s3cret&token=$token" }',
      'admin: { listen: "0.0.0.0:8090", token: "0123456789abcdef0123", metrics_token: true }',
    ].join('\n'));
    const { code, stdout, stderr } = await parley(['check-config', '-c', config]);
    assert.equal(code, 0);
    assert.equal(
      stdout,
      'config OK\n' +
        '  listen:   udp:0.0.0.0:5060, tls:0.0.0.0:5061\n' +
        `  tls:      certificate ${cert}, key ${key}\n` +
        '  domains:  example.com\n' +
        '  auth:     required, digest SHA-256 and MD5, realm per domain\n' +
        '  database: postgres://parley:***@db.example/parley\n' +
        '  relay:    other domains through sip:proxy.example.com, own-message sync off\n' +
        '  offline:  stored, 100 per user for 604800 s\n' +
        '  rooms:    off\n' +
        '  presence: policy same-domain\n' +
        "  xmpp:     XMPP server, s2s on 0.0.0.0:5269; SIP domain xmpp.example.com, XMPP domain xmpp.example.com, separator mapping; peers: any domain, found by DNS SRV through the system's resolver; " +
        `TLS required, certificate ${cert}; remote certificates verified against Node's authorities\n` +
        "  gateways: commands to sip:gateway@example.com; networks: xmpp as xmpp.example.com, irc as irc.example.com; XMPP accounts on every domain through xmpp.example.net, IRC accounts on libera; " +
        'through the HTTP proxy 127.0.0.1:3128; at most 1000 sessions, 4 per user\n' +
        '  push:     other providers through the webhook at https://push.example.com\n' +
        '  admin:    http://0.0.0.0:8090, RPC token set, /metrics with the token\n',
    );
    assert.equal(stderr, '');
  });

  test('warns of each risky combination, naming its key, and still exits 0', async () => {
    const expired = await certificate('expired', new Date(Date.now() - 30 * 86_400_000), 10);
    const config = writeFile('risky.yaml', [
      'listen: ["udp:127.0.0.1:5060", "tcp:0.0.0.0:5060", "wss:[::]:8443"]',
      `tls: { cert: ${expired.cert}, key: ${expired.key} }`,
      'auth: { policy: open }',
      'sip: { exempt_sources: [127.0.0.0/8, "::1", 10.0.0.0/8, "::1/64"] }',
      'admin: { listen: "0.0.0.0:8090" }',
      `xmpp: { enabled: true, backend: server, xmpp_domain: xmpp.example.com, tls_cert: ${expired.cert}, tls_key: ${expired.key}, s2s_require_tls: false, s2s_verify_certificates: false }`,
      'gateway: { enabled: true, secret_key: "0123456789abcdef", xmpp_servers: { example.net: { tls: none }, lan.example: { host: 10.1.2.3, tls: none } }, irc_networks: { libera: { host: irc.libera.chat, tls: none } } }',
    ].join('\n'));
    const { code, stderr } = await parley(['check-config', '-c', config]);
    assert.equal(code, 0);
    const lines = stderr.trimEnd().split('\n');
    const expiry = /^the certificate \S+expired\.crt expired on .+ GMT$/;
    assert.deepEqual(lines.map((line) => /^warning: ([\w.]+): /.exec(line)?.[1]), [
      'auth.policy', 'auth.policy', 'tls.cert', 'sip.exempt_sources', 'sip.exempt_sources', 'admin.token',
      'xmpp.tls_cert', 'xmpp.s2s_require_tls', 'xmpp.s2s_verify_certificates',
      'gateway.xmpp_servers.example.net.tls', 'gateway.irc_networks.libera.tls',
    ]);
    assert.match(lines[0], /auth\.policy: open on tcp:0\.0\.0\.0:5060, an address other hosts can reach: anyone may register and send as any user/);
    assert.match(lines[1], /open on wss:\[::\]:8443/);
    assert.match(lines[2].split('; ')[0].replace('warning: tls.cert: ', ''), expiry);
    assert.match(lines[2], /; wss:\[::\]:8443 will fail every handshake$/);
    assert.match(lines[3], /10\.0\.0\.0\/8 is not loopback: its sources escape rate_limit and max_connections_per_ip/);
    assert.match(lines[4], /::1\/64 is not loopback/);
    assert.match(lines[5], /admin\.token: null while admin\.listen \(0\.0\.0\.0:8090\) is reachable from other hosts/);
    assert.match(lines[6], /server-to-server streams cannot use TLS$/);
    assert.match(lines[7], /messages to other XMPP servers may travel unencrypted/);
    assert.match(lines[8], /authenticated by Server Dialback alone/);
    assert.match(lines[9], /: none for example\.net, not an address of a private network: what the linked accounts send crosses the network unencrypted/);
    assert.match(lines[10], /: none for irc\.libera\.chat, not an address/);
  });

  test('summarizes the XMPP component mode and an admin endpoint on IPv6 loopback', async () => {
    const config = writeFile('component.yaml', [
      'xmpp: { enabled: true, xmpp_domain: sip.xmpp.example, xmpp_password: secret, xmpp_host: xmpp.example, address_mapping: separator }',
      'admin: { listen: "[::1]:8090" }',
    ].join('\n'));
    const { code, stdout, stderr } = await parley(['check-config', '-c', config]);
    assert.equal(code, 0);
    assert.match(stdout, /^ {2}xmpp: {5}component of the XMPP server xmpp\.example:5347; SIP domain sip\.xmpp\.example, XMPP domain sip\.xmpp\.example, separator mapping$/m);
    assert.match(stdout, /^ {2}admin: {4}http:\/\/\[::1\]:8090, /m);
    assert.doesNotMatch(stdout, /secret/);
    assert.equal(stderr, '');
  });

  test('warns of s2s without a certificate, and of a key that is not the certificate\'s', async () => {
    const one = await certificate('one', new Date(Date.now() - 86_400_000), 365);
    const other = await certificate('other', new Date(Date.now() - 86_400_000), 365);
    const config = writeFile('mismatch.yaml', [
      'listen: ["tls:127.0.0.1:5061"]',
      `tls: { cert: ${one.cert}, key: ${other.key} }`,
      'xmpp: { enabled: true, backend: server, xmpp_domain: xmpp.example.com }',
    ].join('\n'));
    const withoutCert = writeFile('no-cert.yaml', 'xmpp: { enabled: true, backend: server, xmpp_domain: xmpp.example.com }\n');
    const [mismatch, noCert] = await Promise.all([parley(['check-config', '-c', config]), parley(['check-config', '-c', withoutCert])]);
    assert.match(mismatch.stderr, /^warning: tls\.cert: \S+one\.crt and \S+other\.key cannot serve TLS: .*key values mismatch.*; tls:127\.0\.0\.1:5061 will fail every handshake\n/);
    assert.match(mismatch.stderr, /\nwarning: tls\.cert: .*; server-to-server streams cannot use TLS\n$/);
    assert.equal(
      noCert.stderr,
      'warning: xmpp.tls_cert: no certificate for server-to-server streams (xmpp.tls_cert, tls.cert): other XMPP servers cannot connect with TLS, so Parley refuses them\n',
    );
  });

  test('a TLS listener whose certificate cannot be read is an error naming the key, exit 2', async () => {
    const config = writeFile('unreadable.yaml', `listen: ["tls:127.0.0.1:5061"]\ntls: { cert: ${join(dir, 'missing.crt')}, key: ${join(dir, 'missing.key')} }\n`);
    const { code, stderr } = await parley(['check-config', '-c', config]);
    assert.equal(code, 2);
    assert.match(stderr, /^config: tls\.cert: cannot read \S+missing\.crt \(ENOENT\)\nconfig: tls\.key: cannot read/);
  });

  test('does not show the database password', async () => {
    const config = writeFile('postgres.yaml', 'database: postgres://parley:hunter2@db.example/parley\n');
    const { code, stdout } = await parley(['check-config', '-c', config]);
    assert.equal(code, 0);
    assert.match(stdout, /database: postgres:\/\/parley:\*\*\*@db\.example\/parley/);
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

describe('parley start logs', () => {
  test('--log-format pretty writes readable lines; by default a pipe gets JSON', async () => {
    const pretty = await startParley({ args: ['--log-format', 'pretty'] });
    const json = await startParley();
    try {
      const started = await pretty.waitForLog('parley started');
      assert.match(started, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}parley started listen=\["udp:127\.0\.0\.1:\d+","tcp:127\.0\.0\.1:\d+"\] domains=\["localhost"\]$/);
      const [event] = json.entries().filter((entry) => entry.msg === 'parley started');
      assert.equal(event?.level, 'info');
    } finally {
      await Promise.all([pretty.stop(), json.stop()]);
    }
  });
});
