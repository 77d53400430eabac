import { createHash } from 'node:crypto';

export interface Ha1Pair {
  /** hex MD5(username:realm:password) */
  ha1Md5: string;
  /** hex SHA-256(username:realm:password) */
  ha1Sha256: string;
}

/**
 * The digest HA1 values (RFC 7616 §3.4.2) for both algorithms Parley offers, so the password
 * itself never needs to be kept.
 */
export function computeHa1(username: string, realm: string, password: string): Ha1Pair {
  const secret = `${username}:${realm}:${password}`;
  return {
    ha1Md5: createHash('md5').update(secret).digest('hex'),
    ha1Sha256: createHash('sha256').update(secret).digest('hex'),
  };
}
