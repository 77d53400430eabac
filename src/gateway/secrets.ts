// Passwords of linked accounts at rest: AES-256-GCM with a key derived from gateway.secret_key
// (or PARLEY_GATEWAY_KEY), a fresh IV per password, and the account's identity as additional
// authenticated data, so a sealed password copied to another row does not open.
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SALT = 'parley-gateway-secret-v1';

export class SecretBoxError extends Error {
  override name = 'SecretBoxError';
}

export class SecretBox {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (secret.length < 16) throw new SecretBoxError('the gateway key must have at least 16 characters');
    this.key = scryptSync(secret, SALT, 32);
  }

  /** "v1.<base64url(iv | tag | ciphertext)>" */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64url')}`;
  }

  /** The plaintext; throws when the value was sealed with another key, for another account, or altered. */
  open(sealed: string, context: string): string {
    const dot = sealed.indexOf('.');
    if (dot < 0 || sealed.slice(0, dot) !== VERSION) throw new SecretBoxError('not a sealed password');
    const bytes = Buffer.from(sealed.slice(dot + 1), 'base64url');
    if (bytes.length < IV_BYTES + TAG_BYTES) throw new SecretBoxError('sealed password too short');
    const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretBoxError('the sealed password does not open with this key (gateway.secret_key changed?)');
    }
  }
}

/** What a sealed password is bound to: the account it belongs to. */
export function sealContext(account: { sipUser: string; extProt: string; extUser: string }): string {
  return `${account.sipUser}\n${account.extProt}\n${account.extUser}`;
}
