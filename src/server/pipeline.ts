// The path of a request past the transaction layer: the checks every request passes, in order
// (REQUEST_HOOKS), then the routing table, then the handler it names. A hook either answers the
// request (and the path ends there) or lets it go on. What a handler throws is mapped here: the
// store unavailable → 503 with Retry-After, anything else → 500.
import type { Logger } from 'pino';
import { STORE_RETRY_AFTER_SECONDS, isStoreUnavailable } from '../store/index.js';
import { type IncomingRequest, SIP_METHODS, type SipUri, type SipStack, parseNameAddr, parseUri } from '../sip/index.js';
import type { AuthPolicy } from '../registrar/index.js';
import { STORE_UNAVAILABLE_REASON, loopKey } from '../relay/index.js';
import type { Router } from './router.js';

/** Methods RFC 3261 and its extensions define; anything else is answered 501 rather than 405. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(SIP_METHODS);

/** What the hooks consult. */
export interface PipelineScope {
  readonly domains: ReadonlySet<string>;
  readonly stack: SipStack;
  readonly auth: AuthPolicy;
  readonly router: Router;
  isStopping(): boolean;
}

/** A check: true when it answered the request (the path ends), false to let the request go on. */
export type RequestHook = (request: IncomingRequest, scope: PipelineScope) => boolean | Promise<boolean>;

const storeRetryAfter = { name: 'retry-after', value: String(STORE_RETRY_AFTER_SECONDS) };

function shuttingDown(request: IncomingRequest, scope: PipelineScope): boolean {
  if (!scope.isStopping()) return false;
  request.reply(503, 'Service Unavailable (shutting down)', { headers: [{ name: 'retry-after', value: '5' }] });
  return true;
}

function knownMethod(request: IncomingRequest, scope: PipelineScope): boolean {
  if (KNOWN_METHODS.has(request.message.method)) return false;
  request.reply(501, 'Not Implemented', { headers: [allowHeader(scope.router)] });
  return true;
}

function requestUriScheme(request: IncomingRequest): boolean {
  let target: SipUri;
  try {
    target = request.message.requestUri;
  } catch {
    request.reply(400, 'Bad Request-URI');
    return true;
  }
  if (target.scheme === 'sip' || target.scheme === 'sips') return false;
  request.reply(416, 'Unsupported URI Scheme');
  return true;
}

function maxForwards(request: IncomingRequest): boolean {
  const message = request.message;
  const value = message.get('max-forwards');
  if (value === undefined || Number(value) !== 0 || message.method === 'OPTIONS') return false;
  request.reply(483, 'Too Many Hops');
  return true;
}

function loop(request: IncomingRequest, scope: PipelineScope): boolean {
  if (!scope.stack.hasLooped(request.message, loopKey)) return false;
  request.reply(482, 'Loop Detected');
  return true;
}

function proxyRequire(request: IncomingRequest): boolean {
  const message = request.message;
  if (!message.has('proxy-require')) return false;
  request.reply(420, 'Bad Extension', { headers: [{ name: 'unsupported', value: message.getAll('proxy-require').join(', ') }] });
  return true;
}

/** Loose routing (RFC 3261 §16.4): Route entries naming Parley itself are used up here, not forwarded. */
function ownRoutes(request: IncomingRequest, scope: PipelineScope): boolean {
  const message = request.message;
  if (!message.has('route')) return false;
  for (let top = message.getAll('route')[0]; top !== undefined; top = message.getAll('route')[0]) {
    let uri: SipUri;
    try {
      uri = parseUri(parseNameAddr(top).uri);
    } catch {
      return false;
    }
    const ours = (scope.domains.has(uri.host) && !uri.user) || scope.stack.isOwnAddress(uri.host, uri.port);
    if (!ours) return false;
    message.removeFirstValue('route');
  }
  return false;
}

/** OPTIONS to Parley itself (no user, or a domain not served here) is answered without credentials. */
function optionsToServer(request: IncomingRequest, scope: PipelineScope): boolean {
  const message = request.message;
  if (message.method !== 'OPTIONS') return false;
  const target = message.requestUri;
  if (target.user && scope.domains.has(target.host)) return false;
  answerOptions(request, scope.router);
  return true;
}

/** A REGISTER binds an address of a served domain, at a served domain. */
function registerDomain(request: IncomingRequest, scope: PipelineScope): boolean {
  const message = request.message;
  if (message.method !== 'REGISTER') return false;
  if (scope.domains.has(message.requestUri.host) && scope.domains.has(message.toUri.host)) return false;
  request.reply(403, 'Forbidden (domain not served here)');
  return true;
}

/**
 * Digest authentication (auth.policy): a REGISTER for its To address; any other request from a
 * served domain for its From address. The address verified becomes the request's identity.
 */
function authenticate(request: IncomingRequest, scope: PipelineScope): boolean | Promise<boolean> {
  if (!scope.auth.required) return false;
  const message = request.message;
  const claimed = message.method === 'REGISTER' ? message.toUri : message.fromUri;
  if (!scope.domains.has(claimed.host)) return false;
  const identify = (verified: boolean) => {
    if (verified) request.identity = `${claimed.user}@${claimed.host}`;
    return !verified;
  };
  const verified = scope.auth.verify(request, claimed.user, claimed.host);
  return typeof verified === 'boolean' ? identify(verified) : verified.then(identify);
}

/** OPTIONS to a local user, once authenticated, is answered by Parley for it. */
function optionsToUser(request: IncomingRequest, scope: PipelineScope): boolean {
  if (request.message.method !== 'OPTIONS') return false;
  answerOptions(request, scope.router);
  return true;
}

/** In the order they run: each assumes what the earlier ones checked. */
export const REQUEST_HOOKS: readonly RequestHook[] = [
  shuttingDown, knownMethod, requestUriScheme, maxForwards, loop, proxyRequire, ownRoutes,
  optionsToServer, registerDomain, authenticate, optionsToUser,
];

export class RequestPipeline {
  constructor(
    private readonly scope: PipelineScope,
    private readonly log: Logger,
    private readonly hooks: readonly RequestHook[] = REQUEST_HOOKS,
  ) {}

  /**
   * Runs the request through the hooks, the router and its handler. What runs to its end at once, as
   * a request answered by a hook or by a synchronous handler does, returns undefined and makes no
   * promise; otherwise the promise of the rest, which never rejects unless the error answer itself fails.
   */
  dispatch(request: IncomingRequest): Promise<void> | undefined {
    let rest: Promise<void> | undefined;
    try {
      rest = this.route(request, 0);
    } catch (error) {
      try {
        this.answerFailure(request, error);
      } catch (failure) {
        return Promise.reject(failure as Error);
      }
      return undefined;
    }
    return rest?.then(undefined, (error: unknown) => this.answerFailure(request, error));
  }

  private answerFailure(request: IncomingRequest, error: unknown): void {
    const context = { method: request.message.method, callId: request.message.get('call-id') };
    if (isStoreUnavailable(error)) {
      // The outage itself is logged once by the store.
      this.log.debug(context, 'request refused: store unavailable');
      if (!request.replied) request.reply(503, STORE_UNAVAILABLE_REASON, { headers: [storeRetryAfter] });
      return;
    }
    this.log.error({ err: error, ...context }, 'request failed');
    if (!request.replied) request.reply(500, 'Server Internal Error');
  }

  /** The hooks from `first` on, then the route: at once while nothing returns a promise, after it when something does. */
  private route(request: IncomingRequest, first: number): Promise<void> | undefined {
    const hooks = this.hooks;
    for (let i = first; i < hooks.length; i++) {
      const answered = hooks[i]!(request, this.scope);
      if (answered === true) return undefined;
      if (answered !== false) return answered.then((done) => (done ? undefined : this.route(request, i + 1)));
    }
    const message = request.message;
    const target = message.requestUri;
    const match = this.scope.router.match(message.method, target.user, target.host);
    if (!match) request.reply(404, 'Not Found (no route)');
    else if (!match.handler.methods.includes(message.method)) request.reply(405, 'Method Not Allowed', { headers: [allowHeader(this.scope.router)] });
    else return match.handler.handle(request, match.route) ?? undefined;
    return undefined;
  }
}

function allowHeader(router: Router) {
  return { name: 'allow', value: router.allowedMethods().join(', ') };
}

function answerOptions(request: IncomingRequest, router: Router): void {
  request.reply(200, 'OK', {
    headers: [
      allowHeader(router),
      { name: 'accept', value: 'text/plain, message/cpim, application/im-iscomposing+xml, */*' },
      { name: 'accept-encoding', value: 'identity' },
      { name: 'supported', value: 'path, outbound' },
    ],
  });
}
