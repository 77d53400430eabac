// Assembles Parley: the store, the transports, the transaction layer and the request pipeline, and
// the plugins (registrar, relay, rooms, gateways, admin, ...) that serve what the routing table
// hands them. Which plugins, in which order, is composition.ts's; what a plugin is, plugin.ts's.
import type { Logger } from 'pino';
import { openStore, type Store } from '../store/index.js';
import type { Config } from '../config/index.js';
import { formatListener, openPolicyRisk, realmFor } from '../config/index.js';
import { SipStack, TimerQueue, TransportLayer, splitAor, type StackOptions, type TransportOptions } from '../sip/index.js';
import { AuthPolicy, type Registrar } from '../registrar/index.js';
import type { Relay } from '../relay/index.js';
import type { RoomService } from '../imc/index.js';
import type { PresenceAgent } from '../presence/index.js';
import type { XmppGateway } from '../xmpp/index.js';
import type { GatewayService } from '../gateway/index.js';
import type { AdminServer } from '../admin/index.js';
import { REGISTRAR } from '../registrar/plugin.js';
import { RELAY } from '../relay/plugin.js';
import { ROOMS } from '../imc/plugin.js';
import { PRESENCE } from '../presence/plugin.js';
import { XMPP } from '../xmpp/plugin.js';
import { GATEWAY } from '../gateway/plugin.js';
import { ADMIN } from '../admin/plugin.js';
import { Router } from './router.js';
import { KNOWN_METHODS, RequestPipeline } from './pipeline.js';
import { composePlugins } from './composition.js';
import { defaultPlugins } from './default-plugins.js';
import { PluginError, type ComposedPlugin, type ParleyPlugin, type PluginContext, type RequestHandler, type ServiceKey } from '../plugin/index.js';

export interface ServerOptions {
  logger: Logger;
  /** The features, each a plugin; `defaultPlugins()` when absent. */
  plugins?: readonly ParleyPlugin[];
}

const ANSWERING_METHODS = [...KNOWN_METHODS].filter((m) => m !== 'ACK');

/** How the configured answers are sent: they have no side effect, so a retransmission is simply answered again. */
const STATELESS = Object.freeze({ stateless: true });

/** The handlers of the routing table that are no feature: a configured answer. */
const CORE_HANDLERS: readonly RequestHandler[] = [
  { name: 'reject', methods: ANSWERING_METHODS, handle: (request, route) => request.reply(route.status ?? 403, route.reason, STATELESS) },
  { name: 'reply', methods: ANSWERING_METHODS, handle: (request, route) => request.reply(route.status ?? 200, route.reason, STATELESS) },
];

export class ParleyServer {
  readonly log: Logger;
  readonly router: Router;
  readonly timers = new TimerQueue();
  readonly domains: Set<string>;
  store!: Store;
  transports!: TransportLayer;
  stack!: SipStack;
  /** The plugins in start order, each with whether its section enables it; set by start. */
  plugins: readonly ComposedPlugin[] = [];
  private readonly given: readonly ParleyPlugin[];
  private readonly services = new Map<ServiceKey<unknown>, unknown>();
  private readonly started: ParleyPlugin[] = [];
  private stopping = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    readonly config: Config,
    options: ServerOptions,
  ) {
    this.log = options.logger;
    this.domains = new Set(config.domains.map((d) => d.toLowerCase()));
    this.router = new Router(config.routes, this.domains);
    this.given = options.plugins ?? defaultPlugins();
  }

  /** A service a started plugin provides. */
  service<Service>(key: ServiceKey<Service>): Service | undefined {
    return this.services.get(key) as Service | undefined;
  }

  get registrar(): Registrar {
    return this.required(REGISTRAR);
  }

  get relay(): Relay {
    return this.required(RELAY);
  }

  /** The room service, when imc.enabled. */
  get rooms(): RoomService | undefined {
    return this.service(ROOMS);
  }

  /** The presence agent, when presence.enabled. */
  get presence(): PresenceAgent | undefined {
    return this.service(PRESENCE);
  }

  /** The XMPP gateway, when xmpp.enabled. */
  get xmpp(): XmppGateway | undefined {
    return this.service(XMPP);
  }

  /** The per-user gateways (users' own accounts on other networks), when gateway.enabled. */
  get gateway(): GatewayService | undefined {
    return this.service(GATEWAY);
  }

  /** The management endpoint (RPC, metrics, health), when admin.enabled. */
  get admin(): AdminServer | undefined {
    return this.service(ADMIN);
  }

  async start(): Promise<void> {
    const config = this.config;
    this.plugins = composePlugins(this.given, config);
    const enabled = this.plugins.filter((entry) => entry.enabled).map((entry) => entry.plugin);
    for (const handler of [...CORE_HANDLERS, ...enabled.flatMap((plugin) => plugin.handlers ?? [])]) this.router.register(handler);
    // Routes in the order of the list given, which its author sees, rather than the start order derived from it.
    const routed = this.given.filter((plugin) => enabled.includes(plugin));
    this.router.compile(routed.flatMap((plugin) => (plugin.routes?.(config) ?? []).map((route) => ({ key: plugin.section?.key ?? plugin.name, route }))));

    this.store = await openStore(config.database, {
      log: this.log.child({ module: 'store' }),
      queryTimeout: config.database_timeout,
      credentialsCache: { seconds: config.auth.credentials_cache_seconds },
    });
    let listening = false;
    try {
      this.transports = new TransportLayer(transportOptions(config));
      this.stack = new SipStack(this.transports, this.timers, stackOptions(config));
      const auth = new AuthPolicy(this.store.users, {
        policy: config.auth.policy,
        realmFor: (domain) => realmFor(config, domain),
        algorithms: config.auth.algorithms,
        nonceExpires: config.auth.nonce_expires,
        checkUri: config.auth.check_uri,
      });
      const pipeline = new RequestPipeline({ domains: this.domains, stack: this.stack, auth, router: this.router, isStopping: () => this.stopping }, this.log);
      this.transports.on('error', (error) => this.log.warn({ err: error.message }, 'transport error'));
      this.transports.on('refused', (refusal) => this.log.warn(refusal, 'SIP traffic refused'));
      this.transports.on('udpBufferCapped', ({ listener, buffer, asked, got }) => {
        const [key, sysctl] = buffer === 'receive' ? ['udp_receive_buffer', 'net.core.rmem_max'] : ['udp_send_buffer', 'net.core.wmem_max'];
        this.log.warn(
          { listener, asked, got },
          `UDP ${buffer} buffer smaller than sip.${key}: datagrams of a burst beyond it are dropped while Parley is busy; raise ${sysctl} (sysctl -w ${sysctl}=${asked})`,
        );
      });
      this.stack.on('error', (error) => this.log.debug({ err: error.message }, 'send failed'));
      this.stack.on('request', (request) => {
        // A request answered at once leaves nothing to wait for at stop.
        const rest = pipeline.dispatch(request);
        if (rest) this.track(rest);
      });
      for (const plugin of enabled) {
        await plugin.start?.(this.contextFor(plugin));
        this.started.push(plugin);
      }
      await this.transports.start();
      listening = true;
      this.timers.start();
      for (const plugin of [...this.started].reverse()) await plugin.serve?.();
    } catch (error) {
      await this.stopPlugins();
      if (listening) await this.transports.stop();
      await this.store.close();
      throw error;
    }
    this.log.info({ listen: this.transports.bound.map((b) => `${b.proto}:${b.host}:${b.port}`), domains: [...this.domains] }, 'parley started');
    if (config.auth.policy === 'open') this.warnOfOpenListeners();
  }

  /** auth.policy open is for a loopback demo: on an address others reach, anyone may register and write as anyone. */
  private warnOfOpenListeners(): void {
    for (const listener of this.transports.bound) {
      const risk = openPolicyRisk(this.config, listener);
      if (risk) this.log.warn({ listener: formatListener(listener) }, `${risk.key}: ${risk.reason}`);
    }
  }

  /** Stops taking requests, lets the ones in progress finish (up to `graceMs`), then closes everything. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // What stopping waits for may be due only on unref'd timers (a retry, a grace period): without a
    // handle held meanwhile, Node could exit half-way, with the store not closed.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      const deadline = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
      await this.stopPlugins();
      this.timers.stop();
      await this.transports?.stop();
      await this.store?.close();
    } finally {
      clearInterval(keepAlive);
    }
    this.log.info('parley stopped');
  }

  private async stopPlugins(): Promise<void> {
    for (const plugin of this.started) await plugin.drain?.();
    for (const plugin of this.started.splice(0).reverse()) await plugin.stop?.();
  }

  private contextFor(plugin: ParleyPlugin): PluginContext {
    return {
      config: this.config,
      log: this.log.child({ module: plugin.name }),
      stack: this.stack,
      transports: this.transports,
      timers: this.timers,
      store: this.store,
      domains: this.domains,
      isKnownUser: this.isKnownUser,
      plugins: this.plugins,
      provide: (key, service) => {
        if (!plugin.provides?.includes(key)) throw new PluginError(`plugin "${plugin.name}" provides the service "${key.name}" without declaring it in provides`);
        this.services.set(key, service);
      },
      require: (key) => {
        const service = this.service(key);
        if (service === undefined) throw new PluginError(`plugin "${plugin.name}" requires the service "${key.name}", which was not provided`);
        return service;
      },
      find: (key) => this.service(key),
    };
  }

  private required<Service>(key: ServiceKey<Service>): Service {
    const service = this.service(key);
    if (service === undefined) throw new PluginError(`no plugin provides the service "${key.name}" (not started, or not in this server's plugins)`);
    return service;
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    work.then(
      () => this.inFlight.delete(work),
      (error: unknown) => {
        this.inFlight.delete(work);
        // Only a failed error answer gets here: given up, logged, never an unhandled rejection.
        this.log.error({ err: error }, 'request failed, and so did its error answer');
      },
    );
  }

  /** A local user exists when provisioned (digest users) or when it has ever registered. */
  readonly isKnownUser = async (aor: string): Promise<boolean> => {
    if (await this.service(REGISTRAR)?.isKnown(aor)) return true;
    const { user, domain } = splitAor(aor);
    return (await this.store.users.get(user, domain)) !== undefined;
  };
}

function transportOptions(config: Config): TransportOptions {
  const sip = config.sip;
  return {
    listen: config.listen,
    tls: config.tls.cert && config.tls.key ? { cert: config.tls.cert, key: config.tls.key, ca: config.tls.ca ?? undefined } : undefined,
    maxMessageSize: sip.max_message_size,
    idleTimeout: sip.tcp_idle_timeout,
    messageTimeout: sip.message_timeout,
    maxSendBuffer: sip.max_send_buffer,
    udpReceiveBuffer: sip.udp_receive_buffer,
    udpSendBuffer: sip.udp_send_buffer,
    maxConnections: sip.max_connections,
    maxConnectionsPerIp: sip.max_connections_per_ip,
    maxPendingConnectionsPerIp: sip.max_pending_connections_per_ip,
    rate: sip.rate_limit > 0 ? { limit: sip.rate_limit, window: sip.rate_window, burst: sip.rate_burst, action: sip.rate_action } : undefined,
    exemptSources: sip.exempt_sources,
  };
}

function stackOptions(config: Config): StackOptions {
  const sip = config.sip;
  return {
    t1: sip.t1,
    t2: sip.t2,
    mtu: sip.mtu,
    userAgent: sip.user_agent,
    maxTransactions: sip.max_transactions,
    advertise: config.advertise ? `${config.advertise.host}${config.advertise.port ? `:${config.advertise.port}` : ''}` : undefined,
  };
}

export function createServer(config: Config, options: ServerOptions): ParleyServer {
  return new ParleyServer(config, options);
}
