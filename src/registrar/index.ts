// Registrar and location service, digest authentication and the authentication policy.
export { Registrar, type RegistrarOptions, type Destination, type Flow } from './registrar.js';
export { AuthPolicy, type AuthPolicyOptions } from './auth.js';
export { DigestAuthenticator, parseDigest, type DigestAlgorithm, type DigestResponse, type VerifyResult } from './digest.js';
export { computeHa1, type Ha1Pair } from './credentials.js';
