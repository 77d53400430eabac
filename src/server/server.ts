// Assembles Parley: store, transports, transaction layer, registrar, relay and the routing table,
// and runs the checks every request passes before a handler sees it.
import type { Logger } from 'pino';
import { STORE_RETRY_AFTER_SECONDS, isStoreUnavailable, openStore, type Store } from '../store/index.js';
import type { Config } from '../config/index.js';
import { formatListener, openPolicyRisk, realmFor } from '../config/index.js';
import {
  type IncomingRequest, SipStack, TimerQueue, TransportLayer, type SipUri, type SipMessage, parseNameAddr, parseUri,
} from '../sip/index.js';
import { AuthPolicy, Registrar } from '../registrar/index.js';
import { Relay, STORE_UNAVAILABLE_REASON, loopKey } from '../relay/index.js';
import { type RequestHandler, Router } from './router.js';
import { RoomService, escapeRegExp, globSource, parseExtraHeaders } from '../imc/index.js';
import { PRESENCE_METHODS, PresenceAgent, presenceRoute } from '../presence/index.js';
import { AdminServer } from '../admin/index.js';
import { XmppGateway, gatewayDomainOf, xmppGatewayOptions } from '../xmpp/index.js';
import { GatewayService, gatewayOptions, gatewayRoutes, mappedUsersRoute } from '../gateway/index.js';

export interface ServerOptions {
  logger: Logger;
}

/** Methods RFC 3261 and its extensions define; anything else is answered 501 rather than 405. */
const KNOWN_METHODS = new Set([
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER',
  'MESSAGE', 'UPDATE',
]);

export class ParleyServer {
  readonly log: Logger;
  readonly router: Router;
  readonly timers = new TimerQueue();
  readonly domains: Set<string>;
  store!: Store;
  transports!: TransportLayer;
  stack!: SipStack;
  registrar!: Registrar;
  relay!: Relay;
  auth!: AuthPolicy;
  /** The room service, when imc.enabled. */
  rooms?: RoomService;
  /** The presence agent, when presence.enabled; gateways use it as a PresenceService. */
  presence?: PresenceAgent;
  /** The management endpoint (RPC, metrics), when admin.enabled. */
  admin?: AdminServer;
  /** The XMPP gateway, when xmpp.enabled. */
  xmpp?: XmppGateway;
  /** The per-user gateways (users' own accounts on other networks), when gateway.enabled. */
  gateway?: GatewayService;
  private stopping = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    readonly config: Config,
    options: ServerOptions,
  ) {
    this.log = options.logger;
    this.domains = new Set(config.domains.map((d) => d.toLowerCase()));
    this.router = new Router(config.routes);
    this.router.register({ name: 'relay', methods: ['MESSAGE'], handle: (request) => this.relay.handle(request) });
    this.router.register({
      name: 'reject',
      methods: [...KNOWN_METHODS].filter((m) => m !== 'ACK'),
      handle: (request, route) => request.reply(route.status ?? 403, route.reason),
    });
    this.router.register({
      name: 'reply',
      methods: [...KNOWN_METHODS].filter((m) => m !== 'ACK'),
      handle: (request, route) => request.reply(route.status ?? 200, route.reason),
    });
    // First prepended, so last of the modules' routes: rooms and the gateways' own addresses go before it.
    const mapped = mappedUsersRoute(config);
    if (mapped) this.router.prepend(mapped);
    if (config.imc.enabled) {
      this.router.register({ name: 'imc', methods: ['MESSAGE'], handle: (request) => this.rooms!.handle(request) });
      const roomUsers = `${escapeRegExp(config.imc.manager)}|${globSource(config.imc.room_pattern)}`;
      this.router.prepend({ method: ['MESSAGE'], domain: config.domains.map(escapeRegExp).join('|'), user: roomUsers, handler: 'imc' });
    }
    if (config.presence.enabled) {
      this.router.register({ name: 'presence', methods: PRESENCE_METHODS, handle: (request) => this.presence!.handle(request) });
      this.router.prepend(presenceRoute(config));
    }
    if (config.xmpp.enabled) {
      this.router.register({ name: 'xmpp', methods: ['MESSAGE'], handle: (request) => this.xmpp!.handle(request) });
      this.router.prepend({ method: ['MESSAGE'], domain: escapeRegExp(gatewayDomainOf(config)), handler: 'xmpp' });
      // RFC 7248: SIP users watch XMPP users at their gateway addresses; the agent keeps those dialogs.
      if (config.presence.enabled) this.router.prepend({ method: ['SUBSCRIBE'], domain: escapeRegExp(gatewayDomainOf(config)), handler: 'presence' });
    }
    if (config.gateway.enabled) {
      this.router.register({ name: 'gateway', methods: ['MESSAGE'], handle: (request) => this.gateway!.handle(request) });
      for (const route of gatewayRoutes(config)) this.router.prepend(route);
    }
  }

  /** Registers a handler plugin (rooms, gateways, ...) to be named in the routing table. */
  handle(handler: RequestHandler): this {
    this.router.register(handler);
    return this;
  }

  async start(): Promise<void> {
    this.router.compile();
    const config = this.config;
    this.store = await openStore(config.database, { log: this.log.child({ module: 'store' }), queryTimeout: config.database_timeout });
    try {
      this.transports = new TransportLayer({
        listen: config.listen,
        tls: config.tls.cert && config.tls.key ? { cert: config.tls.cert, key: config.tls.key, ca: config.tls.ca ?? undefined } : undefined,
        maxMessageSize: config.sip.max_message_size,
        idleTimeout: config.sip.tcp_idle_timeout,
        messageTimeout: config.sip.message_timeout,
        maxSendBuffer: config.sip.max_send_buffer,
        maxConnections: config.sip.max_connections,
        maxConnectionsPerIp: config.sip.max_connections_per_ip,
        rate: config.sip.rate_limit > 0 ? { limit: config.sip.rate_limit, window: config.sip.rate_window, action: config.sip.rate_action } : undefined,
        exemptSources: config.sip.exempt_sources,
      });
      this.stack = new SipStack(this.transports, this.timers, {
        t1: config.sip.t1,
        t2: config.sip.t2,
        t4: config.sip.t4,
        mtu: config.sip.mtu,
        userAgent: config.sip.user_agent,
        maxTransactions: config.sip.max_transactions,
        advertise: config.advertise ? `${config.advertise.host}${config.advertise.port ? `:${config.advertise.port}` : ''}` : undefined,
      });
      this.registrar = new Registrar(
        this.store.locations,
        {
          minExpires: config.registrar.min_expires,
          maxExpires: config.registrar.max_expires,
          defaultExpires: config.registrar.default_expires,
          maxContacts: config.registrar.max_contacts,
        },
        (id) => this.transports.isConnected(id),
        this.log.child({ module: 'registrar' }),
      );
      this.auth = new AuthPolicy(this.store.users, {
        policy: config.auth.policy,
        realmFor: (domain) => realmFor(config, domain),
        algorithms: config.auth.algorithms,
        nonceExpires: config.auth.nonce_expires,
        checkUri: config.auth.check_uri,
      });
      this.relay = new Relay(
        this.stack,
        this.registrar,
        this.store.offline,
        {
          domains: this.domains,
          realms: new Set([...this.domains].map((domain) => realmFor(config, domain))),
          outboundProxy: config.relay.outbound_proxy ?? undefined,
          foreignDomainStatus: config.relay.foreign_domain_status,
          maxBody: config.relay.max_body,
          forkTimeout: config.relay.fork_timeout,
          isKnownUser: this.isKnownUser,
          offline: { enabled: config.offline.enabled, maxPerUser: config.offline.max_per_user, expires: config.offline.expires },
        },
        this.log.child({ module: 'relay' }),
      );
      if (config.presence.enabled) {
        const { min_expires: minExpires, max_expires: maxExpires, default_expires: defaultExpires, policy } = config.presence;
        const limits = {
          maxPublicationsPerPresentity: config.presence.max_publications_per_presentity,
          maxPublications: config.presence.max_publications,
          maxSubscriptionsPerWatcher: config.presence.max_subscriptions_per_watcher,
          maxSubscriptions: config.presence.max_subscriptions,
        };
        this.presence = new PresenceAgent(this.stack, this.registrar, this.relay, this.store.presence, { minExpires, maxExpires, defaultExpires, policy, ...limits }, this.log.child({ module: 'presence' }));
      }
      if (config.xmpp.enabled) {
        const presence = this.presence && { service: this.presence, isKnownUser: this.isKnownUser };
        this.xmpp = new XmppGateway(xmppGatewayOptions(config), this.relay, this.store.outbox, this.log.child({ module: 'xmpp' }), presence);
      }
      if (config.gateway.enabled) {
        const accounts = await this.store.gatewayAccountsIn(config.gateway.db_table);
        const dependencies = { accounts, outbox: this.store.outbox, relay: this.relay, registrar: this.registrar, presence: this.presence };
        this.gateway = new GatewayService(gatewayOptions(config), dependencies, this.log.child({ module: 'gateway' }));
      }
      if (config.imc.enabled) {
        this.rooms = new RoomService(
          await this.store.rooms({ rooms: config.imc.rooms_table, members: config.imc.members_table }),
          this.store.outbox,
          this.relay,
          this.isKnownUser,
          {
            domains: this.domains,
            manager: config.imc.manager,
            roomPattern: config.imc.room_pattern,
            cmdStartChar: config.imc.cmd_start_char,
            createOnJoin: config.imc.create_on_join,
            checkOnCreate: config.imc.check_on_create,
            outboundProxy: config.imc.outbound_proxy ?? undefined,
            extraHeaders: parseExtraHeaders(config.imc.extra_hdrs),
            history: config.imc.history,
            cpim: config.imc.cpim,
            maxMembers: config.imc.max_members,
            maxRoomsPerUser: config.imc.max_rooms_per_user,
            maxBody: config.imc.max_body,
            maxRate: config.imc.max_rate,
            rateBurst: config.imc.rate_burst,
            requireIdentity: config.auth.policy === 'required',
            maxBacklog: config.imc.max_backlog,
            maxPending: config.imc.max_pending,
          },
          this.log.child({ module: 'imc' }),
        );
        await this.rooms.start();
      }
      if (config.admin.enabled) {
        this.admin = new AdminServer(this, this.log.child({ module: 'admin' }));
        await this.admin.start();
      }
      this.transports.on('connectionClosed', (id) => this.registrar.connectionClosed(id));
      this.transports.on('error', (error) => this.log.warn({ err: error.message }, 'transport error'));
      this.transports.on('refused', (refusal) => this.log.warn(refusal, 'SIP traffic refused'));
      this.stack.on('error', (error) => this.log.debug({ err: error.message }, 'send failed'));
      this.stack.on('request', (request) => this.track(this.dispatch(request)));
      await this.registrar.start();
      await this.presence?.load();
      await this.transports.start();
      this.timers.start();
      this.relay.start();
      await this.xmpp?.start();
      await this.gateway?.start();
      this.presence?.start();
      await this.rooms?.deliverPending();
    } catch (error) {
      await this.admin?.stop();
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
    const deadline = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    await this.admin?.stop();
    await this.rooms?.stop();
    // The agent first: its subscriptions go on after the restart, so what the gateways withdraw as they stop must not reach watchers.
    await this.presence?.stop();
    await this.gateway?.stop();
    await this.xmpp?.stop();
    this.relay?.stop();
    this.registrar?.stop();
    this.timers.stop();
    await this.transports?.stop();
    await this.store?.close();
    this.log.info('parley stopped');
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

  private async dispatch(request: IncomingRequest): Promise<void> {
    try {
      await this.route(request);
    } catch (error) {
      const context = { method: request.message.method, callId: request.message.get('call-id') };
      if (isStoreUnavailable(error)) {
        // The outage itself is logged once by the store.
        this.log.debug(context, 'request refused: store unavailable');
        if (!request.replied) {
          request.reply(503, STORE_UNAVAILABLE_REASON, { headers: [{ name: 'retry-after', value: String(STORE_RETRY_AFTER_SECONDS) }] });
        }
        return;
      }
      this.log.error({ err: error, ...context }, 'request failed');
      if (!request.replied) request.reply(500, 'Server Internal Error');
    }
  }

  private async route(request: IncomingRequest): Promise<void> {
    const message = request.message;
    const method = message.method;
    if (this.stopping) return request.reply(503, 'Service Unavailable (shutting down)', { headers: [{ name: 'retry-after', value: '5' }] });
    if (!KNOWN_METHODS.has(method)) return request.reply(501, 'Not Implemented', { headers: [this.allowHeader()] });
    let target: SipUri;
    try {
      target = message.requestUri;
    } catch {
      return request.reply(400, 'Bad Request-URI');
    }
    if (target.scheme !== 'sip' && target.scheme !== 'sips') return request.reply(416, 'Unsupported URI Scheme');
    const maxForwards = message.get('max-forwards');
    if (maxForwards !== undefined && Number(maxForwards) === 0 && method !== 'OPTIONS') return request.reply(483, 'Too Many Hops');
    if (this.stack.hasLooped(message, loopKey)) return request.reply(482, 'Loop Detected');
    if (message.has('proxy-require')) {
      return request.reply(420, 'Bad Extension', { headers: [{ name: 'unsupported', value: message.getAll('proxy-require').join(', ') }] });
    }
    this.consumeOwnRoutes(message);
    const local = this.domains.has(target.host);

    if (method === 'OPTIONS' && (!target.user || !local)) return this.answerOptions(request);
    if (method === 'REGISTER') {
      if (!local) return request.reply(403, 'Forbidden (domain not served here)');
      const to = message.toUri;
      if (!this.domains.has(to.host)) return request.reply(403, 'Forbidden (domain not served here)');
      if (this.auth.required && !(await this.auth.verify(request, to.user, to.host))) return;
      return this.registrar.handle(request, `${to.user}@${to.host}`);
    }
    if (this.auth.required) {
      const from = message.fromUri;
      if (this.domains.has(from.host)) {
        if (!(await this.auth.verify(request, from.user, from.host))) return;
        request.identity = `${from.user}@${from.host}`;
      }
    }
    if (method === 'OPTIONS') return this.answerOptions(request);
    const match = this.router.match(method, target.user, target.host);
    if (!match) return request.reply(404, 'Not Found (no route)');
    if (!match.handler.methods.includes(method)) return request.reply(405, 'Method Not Allowed', { headers: [this.allowHeader()] });
    await match.handler.handle(request, match.route);
  }

  /** Loose routing (RFC 3261 §16.4): Route entries naming Parley itself are used up here, not forwarded. */
  private consumeOwnRoutes(message: SipMessage): void {
    if (!message.has('route')) return;
    for (let top = message.getAll('route')[0]; top !== undefined; top = message.getAll('route')[0]) {
      let uri: SipUri;
      try {
        uri = parseUri(parseNameAddr(top).uri);
      } catch {
        return;
      }
      const ours = (this.domains.has(uri.host) && !uri.user) || this.stack.isOwnAddress(uri.host, uri.port);
      if (!ours) return;
      message.removeFirstValue('route');
    }
  }

  /** A local user exists when provisioned (digest users) or when it has ever registered. */
  readonly isKnownUser = async (aor: string): Promise<boolean> => {
    if (await this.registrar.isKnown(aor)) return true;
    const at = aor.lastIndexOf('@');
    return (await this.store.users.get(aor.slice(0, at), aor.slice(at + 1))) !== undefined;
  };

  private allowHeader() {
    return { name: 'allow', value: this.router.allowedMethods().join(', ') };
  }

  private answerOptions(request: IncomingRequest): void {
    request.reply(200, 'OK', {
      headers: [
        this.allowHeader(),
        { name: 'accept', value: 'text/plain, message/cpim, application/im-iscomposing+xml, */*' },
        { name: 'accept-encoding', value: 'identity' },
        { name: 'supported', value: 'path, outbound' },
      ],
    });
  }
}

export function createServer(config: Config, options: ServerOptions): ParleyServer {
  return new ParleyServer(config, options);
}
