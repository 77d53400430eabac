import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { HELP_OPTION, parseCommandLine, printHelp, UsageError, type Command } from './args.js';

const USAGE = `Usage: parley cert --out DIR [--host NAME]... [--days N]

Writes a self-signed certificate (DIR/cert.pem) and its private key (DIR/key.pem, mode 0600)
for trying out tls and wss listeners. The certificate names every --host (default: localhost)
plus 127.0.0.1 and ::1. Clients must be told to trust it: it is signed by no authority.

Options:
  -o, --out DIR     directory to write to; created if missing
  -H, --host NAME   DNS name or IP address the certificate is for; repeatable
      --days N      days the certificate stays valid (default: 365)
  -h, --help        show this help
`;

const OPTIONS = {
  ...HELP_OPTION,
  out: { type: 'string', short: 'o' },
  host: { type: 'string', short: 'H', multiple: true },
  days: { type: 'string', default: '365' },
} as const;

const LOOPBACK_ADDRESSES = ['127.0.0.1', '::1'];
const DNS_NAME = 2;
const IP_ADDRESS = 7;
const DAY_MS = 86_400_000;

async function createSelfSigned(hosts: string[], days: number): Promise<{ cert: string; key: string }> {
  const addresses = [...new Set([...hosts.filter((host) => isIP(host)), ...LOOPBACK_ADDRESSES])];
  const altNames = [
    ...hosts.filter((host) => !isIP(host)).map((value) => ({ type: DNS_NAME, value }) as const),
    ...addresses.map((ip) => ({ type: IP_ADDRESS, ip }) as const),
  ];
  const notBeforeDate = new Date();
  // Loaded only here: it is the slowest import of all, and only this command needs it.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: hosts[0] }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + days * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

export const certCommand: Command = {
  name: 'cert',
  summary: 'write a self-signed certificate and key for tls and wss',
  async run(args) {
    const { values } = parseCommandLine({ args, options: OPTIONS }, USAGE);
    if (values.help) return printHelp(USAGE);
    if (!values.out) throw new UsageError('--out DIR is required', USAGE);
    const days = Number(values.days);
    if (!Number.isInteger(days) || days < 1) throw new UsageError(`--days expects a positive whole number, got "${values.days}"`, USAGE);
    const hosts = values.host?.length ? values.host : ['localhost'];

    const { cert, key } = await createSelfSigned(hosts, days);
    const certPath = join(values.out, 'cert.pem');
    const keyPath = join(values.out, 'key.pem');
    mkdirSync(values.out, { recursive: true });
    writeFileSync(certPath, cert);
    // Removed first so that the key is never written into an older file with wider permissions.
    rmSync(keyPath, { force: true });
    writeFileSync(keyPath, key, { mode: 0o600 });
    process.stdout.write(`wrote ${certPath} and ${keyPath} for ${hosts.join(', ')}; in the configuration:\n`);
    process.stdout.write(`tls:\n  cert: ${certPath}\n  key: ${keyPath}\n`);
    return 0;
  },
};
