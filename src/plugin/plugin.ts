// The one shape every feature of Parley takes: a plugin. The server composes a list of them
// (createServer's `plugins`, by default `defaultPlugins()`): it starts each with a PluginContext,
// puts their routes in front of the configured ones, hands the router their handlers, and the
// admin endpoint gathers their RPC methods, metrics, health and core.status fields. A plugin
// imports this module and what it uses itself, never the server: see "Writing a plugin" in
// docs/architecture.md.
import type { Logger } from 'pino';
import type { Config, Route } from '../config/index.js';
import type { IncomingRequest, SipStack, TimerQueue, TransportLayer } from '../sip/index.js';
import type { Store } from '../store/index.js';
import type { RpcMethods } from './rpc.js';

/**
 * Names a service one plugin provides and others use, with its type: `RELAY: ServiceKey<Relay>`.
 * Keys compare by identity; the name is for error messages.
 */
export interface ServiceKey<Service> {
  readonly name: string;
  /** Never set: carries the service's type. */
  readonly type?: Service;
}

export function serviceKey<Service>(name: string): ServiceKey<Service> {
  return { name };
}

/** A list of plugins that cannot be composed or started, naming the plugins and the service in question. */
export class PluginError extends Error {
  override name = 'PluginError';
}

/** The route fields a handler reads (the reject and reply handlers' status and reason). */
export type RouteTarget = Pick<Route, 'handler' | 'status' | 'reason'>;

export interface RequestHandler {
  readonly name: string;
  /** Methods the handler serves; a route sending it any other gets 405. */
  readonly methods: readonly string[];
  handle(request: IncomingRequest, route: RouteTarget): void | Promise<void>;
}

/** Request-URI hosts a route takes, compared case-insensitively. */
export interface DomainMatch {
  /** The domains Parley serves (config.domains). */
  served?: boolean;
  names?: readonly string[];
}

/** Request-URI users a route takes, compared as written; a glob's `*` stands for any characters. */
export interface UserMatch {
  names?: readonly string[];
  globs?: readonly string[];
}

/**
 * A route a plugin claims, as data. The plugins' routes go before the configured ones (in the
 * order of the plugin list); `fallback` ones after every plugin's other routes.
 */
export interface PluginRoute {
  methods: readonly string[];
  /** Any domain when absent. */
  domain?: DomainMatch;
  /** Any user when absent. */
  user?: UserMatch;
  handler: string;
  /** A catch-all (the per-user gateway's for local users) that must not shadow other plugins' addresses. */
  fallback?: boolean;
}

/** A Prometheus metric whose value is read when scraped, so the message path pays nothing. */
export interface Metric {
  kind: 'counter' | 'gauge';
  /** parley_<plugin>_..., counters ending in _total. */
  name: string;
  help: string;
  /** For a labelled metric: its label names, and `read` gives one value per label set. */
  labelNames?: readonly string[];
  read(): number | ReadonlyArray<{ labels: Record<string, string>; value: number }>;
}

export type PluginHealth = { status: 'ok' } | { status: 'degraded'; reason: string };

/** A plugin as the server composes it: for the admin endpoint, which gathers from the others. */
export interface ComposedPlugin {
  readonly plugin: ParleyPlugin;
  /** Whether its config section enables it; a disabled plugin is neither started nor routed to. */
  readonly enabled: boolean;
}

/** What the server gives a plugin at start. */
export interface PluginContext {
  readonly config: Config;
  /** A child logger whose `module` is the plugin's name. */
  readonly log: Logger;
  readonly stack: SipStack;
  readonly transports: TransportLayer;
  readonly timers: TimerQueue;
  readonly store: Store;
  /** The served domains, lower-cased. */
  readonly domains: ReadonlySet<string>;
  /** A local user exists when provisioned (digest users) or when it has ever registered. */
  isKnownUser(aor: string): Promise<boolean>;
  /** Makes a service of `provides` available to the plugins started after this one. */
  provide<Service>(key: ServiceKey<Service>, service: Service): void;
  /** A service of `requires` (there by then: the server starts providers first). */
  require<Service>(key: ServiceKey<Service>): Service;
  /** A service of `uses`: there when a plugin providing it is enabled. */
  find<Service>(key: ServiceKey<Service>): Service | undefined;
  /** Every plugin of the server, in start order. */
  readonly plugins: readonly ComposedPlugin[];
}

export interface ParleyPlugin {
  /** Unique in a server; the logger's module and the prefix of its RPC methods and metrics. */
  readonly name: string;
  /**
   * The config section the plugin owns and whether it enables the plugin; always enabled when
   * absent. `disabled` says so to the callers of its RPC methods, e.g. "chat rooms are disabled".
   */
  readonly section?: { key: keyof Config; enabled(config: Config): boolean; disabled?: string };
  /** Services that must be provided for it to start: the server starts their providers first. */
  readonly requires?: readonly ServiceKey<unknown>[];
  /** Services it uses when some plugin provides them (started first when enabled). */
  readonly uses?: readonly ServiceKey<unknown>[];
  /** Services it provides through `context.provide` during start. */
  readonly provides?: readonly ServiceKey<unknown>[];
  /** The routes it claims, from the config (before start). */
  routes?(config: Config): readonly PluginRoute[];
  /** The handlers its routes (or the configured ones) name. */
  readonly handlers?: readonly RequestHandler[];
  /** Builds what it serves and loads it, in dependency order, before the transports listen. */
  start?(context: PluginContext): void | Promise<void>;
  /**
   * Once the transports listen, in reverse start order: a service begins its own traffic after
   * the plugins that use it (the presence agent tells the listening gateways who watches whom).
   */
  serve?(): void | Promise<void>;
  /** At stop, in start order, before any `stop`: a service ends its own traffic before the plugins that use it stop. */
  drain?(): void | Promise<void>;
  /** Closes what start built, in reverse start order. */
  stop?(): void | Promise<void>;
  /**
   * Its RPC methods, named "<name>.<method>". Called once, after start; for a disabled plugin
   * too, whose methods are then answered "<section.disabled> (<key>.enabled is false)".
   */
  rpc?(config: Config): RpcMethods;
  /** Its metrics. Called once, after start. */
  metrics?(): readonly Metric[];
  health?(): PluginHealth;
  /** Fields it adds to core.status; while it is disabled, core.status has "<name>": null instead. */
  status?(): Record<string, unknown>;
}
