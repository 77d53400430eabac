// The authentication policy: who must prove who they are, and the challenge when they have not.
import type { UserStore } from '../store/types.js';
import { type IncomingRequest, type SipUri, parseUri } from '../sip/index.js';
import { DigestAuthenticator, type DigestAlgorithm, type DigestCredentials, type DigestResponse, parseDigest } from './digest.js';

export interface AuthPolicyOptions {
  policy: 'open' | 'required';
  realmFor(domain: string): string;
  algorithms: DigestAlgorithm[];
  nonceExpires: number;
  /** Whether the digest uri must name the Request-URI. */
  checkUri: boolean;
}

/** Registrar-style (401, Authorization) for REGISTER; proxy-style (407, Proxy-Authorization) for the rest. */
type Style = { status: 401 | 407; challenge: string; credentials: string };
const REGISTRAR: Style = { status: 401, challenge: 'www-authenticate', credentials: 'authorization' };
const PROXY: Style = { status: 407, challenge: 'proxy-authenticate', credentials: 'proxy-authorization' };

export class AuthPolicy {
  private readonly authenticators = new Map<string, DigestAuthenticator>();

  constructor(
    private readonly users: UserStore,
    private readonly options: AuthPolicyOptions,
  ) {}

  get required(): boolean {
    return this.options.policy === 'required';
  }

  private authenticatorFor(realm: string): DigestAuthenticator {
    let authenticator = this.authenticators.get(realm);
    if (!authenticator) {
      authenticator = new DigestAuthenticator({ realm, algorithms: this.options.algorithms, nonceExpires: this.options.nonceExpires });
      this.authenticators.set(realm, authenticator);
    }
    return authenticator;
  }

  /**
   * Checks that the request carries valid credentials of `username@domain`. When it does not, the
   * challenge (or 403 for credentials of someone else) has been sent and false comes back. Only
   * credentials to check against the store make it wait: anything else is answered at once.
   */
  verify(request: IncomingRequest, username: string, domain: string): boolean | Promise<boolean> {
    const style = request.message.method === 'REGISTER' ? REGISTRAR : PROXY;
    const realm = this.options.realmFor(domain);
    const authenticator = this.authenticatorFor(realm);
    let offered: DigestResponse | undefined;
    for (const value of request.message.getAll(style.credentials)) {
      const parsed = parseDigest(value);
      if (parsed?.realm !== realm) continue;
      offered = parsed;
      break;
    }
    if (!offered) return this.challenge(request, style, authenticator, false);
    if (offered.username !== username) {
      request.reply(403, 'Forbidden (credentials of another user)');
      return false;
    }
    if (this.options.checkUri && !sameResource(offered.uri, request.message.requestUri)) {
      request.reply(400, 'Bad Request (the digest uri is not the Request-URI)');
      return false;
    }
    // Credentials read lately are checked at once, without a turn through a promise.
    const cached = this.users.cached?.(username, domain);
    if (cached) return this.check(request, style, authenticator, offered, cached);
    return this.users.get(username, domain).then((stored) => {
      if (!stored) return this.challenge(request, style, authenticator, false);
      return this.check(request, style, authenticator, offered, stored);
    });
  }

  private check(request: IncomingRequest, style: Style, authenticator: DigestAuthenticator, offered: DigestResponse, stored: DigestCredentials): boolean {
    const result = authenticator.verify(request.message.method, offered, stored);
    if (result.ok) return true;
    return this.challenge(request, style, authenticator, result.stale);
  }

  private challenge(request: IncomingRequest, style: Style, authenticator: DigestAuthenticator, stale: boolean): false {
    request.reply(style.status, undefined, {
      headers: authenticator.challenges(stale).map((value) => ({ name: style.challenge, value })),
    });
    return false;
  }
}

const DEFAULT_PORTS: Record<string, number> = { sip: 5060, sips: 5061 };

/** Whether the digest uri names the same resource as the Request-URI: scheme, user, host and port (parameters aside). */
function sameResource(digestUri: string, requestUri: SipUri): boolean {
  let uri: SipUri;
  try {
    uri = parseUri(digestUri);
  } catch {
    return false;
  }
  const portOf = (u: SipUri) => u.port ?? DEFAULT_PORTS[u.scheme];
  return uri.scheme === requestUri.scheme && uri.user === requestUri.user && uri.host === requestUri.host && portOf(uri) === portOf(requestUri);
}
