import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  ConfigError,
  compileRoutePattern,
  defaultConfig,
  loadConfig,
  type Config,
  type ConfigOverrides,
} from '../../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeYaml(text: string): string {
  const path = join(dir, `config-${++fileCount}.yaml`);
  writeFileSync(path, text);
  return path;
}

function load(text: string, overrides?: ConfigOverrides): Config {
  return loadConfig(writeYaml(text), overrides);
}

/** The ConfigError that loading `text` throws. */
function failure(text: string, overrides?: ConfigOverrides): ConfigError {
  try {
    load(text, overrides);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('the configuration was accepted');
}

describe('defaults', () => {
  test('no file gives a complete, valid configuration', () => {
    const config = loadConfig(undefined);
    assert.deepEqual(config, defaultConfig());
    assert.deepEqual(config.domains, ['localhost']);
    assert.deepEqual(config.listen, [
      { proto: 'udp', host: '127.0.0.1', port: 5060 },
      { proto: 'tcp', host: '127.0.0.1', port: 5060 },
      { proto: 'ws', host: '127.0.0.1', port: 8080 },
    ]);
    assert.equal(config.database, 'sqlite:./data/parley.db');
    assert.equal(config.auth.policy, 'required');
    assert.deepEqual(config.auth.algorithms, ['SHA-256', 'MD5']);
    assert.deepEqual(config.routes, [{ handler: 'relay' }]);
  });

  test('an empty file and an empty section take the defaults', () => {
    assert.deepEqual(load(''), defaultConfig());
    assert.deepEqual(load('auth:\nsip:\n'), defaultConfig());
  });

  test('the sample parley.yaml is valid and spells out the defaults, but for an open loopback demo', () => {
    const defaults = defaultConfig();
    assert.deepEqual(loadConfig(new URL('../../parley.yaml', import.meta.url).pathname), { ...defaults, auth: { ...defaults.auth, policy: 'open' } });
  });
});

describe('values', () => {
  test('listeners are parsed, IPv6 hosts without their brackets', () => {
    const config = load('listen: ["UDP:[::1]:5060", "wss:example.com:443"]\ntls: { cert: /dev/null, key: /dev/null }\n');
    assert.deepEqual(config.listen, [
      { proto: 'udp', host: '::1', port: 5060 },
      { proto: 'wss', host: 'example.com', port: 443 },
    ]);
  });

  test('domains are lower-cased, route methods upper-cased into a list', () => {
    const config = load('domains: [Example.COM]\nroutes:\n  - { method: message, handler: relay }\n  - { method: [info, Options], handler: x }\n');
    assert.deepEqual(config.domains, ['example.com']);
    assert.deepEqual(config.routes.map((route) => route.method), [['MESSAGE'], ['INFO', 'OPTIONS']]);
  });

  test('advertise is split into host and optional port', () => {
    assert.deepEqual(load('advertise: sip.Example.com:5080\n').advertise, { host: 'sip.example.com', port: 5080 });
    assert.deepEqual(load('advertise: "[2001:db8::1]"\n').advertise, { host: '[2001:db8::1]' });
  });

  test('gateway.aliases takes a list or the jabber seed\'s "N;alias=<delim>;..." string', () => {
    assert.deepEqual(load('gateway:\n  aliases: "2;msn.example.com=%;icq.example.com=~;"\n').gateway.aliases, ['msn.example.com=%', 'icq.example.com=~']);
    assert.deepEqual(load('gateway:\n  aliases: [msn.example.com=%]\n').gateway.aliases, ['msn.example.com=%']);
    assert.equal(failure('gateway:\n  aliases: "1;msn example=%;"\n').message, 'config: gateway.aliases[0]: expected ALIAS=<delimiter>, e.g. msn.example.com=%');
  });

  test('route patterns match whole values; domains regardless of case', () => {
    assert.ok(compileRoutePattern('a.*', true).test('AB'));
    assert.ok(!compileRoutePattern('a|b', false).test('ab'));
    assert.ok(!compileRoutePattern('bob', false).test('Bob'));
  });

  test('command-line overrides win over the file', () => {
    const config = load('listen: ["udp:127.0.0.1:5060"]\ndomains: [a.example]\ndatabase: "sqlite:./a.db"\nlog: { level: warn }\n', {
      listen: ['tcp:0.0.0.0:5070'],
      domains: ['b.example'],
      database: 'postgres://parley@db/parley',
      logLevel: 'debug',
    });
    assert.deepEqual(config.listen, [{ proto: 'tcp', host: '0.0.0.0', port: 5070 }]);
    assert.deepEqual(config.domains, ['b.example']);
    assert.equal(config.database, 'postgres://parley@db/parley');
    assert.equal(config.log.level, 'debug');
  });

  test('overrides are validated like the file', () => {
    const error = failure('', { logLevel: 'loud' });
    assert.equal(error.key, 'log.level');
  });
});

describe('errors', () => {
  test('an unknown key is named, with the key it probably meant', () => {
    const error = failure('registrar:\n  max_expire: 100\n');
    assert.equal(error.key, 'registrar.max_expire');
    assert.equal(error.message, 'config: registrar.max_expire: unknown key (did you mean max_expires?)');
  });

  test('an unknown key like no known one gets no suggestion', () => {
    assert.equal(failure('colour: blue\n').message, 'config: colour: unknown key');
  });

  test('a value of the wrong type is named with what was expected', () => {
    const error = failure('sip:\n  t1: fast\n');
    assert.equal(error.message, 'config: sip.t1: expected number, got string');
  });

  test('a value outside its set names the choices', () => {
    assert.equal(
      failure('auth: { policy: closed }\n').message,
      'config: auth.policy: expected one of open, required, got "closed"',
    );
  });

  test('a listen entry not of the form PROTO:HOST:PORT', () => {
    for (const entry of ['udp:127.0.0.1', 'sctp:127.0.0.1:5060', 'tcp:::1:5060', 'udp:host:99999']) {
      const error = failure(`listen: ["${entry}"]\n`);
      assert.equal(
        error.message,
        'config: listen[0]: expected PROTO:HOST:PORT with PROTO one of udp, tcp, tls, ws, wss',
        entry,
      );
    }
  });

  test('a listener given twice', () => {
    assert.equal(failure('listen: ["tcp:localhost:5060", "TCP:localhost:5060"]\n').message, 'config: listen[1]: same as listen[0]');
  });

  test('a tls or wss listener needs tls.cert and tls.key', () => {
    const error = failure('listen: ["tls:127.0.0.1:5061"]\n');
    assert.deepEqual(
      error.issues.map((issue) => issue.key),
      ['tls.cert', 'tls.key'],
    );
    assert.match(error.message, /^config: tls\.cert: required by listen\[0\] \(tls:127\.0\.0\.1:5061\)$/m);
  });

  test('tls files must be readable', () => {
    const error = failure(`tls: { cert: ${join(dir, 'missing.pem')} }\n`);
    assert.equal(error.key, 'tls.cert');
    assert.match(error.message, /cannot read .*missing\.pem \(ENOENT\)/);
  });

  test('a route regular expression that does not compile is named with its index', () => {
    const error = failure('routes:\n  - { handler: relay }\n  - { handler: relay, domain: "a.*" }\n  - { handler: reject, user: "(unclosed" }\n');
    assert.equal(error.key, 'routes[2].user');
    assert.match(error.message, /^config: routes\[2\]\.user: Invalid regular expression/);
  });

  test('a route without a handler', () => {
    assert.equal(failure('routes: [{ method: MESSAGE }]\n').message, 'config: routes[0].handler: required');
  });

  test('default_expires must lie between min_expires and max_expires', () => {
    const error = failure('registrar: { min_expires: 60, default_expires: 30, max_expires: 3600 }\n');
    assert.equal(error.message, 'config: registrar.default_expires: must be between min_expires (60) and max_expires (3600)');
    assert.equal(failure('registrar: { min_expires: 600, max_expires: 300 }\n').key, 'registrar.min_expires');
  });

  test('a YAML syntax error names the file, line and column', () => {
    const error = failure('domains: [localhost]\nlisten: ["udp:127.0.0.1:5060"\nlog: {}\n');
    assert.match(error.message, /^config: .*config-\d+\.yaml:\d+:\d+: /);
    assert.match(error.key, /:3:1$/);
  });

  test('a file that cannot be read', () => {
    assert.throws(() => loadConfig(join(dir, 'none.yaml')), {
      name: 'ConfigError',
      message: /^config: .*none\.yaml: cannot read the file \(ENOENT\)$/,
    });
  });

  test('a document that is not a mapping', () => {
    assert.match(failure('- udp:127.0.0.1:5060\n').message, /expected a mapping of options at the top level/);
  });

  test('exempt_sources takes IP addresses and CIDR ranges only', () => {
    assert.deepEqual(load('sip: { exempt_sources: [192.0.2.0/24, "2001:db8::/32", 198.51.100.7] }\n').sip.exempt_sources, ['192.0.2.0/24', '2001:db8::/32', '198.51.100.7']);
    assert.equal(failure('sip: { exempt_sources: [192.0.2.0/33] }\n').message, 'config: sip.exempt_sources[0]: expected an IP address or CIDR range, e.g. 192.0.2.0/24');
  });

  test('relay.sync_sent_domains names served domains only', () => {
    assert.deepEqual(load('domains: [example.com]\nrelay: { sync_sent_domains: { Example.com: false } }\n').relay.sync_sent_domains, { 'example.com': false });
    assert.equal(failure('domains: [example.com]\nrelay: { sync_sent_domains: { example.org: false } }\n').message, 'config: relay.sync_sent_domains.example.org: example.org is not one of domains');
  });

  test('every problem is listed, one a line', () => {
    const error = failure('domains: []\nregistrar: { max_contact: 3 }\nrelay: { foreign_domain_status: 500 }\nsip: { max_forwards: 0 }\n');
    assert.deepEqual(error.message.split('\n'), [
      'config: domains: must not be empty',
      'config: registrar.max_contact: unknown key (did you mean max_contacts?)',
      'config: relay.foreign_domain_status: expected 403 or 404',
      'config: sip.max_forwards: must be at least 1',
    ]);
  });
});
