// SCRAM's salted password (RFC 5802 Hi(), which is PBKDF2 with HMAC-SHA-1) for the XMPP sessions.
// The sasl-scram-sha-1 package that @xmpp/client logs in with computes it as thousands of awaited
// WebCrypto HMACs, about 0.85 s of CPU per login at Prosody's 10,000 iterations: a thousand accounts
// coming online would hold the event loop for minutes. node:crypto's pbkdf2 does the same in a few
// milliseconds on the libuv pool, and a server's salt and iteration count rarely change, so the
// result is kept (RFC 5802 §5.1 allows clients to cache it) for reconnections.
import { createHash, pbkdf2 } from 'node:crypto';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

const derive = promisify(pbkdf2);
const MAX_CACHED = 10_000;
/** Digest of (password, salt, iterations) -> salted password; the password itself is not a key. */
const cache = new Map<string, Uint8Array>();

async function saltedPassword(text: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = createHash('sha256').update(text).update('\0').update(salt).update(`\0${iterations}`).digest('base64');
  const known = cache.get(key);
  if (known) return known;
  const derived = new Uint8Array(await derive(Buffer.from(text, 'utf8'), salt, iterations, 20, 'sha1'));
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(key, derived);
  return derived;
}

let installed = false;

/** Makes the SCRAM-SHA-1 mechanism @xmpp/client uses derive its salted password with node:crypto (once per process). */
export function installFastScram(): void {
  if (installed) return;
  installed = true;
  // The mechanism calls bitops.Hi through the module object, so replacing the export is enough.
  const bitops = createRequire(import.meta.url)('sasl-scram-sha-1/lib/bitops') as { Hi: typeof saltedPassword };
  bitops.Hi = saltedPassword;
}
