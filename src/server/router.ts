// The declarative routing table: the first route whose method, domain and user patterns match the
// request-URI picks the handler. Handlers are plugins registered by name, each saying which
// methods it serves, so rooms and gateways plug in as one more name in the table.
import type { IncomingRequest } from '../sip/index.js';
import { ConfigError, compileRoutePattern, type Route } from '../config/index.js';

export interface RequestHandler {
  readonly name: string;
  /** Methods the handler serves; a route sending it any other gets 405. */
  readonly methods: readonly string[];
  handle(request: IncomingRequest, route: Route): void | Promise<void>;
}

interface CompiledRoute {
  route: Route;
  methods?: Set<string>;
  domain?: RegExp;
  user?: RegExp;
}

export class RouterError extends Error {
  override name = 'RouterError';
}

export class Router {
  private readonly handlers = new Map<string, RequestHandler>();
  private compiled: CompiledRoute[] = [];

  constructor(private routes: Route[]) {}

  register(handler: RequestHandler): void {
    if (this.handlers.has(handler.name)) throw new RouterError(`handler "${handler.name}" registered twice`);
    this.handlers.set(handler.name, handler);
  }

  /** Adds a route in front of the configured ones (for modules that claim addresses of their own). */
  prepend(route: Route): void {
    this.routes = [route, ...this.routes];
  }

  /** Compiles the table; throws naming the route whose handler does not exist. */
  compile(): void {
    this.compiled = this.routes.map((route, index) => {
      if (!this.handlers.has(route.handler)) {
        throw new ConfigError([{ key: `routes[${index}].handler`, reason: `no handler named "${route.handler}" (known: ${[...this.handlers.keys()].join(', ')})` }]);
      }
      return {
        route,
        methods: route.method ? new Set(route.method) : undefined,
        domain: route.domain ? compileRoutePattern(route.domain, true) : undefined,
        user: route.user ? compileRoutePattern(route.user, false) : undefined,
      };
    });
  }

  match(method: string, user: string, domain: string): { handler: RequestHandler; route: Route } | undefined {
    for (const entry of this.compiled) {
      if (entry.methods && !entry.methods.has(method)) continue;
      if (entry.domain && !entry.domain.test(domain)) continue;
      if (entry.user && !entry.user.test(user)) continue;
      return { handler: this.handlers.get(entry.route.handler)!, route: entry.route };
    }
    return undefined;
  }

  /** Every method some handler serves: the Allow header. */
  allowedMethods(): string[] {
    const methods = new Set(['OPTIONS', 'REGISTER']);
    for (const handler of this.handlers.values()) for (const m of handler.methods) methods.add(m);
    return [...methods];
  }
}
