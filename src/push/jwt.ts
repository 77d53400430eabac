// JSON Web Tokens as the push providers want them signed (RFC 7515 compact form): ES256 for APNs'
// provider tokens, RS256 for the assertion exchanged for a Google OAuth2 access token.
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';

export type JwtAlgorithm = 'ES256' | 'RS256';

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** `header.claims.signature`; the header's alg is the algorithm's. */
export function signJwt(algorithm: JwtAlgorithm, header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const signingInput = `${base64url(JSON.stringify({ alg: algorithm, ...header }))}.${base64url(JSON.stringify(claims))}`;
  // JWS wants ECDSA signatures as r‖s (IEEE P1363), not DER as node:crypto gives by default.
  const signature = algorithm === 'ES256' ? sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' }) : sign('sha256', Buffer.from(signingInput), key);
  return `${signingInput}.${base64url(signature)}`;
}

/**
 * A PEM private key of the type the algorithm signs with; the error names `what` (a file, a
 * field) but never shows the key.
 */
export function loadSigningKey(pem: string, algorithm: JwtAlgorithm, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new Error(`${what} is not a PEM private key`);
  }
  const expected = algorithm === 'ES256' ? 'ec' : 'rsa';
  if (key.asymmetricKeyType !== expected || (algorithm === 'ES256' && key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')) {
    throw new Error(`${what} is a ${key.asymmetricKeyType} key; ${algorithm} needs ${algorithm === 'ES256' ? 'an EC P-256' : 'an RSA'} key`);
  }
  return key;
}
