// The bearer token of the management endpoint: where a generated one is kept so that the
// `parley` command on the same machine can read it, and how a presented one is checked.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const TOKEN_FILE = 'admin.token';

/** Beside the SQLite database, or in ./data when the database is not a file. */
export function tokenFilePath(database: string): string {
  const sqlitePath = /^sqlite:(.+)$/.exec(database)?.[1];
  const dir = sqlitePath && sqlitePath !== ':memory:' ? dirname(resolve(sqlitePath)) : resolve('data');
  return join(dir, TOKEN_FILE);
}

/** Makes a new random token and writes it to `path`, readable by its owner only. */
export function writeGeneratedToken(path: string): string {
  // Hex rather than base64url: a token starting with "-" would read as an option on a command line.
  const token = randomBytes(32).toString('hex');
  mkdirSync(dirname(path), { recursive: true });
  // A fresh file gets mode 0600 from its creation on, which an existing file being overwritten would
  // not; the rename also means a reader never sees half a token.
  const fresh = `${path}.${randomBytes(6).toString('hex')}`;
  writeFileSync(fresh, `${token}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(fresh, path);
  return token;
}

export function readTokenFile(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

/** Compares in constant time; hashing first makes the lengths equal, as timingSafeEqual needs. */
export function tokensMatch(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
