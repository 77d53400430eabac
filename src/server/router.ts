// The routing table: the first route whose method, domain and user match the request-URI picks the
// handler. The plugins' routes (data: names, globs, the served domains) go first, then the
// configured ones (regular expressions); handlers are registered by name, each saying which
// methods it serves.
import { ConfigError, compileRoutePattern, type Route } from '../config/index.js';
import type { DomainMatch, PluginRoute, RequestHandler, RouteTarget, UserMatch } from '../plugin/index.js';

type Test = (value: string) => boolean;

/** What a route that matches gives: made once per route, when the table is compiled. */
export interface RouteMatch {
  readonly handler: RequestHandler;
  readonly route: RouteTarget;
}

interface CompiledRoute {
  match: RouteMatch;
  methods?: ReadonlySet<string>;
  domain?: Test;
  user?: Test;
}

export class RouterError extends Error {
  override name = 'RouterError';
}

export class Router {
  private readonly handlers = new Map<string, RequestHandler>();
  private compiled: CompiledRoute[] = [];

  constructor(
    private readonly configured: readonly Route[],
    private readonly servedDomains: ReadonlySet<string>,
  ) {}

  register(handler: RequestHandler): void {
    if (this.handlers.has(handler.name)) throw new RouterError(`handler "${handler.name}" registered twice`);
    this.handlers.set(handler.name, handler);
  }

  /**
   * Compiles the plugins' routes (each with the config key of the plugin claiming it), then the
   * configured ones; throws a ConfigError naming the key of a route whose handler does not exist.
   */
  compile(claimed: ReadonlyArray<{ key: string; route: PluginRoute }>): void {
    const ordered = [...claimed.filter((c) => !c.route.fallback), ...claimed.filter((c) => c.route.fallback)];
    const fromPlugins = ordered.map(({ key, route }) => {
      this.checkHandler(route.handler, key);
      return { match: this.matchOf({ handler: route.handler }), methods: new Set(route.methods), domain: route.domain && this.domainTest(route.domain), user: route.user && userTest(route.user) };
    });
    const fromConfig = this.configured.map((route, index) => {
      this.checkHandler(route.handler, `routes[${index}].handler`);
      return {
        match: this.matchOf(route),
        methods: route.method ? new Set(route.method) : undefined,
        domain: route.domain ? regExpTest(compileRoutePattern(route.domain, true)) : undefined,
        user: route.user ? regExpTest(compileRoutePattern(route.user, false)) : undefined,
      };
    });
    this.compiled = [...fromPlugins, ...fromConfig];
  }

  match(method: string, user: string, domain: string): RouteMatch | undefined {
    for (const entry of this.compiled) {
      if (entry.methods && !entry.methods.has(method)) continue;
      if (entry.domain && !entry.domain(domain)) continue;
      if (entry.user && !entry.user(user)) continue;
      return entry.match;
    }
    return undefined;
  }

  /** Every method some handler serves: the Allow header. */
  allowedMethods(): string[] {
    const methods = new Set(['OPTIONS', 'REGISTER']);
    for (const handler of this.handlers.values()) for (const m of handler.methods) methods.add(m);
    return [...methods];
  }

  /** The match of a route whose handler checkHandler found. */
  private matchOf(route: RouteTarget): RouteMatch {
    return { handler: this.handlers.get(route.handler)!, route };
  }

  private checkHandler(name: string, key: string): void {
    if (!this.handlers.has(name)) {
      throw new ConfigError([{ key, reason: `no handler named "${name}" (known: ${[...this.handlers.keys()].join(', ')})` }]);
    }
  }

  private domainTest(match: DomainMatch): Test {
    const names = new Set(match.names?.map((name) => name.toLowerCase()));
    const served = match.served ? this.servedDomains : new Set<string>();
    // A host as nearly every request writes it, in lower case already, is looked up without a lower-cased copy.
    const known = (host: string) => names.has(host) || served.has(host);
    return (domain) => {
      if (known(domain)) return true;
      const host = domain.toLowerCase();
      return host !== domain && known(host);
    };
  }
}

function userTest(match: UserMatch): Test {
  const names = new Set(match.names);
  const globs = (match.globs ?? []).map(globPattern);
  return (user) => {
    if (names.has(user)) return true;
    // A loop rather than globs.some(): no closure made per request routed.
    for (const glob of globs) if (glob.test(user)) return true;
    return false;
  };
}

function regExpTest(pattern: RegExp): Test {
  return (value) => pattern.test(value);
}

/** `chat-*` → /^chat-.*$/: every character but `*` stands for itself. */
function globPattern(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}
