// The shape of parley.yaml. Every object is strict so a misspelt key is an error rather than a
// silently ignored setting, and every option carries its documentation (.describe) so that
// docs/configuration.md is generated from this file.
import { accessSync, constants } from 'node:fs';
import { isIP, isIPv6 } from 'node:net';
import { z } from 'zod';
import { parseUri } from '../sip/uri.js';
import { parseCidr } from '../sip/transport/limits.js';

export const TRANSPORTS = ['udp', 'tcp', 'tls', 'ws', 'wss'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** Transports that need tls.cert and tls.key. */
const SECURE_TRANSPORTS: ReadonlySet<Transport> = new Set(['tls', 'wss']);

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const DIGEST_ALGORITHMS = ['SHA-256', 'MD5'] as const;
export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number];

export const PRESENCE_POLICIES = ['open', 'same-domain'] as const;
export type PresencePolicy = (typeof PRESENCE_POLICIES)[number];

/** Longest presence expiry: each publication and subscription has its own timer, which Node caps at 2^31-1 ms. */
const MAX_PRESENCE_EXPIRES = 2_147_483;

/** One socket to listen on. `host` is bare (no brackets around IPv6), as node:net expects it. */
export interface Listener {
  proto: Transport;
  host: string;
  port: number;
}

/**
 * The address put in Via and Contact instead of a listener's. `host` is written as in a SIP URI:
 * lower-cased, IPv6 in brackets.
 */
export interface AdvertisedAddress {
  host: string;
  port?: number;
}

const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

const LISTEN_FORMAT = `expected PROTO:HOST:PORT with PROTO one of ${TRANSPORTS.join(', ')}`;

function isHostname(text: string): boolean {
  return HOSTNAME.test(text) || isIP(text) === 4;
}

/** A TCP address to listen on; `host` is bare (no brackets around IPv6), as node:net expects it. */
export interface HostPort {
  host: string;
  port: number;
}

/** Splits "host", "host:port", "[v6]" or "[v6]:port"; the host comes back without brackets. */
function splitHostPort(text: string): { host: string; port?: string; bracketed: boolean } | undefined {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    return isIPv6(bracketed[1]) ? { host: bracketed[1], port: bracketed[2], bracketed: true } : undefined;
  }
  const [host, port, ...rest] = text.split(':');
  return rest.length === 0 && isHostname(host) ? { host, port, bracketed: false } : undefined;
}

function parsePort(text: string): number | undefined {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return port <= 65535 ? port : undefined;
}

/** Parses "PROTO:HOST:PORT"; undefined when the text is not of that form. */
export function parseListener(text: string): Listener | undefined {
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  const proto = text.slice(0, colon).toLowerCase() as Transport;
  if (!TRANSPORTS.includes(proto)) return undefined;
  const address = splitHostPort(text.slice(colon + 1));
  const port = address?.port === undefined ? undefined : parsePort(address.port);
  return address && port !== undefined ? { proto, host: address.host.toLowerCase(), port } : undefined;
}

export function formatHostPort({ host, port }: HostPort): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

export function formatListener(listener: Listener): string {
  return `${listener.proto}:${formatHostPort(listener)}`;
}

/**
 * Builds the regular expression a route's `domain` or `user` stands for: it must match the
 * whole value, and domains compare case-insensitively as DNS names do.
 */
export function compileRoutePattern(source: string, caseInsensitive: boolean): RegExp {
  return new RegExp(`^(?:${source})$`, caseInsensitive ? 'i' : '');
}

/** The digest realm of a domain's users: auth.realm, or else the domain itself. */
export function realmFor(config: Config, domain: string): string {
  return config.auth.realm ?? domain;
}

// Every option of a section has a default, so an absent section is an empty one; so is a null one,
// which is what YAML makes of "auth:" with every child commented out.
function section<Shape extends Record<string, z.ZodDefault<z.ZodTypeAny>>>(shape: Shape) {
  return z.preprocess((value) => value ?? {}, z.object(shape).strict());
}

function uniqueItems<Item>(identity: (item: Item) => string) {
  return (items: Item[], ctx: z.RefinementCtx): void => {
    const firstIndex = new Map<string, number>();
    items.forEach((item, index) => {
      const seen = firstIndex.get(identity(item));
      if (seen === undefined) firstIndex.set(identity(item), index);
      else ctx.addIssue({ code: 'custom', path: [index], message: `same as ${formatKey([...ctx.path, seen])}` });
    });
  };
}

/** Renders a path the way users write it: `routes[1].handler`. */
export function formatKey(path: readonly (string | number)[]): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join('');
}

const positiveInt = z.number().int().positive();
/** A table name of a Kamailio module's configuration (its *_table parameters). */
export const SQL_TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const tableName = z.string().regex(SQL_TABLE_NAME, 'expected an SQL table name');
/** A network's SIP domain and the delimiter of its addresses, ALIAS=<delim> (the jabber seed's jdomain form). */
const networkAlias = (example: string) =>
  z.string().regex(/^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?:=[!~*()=+$,;?])?$/i, `expected ALIAS or ALIAS=<delimiter>, e.g. ${example}=*`).nullable().default(null);

const readablePath = z
  .string()
  .min(1)
  .superRefine((path, ctx) => {
    try {
      accessSync(path, constants.R_OK);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${path} (${(error as NodeJS.ErrnoException).code})` });
    }
  });

const domain = z
  .string()
  .toLowerCase()
  .refine((name) => isHostname(name) || (/^\[[^\]]+\]$/.test(name) && isIPv6(name.slice(1, -1))), {
    message: 'expected a hostname or IP address',
  });

/** A host to connect to or bind: a name or an IP address as it is written (no brackets). */
const hostOrIp = z.string().refine((text) => isHostname(text) || isIP(text) !== 0, { message: 'expected a hostname or IP address' });

/** A name linked accounts are written with: an XMPP domain, an IRC network's name (lower case, host syntax). */
/** A URL of one of the given schemes (`https:`); `placeholders` (e.g. $token) may appear in it. */
const urlOf = (protocols: readonly string[], placeholders?: RegExp) =>
  z.string().refine(
    (text) => {
      try {
        return protocols.includes(new URL(placeholders ? text.replace(placeholders, 'x') : text).protocol);
      } catch {
        return false;
      }
    },
    { message: `expected a URL starting with ${protocols.map((protocol) => `${protocol}//`).join(' or ')}` },
  );

const serverName = z.string().regex(/^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/, 'expected a lower-case name in host syntax, e.g. example.net or libera');

/** Where the per-user gateway connects for the accounts of one configured server, and its TLS mode. */
function gatewayServer<Host extends z.ZodTypeAny, Mode extends 'starttls' | 'direct' | 'none'>(host: Host, modes: [Mode, ...Mode[]], tls: Mode) {
  return z
    .object({
      host,
      port: z.number().int().min(1).max(65535).nullable().default(null),
      tls: z.enum(modes).default(tls),
    })
    .strict();
}

const listener = z.string().transform((text, ctx) => {
  const parsed = parseListener(text);
  // Fatal, so the uniqueness check of the whole list never sees an entry that did not parse.
  if (!parsed) ctx.addIssue({ code: 'custom', message: LISTEN_FORMAT, fatal: true });
  return parsed ?? z.NEVER;
});

const advertisedAddress = z.string().transform((text, ctx): AdvertisedAddress => {
  const address = splitHostPort(text);
  const port = address?.port === undefined ? undefined : parsePort(address.port);
  if (!address || (address.port !== undefined && port === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'expected HOST or HOST:PORT (IPv6 as [::1])', fatal: true });
    return z.NEVER;
  }
  const host = address.bracketed ? `[${address.host.toLowerCase()}]` : address.host.toLowerCase();
  return port === undefined ? { host } : { host, port };
});

const hostPort = z.string().transform((text, ctx): HostPort => {
  const address = splitHostPort(text);
  const port = address?.port === undefined ? undefined : parsePort(address.port);
  if (!address || port === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected HOST:PORT (IPv6 as [::1]:PORT)', fatal: true });
    return z.NEVER;
  }
  return { host: address.host.toLowerCase(), port };
});

const databaseUrl = z.string().refine((url) => /^sqlite:.+/.test(url) || /^postgres(?:ql)?:\/\/./.test(url), {
  message: 'expected sqlite:PATH or postgres://USER@HOST/DATABASE',
});

const sipUri = z.string().superRefine((text, ctx) => {
  try {
    const { scheme, host } = parseUri(text);
    if ((scheme !== 'sip' && scheme !== 'sips') || !host) throw new Error('expected a sip: or sips: URI');
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

// Compiled bare, not through compileRoutePattern, so that the error quotes the pattern as written.
const routePattern = z.string().superRefine((source, ctx) => {
  try {
    new RegExp(source);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

const METHOD_NAMES = 'expected a SIP method name or a list of them';
const methodName = z
  .string()
  .toUpperCase()
  .regex(/^[A-Z]+$/, METHOD_NAMES);

const route = z
  .object({
    method: z
      .union([methodName, z.array(methodName).min(1)], { errorMap: () => ({ message: METHOD_NAMES }) })
      .transform((methods) => (Array.isArray(methods) ? methods : [methods]))
      .optional()
      .describe('Request methods the route applies to, one name or a list (upper-cased); any method when absent.'),
    domain: routePattern
      .optional()
      .describe('Regular expression the whole Request-URI domain must match, case-insensitively; any domain when absent.'),
    user: routePattern
      .optional()
      .describe('Regular expression the whole Request-URI user part must match; any user when absent.'),
    handler: z.string().min(1).describe('Name of the handler that takes matching requests, e.g. relay or reject.'),
    status: z.number().int().min(200).max(699).optional().describe('Final response status for the reject (300-699, default 403) and reply (200-699, default 200) handlers.'),
    reason: z.string().optional().describe('Reason phrase sent with `status`.'),
  })
  .strict()
  .superRefine((route, ctx) => {
    if (route.handler === 'reject' && route.status !== undefined && route.status < 300) {
      ctx.addIssue({ code: 'custom', path: ['status'], message: 'a reject status is 300-699' });
    }
  });

const DEFAULT_LISTEN = ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060', 'ws:127.0.0.1:8080'];

const baseSchema = z
  .object({
    domains: z
      .array(domain)
      .min(1)
      .superRefine(uniqueItems((name: string) => name))
      .default(['localhost'])
      .describe('SIP domains this server is responsible for (hostnames, lower-cased). At least one.'),
    listen: z
      .array(listener)
      .min(1)
      .superRefine(uniqueItems(formatListener))
      .default(DEFAULT_LISTEN)
      .describe(`Sockets to listen on, each PROTO:HOST:PORT with PROTO one of ${TRANSPORTS.join(', ')}; IPv6 hosts in brackets, e.g. tcp:[::1]:5060.`),
    advertise: advertisedAddress
      .nullable()
      .default(null)
      .describe('HOST[:PORT] put in Via and Contact instead of the listening address, e.g. behind NAT; null uses the listener.'),
    tls: section({
      cert: readablePath.nullable().default(null).describe('PEM certificate chain file; required when a tls or wss listener exists.'),
      key: readablePath.nullable().default(null).describe('PEM private key file; required when a tls or wss listener exists.'),
      ca: readablePath.nullable().default(null).describe('PEM file of CA certificates to trust instead of the system ones.'),
    }),
    database: databaseUrl
      .default('sqlite:./data/parley.db')
      .describe('Where users, registrations and stored messages live: sqlite:PATH or postgres://USER:PASSWORD@HOST/DATABASE.'),
    database_timeout: z
      .number()
      .positive()
      .default(5)
      .describe('Seconds a PostgreSQL statement, or getting a connection for it, may take; past it (a server stopped, overloaded or cut off) the request that needed it gets 503 with Retry-After and background tasks try again later. SQLite waits at most 200 ms for another process\'s lock, whatever this says.'),
    log: section({
      level: z.enum(LOG_LEVELS).default('info').describe(`Least severe level logged: ${LOG_LEVELS.join(', ')}.`),
      format: z
        .enum(LOG_FORMATS)
        .default('auto')
        .describe('json: one JSON object a line (for the journal and log collectors); pretty: one readable line an event, `HH:MM:SS.mmm LEVEL module: message key=value...`; auto: pretty when standard output is a terminal, json otherwise. Secrets are redacted in both.'),
    }),
    auth: section({
      policy: z
        .enum(['open', 'required'])
        .default('required')
        .describe('required: REGISTER and requests from local users must pass digest authentication (users are created with `parley user add`); open: anyone may register and send as anyone, for a loopback demo only (a warning is logged when a SIP listener is on another address).'),
      realm: z
        .string()
        .min(1)
        .nullable()
        .default(null)
        .describe('Digest realm; null makes each domain its own realm. `parley user add` hashes passwords with the same rule.'),
      algorithms: z
        .array(z.enum(DIGEST_ALGORITHMS))
        .min(1)
        .superRefine(uniqueItems((algorithm: string) => algorithm))
        .default(['SHA-256', 'MD5'])
        .describe('Digest algorithms offered, in this order: SHA-256, MD5 or both.'),
      nonce_expires: positiveInt.default(300).describe('Seconds a nonce stays valid.'),
      check_uri: z.boolean().default(true).describe('Refuse (400) credentials whose digest uri is not the request\'s Request-URI (RFC 2617 §3.2.2.5), so that an answer captured for one request cannot serve another; false for clients that put something else there.'),
      credentials_cache_seconds: z
        .number()
        .int()
        .min(0)
        .default(10)
        .describe('Seconds a user\'s credentials, once read from the store, are kept in memory for digest authentication (0: read for every request). A password change or removal by `parley user add` or `parley user del` (another process) takes effect in a running server within this time.'),
    }),
    registrar: section({
      min_expires: positiveInt.default(60).describe('Shortest registration accepted, in seconds; shorter ones get 423 Interval Too Brief.'),
      max_expires: positiveInt.default(3600).describe('Longest registration granted, in seconds; longer requests are cut to it.'),
      default_expires: positiveInt.default(3600).describe('Registration length, in seconds, when the client asks for none.'),
      max_contacts: positiveInt.default(10).describe('Most contacts one address-of-record may have registered at once.'),
    }),
    relay: section({
      outbound_proxy: sipUri
        .nullable()
        .default(null)
        .describe('SIP URI requests to foreign domains are sent through; null refuses them.'),
      foreign_domain_status: z
        .union([z.literal(403), z.literal(404)], { errorMap: () => ({ message: 'expected 403 or 404' }) })
        .default(403)
        .describe('Response (403 or 404) to a request for a foreign domain when there is no outbound_proxy.'),
      max_body: positiveInt.default(65536).describe('Largest MESSAGE body relayed, in bytes; larger ones get 413.'),
      overload_backlog: z
        .number()
        .gt(0)
        .max(1)
        .nullable()
        .default(0.5)
        .describe('Share of a UDP listener\'s kernel receive buffer (sip.udp_receive_buffer, as the kernel counts it) filled with datagrams waiting to be read from which a new MESSAGE gets 503 with Retry-After at once, neither relayed nor stored, until the backlog is under half of it again; responses and retransmissions are read as before. Measured every 20 ms while MESSAGEs arrive (Linux: /proc/net/udp; an idle server reads nothing), a listener that dropped datagrams since counting as full. The queue grows only while Parley is offered more than it carries: refusing then keeps the buffer from overflowing, which would lose the devices\' answers to what is under way too (each such MESSAGE then waits for fork_timeout and is stored though it was delivered, while its sender retransmits). With the default 4 MiB buffer, a half is ~3,300 datagrams of 500 bytes, ~0.3 s of the relay\'s work at its limit, where senders\' retransmissions (500 ms) are near: in npm run bench, relaying 11,000 MESSAGEs/s (its highest passing step) left at most 42 % queued, 9,000/s under a quarter. null: never refused.'),
      fork_timeout: positiveInt.default(32).describe('Seconds to wait for a final response from the contacts a request is forked to (Timer F bound).'),
      delivery_window: positiveInt
        .default(32)
        .describe('MESSAGEs Parley originates (room posts and notices, gateway messages) sent to one recipient over TCP, TLS or WebSocket before the first of them is answered; the stream keeps their order. 1: one at a time, each after the previous final response.'),
      delivery_window_udp: positiveInt
        .default(16)
        .describe('The same over UDP: their order holds unless a datagram is lost, when its retransmission arrives after the ones sent behind it. 1: strict order, one message per round trip (n: at most n per round trip to one recipient).'),
      accept_timeout: positiveInt.default(5).describe('Seconds a message kept for each device waits for the recipient\'s registered devices to answer before it is stored for those that did not take it (once one device took it, the others have 50 ms more, or as long again as it took); past them it is stored for those still answering too, and the sender gets 200 when a device took it, else 202 Accepted; the devices still get it.'),
      redelivery_backoff: positiveInt
        .default(30)
        .describe('Seconds after a registered device was not reached with a message waiting for it (no answer within fork_timeout, 408, 480, 503, 504) before Parley sends it what waits again, by itself while the device stays registered; twice as long after each next try it is not reached with (up to 10 minutes, or this when longer), back to this once it answers. Meanwhile a new message for the device is stored behind what waits and sends nothing; the device\'s registration sends it all at once. A device that missed a message while it stayed registered gets it, first, with the next one or at the next try; one that stays silent is sent one waiting message at a time.'),
      sync_sent: z.boolean().default(true).describe('Own-message sync: a MESSAGE a user of a local domain sends from one device, once taken, is copied to the user\'s other devices (From the user, To the peer, with X-Parley-Copy: sent), through the per-device delivery: a device away gets it when it registers again. Receipts, is-composing states and Expires: 0 messages are not copied; a copy is never pushed. Needs offline.enabled. The default for every domain; sync_sent_domains overrides it per domain.'),
      sync_sent_domains: z
        .record(domain, z.boolean())
        .default({})
        .describe('sync_sent per local domain, overriding it: `{ example.com: false }`. Each key must be one of domains.'),
    }),
    devices: section({
      remember: positiveInt.default(2_592_000).describe('Seconds a device (its +sip.instance, or without one its contact URI without parameters) is remembered after it last registered: a message for its user is kept for it, and delivered when it registers again, also while it is not registered.'),
    }),
    offline: section({
      enabled: z.boolean().default(true).describe('Store messages for known users who are not registered, and deliver them when they register.'),
      max_per_user: positiveInt.default(100).describe('Most stored messages waiting for one user; further ones are refused. Copies of what the user sent (own-message sync) are counted apart, against the same limit.'),
      expires: positiveInt.default(604800).describe('Seconds a stored message is kept before it is dropped.'),
    }),
    sip: section({
      t1: positiveInt.default(500).describe('RFC 3261 T1, round-trip time estimate, in milliseconds.'),
      t2: positiveInt.default(4000).describe('RFC 3261 T2, longest retransmit interval, in milliseconds; at least t1.'),
      t4: positiveInt.default(5000).describe('RFC 3261 T4, time a message may linger in the network, in milliseconds. Accepted for files written for earlier versions and not used: Parley keeps no finished request for T4 (Timer K), a late copy of its response matching none is dropped.'),
      max_message_size: positiveInt.default(65535).describe('Largest SIP message accepted on any transport, in bytes.'),
      max_transactions: positiveInt.default(100_000).describe('Requests in progress at once, past which new ones get 503 with Retry-After; also the most answered UDP requests kept to absorb their retransmissions (Timer J), the oldest let go first (a retransmission of it is then handled again). About 1 KiB each.'),
      mtu: positiveInt.default(1300).describe('Size in bytes above which a request meant for UDP is sent over TCP (RFC 3261 §18.1.1).'),
      tcp_idle_timeout: positiveInt.default(600).describe('Seconds an idle TCP, TLS or WebSocket connection is kept open.'),
      message_timeout: z
        .number()
        .positive()
        .default(10)
        .describe('Seconds a SIP message may take to arrive whole on a TCP or TLS connection once its first byte came (on a WebSocket: a frame), and a TLS handshake or WebSocket upgrade request to complete; a connection that takes longer (slowloris) is closed.'),
      max_send_buffer: positiveInt
        .default(4 * 1024 * 1024)
        .describe('Bytes written to a TCP, TLS or WebSocket connection and not yet read by the peer past which Parley destroys the connection (a peer that never reads), counted in parley_sip_refused_total{reason="send_buffer"}.'),
      udp_receive_buffer: positiveInt
        .min(65536)
        .default(4 * 1024 * 1024)
        .describe('Bytes of kernel receive buffer (SO_RCVBUF) asked for on each UDP socket: datagrams of a burst wait there while Parley is busy (a garbage collection, a disk sync), and past it the kernel drops them. Linux gives at most net.core.rmem_max (often 212992); when it gives less than asked, Parley logs a warning at start naming the sysctl to raise.'),
      udp_send_buffer: positiveInt
        .min(65536)
        .default(4 * 1024 * 1024)
        .describe('Bytes of kernel send buffer (SO_SNDBUF) asked for on each UDP socket, at most net.core.wmem_max; a warning at start says when less was given.'),
      max_connections: positiveInt.default(10000).describe('Most TCP, TLS and WebSocket connections peers may have open at once, all listeners together; a further one is closed at once.'),
      max_connections_per_ip: positiveInt.default(200).describe('Most TCP, TLS and WebSocket connections one source IP address may have open at once (exempt_sources aside); a further one is closed at once.'),
      max_pending_connections_per_ip: positiveInt
        .default(32)
        .describe('Most TCP, TLS and WebSocket connections one source IP address may have open that have not yet carried a whole SIP message (exempt_sources aside); a further one is closed at once, counted in parley_sip_refused_total{reason="pending_connections_per_ip"}. A client sends its first request as soon as it is connected, while slowloris holds many connections on a few bytes each, all read again at every byte.'),
      rate_limit: z
        .number()
        .int()
        .min(0)
        .default(1000)
        .describe('SIP messages one source IP address may send per rate_window, like Kamailio\'s pike (exempt_sources aside); counted per datagram (before it is parsed) and per stream message. Further requests get 503 with Retry-After, or nothing (rate_action). 0: no limit.'),
      rate_window: z.number().positive().default(10).describe('Seconds over which rate_limit counts; the allowance refills evenly over this time.'),
      rate_burst: positiveInt
        .default(200)
        .describe('Most SIP messages one source IP address may send at once, at most rate_limit (exempt_sources aside): its allowance holds this many and refills at rate_limit per rate_window, so a flood that starts on a full allowance gets this many requests through before the pace applies, not a whole window\'s worth.'),
      rate_action: z
        .enum(['reply', 'drop'])
        .default('reply')
        .describe('What a request over rate_limit gets: reply: 503 Service Unavailable with Retry-After (over UDP at most one a second per source, the rest dropped, so a flood or a forged source address gets no more); drop: nothing. Responses over the limit are always dropped.'),
      exempt_sources: z
        .array(z.string().refine((text) => parseCidr(text) !== undefined, { message: 'expected an IP address or CIDR range, e.g. 192.0.2.0/24' }))
        .default(['127.0.0.0/8', '::1'])
        .describe('Source addresses (IP or CIDR) none of rate_limit, max_connections_per_ip and max_pending_connections_per_ip applies to: loopback by default, so local tools and benchmarks are not throttled; add front proxies that carry many users.'),
      max_forwards: z.number().int().min(1).max(255).default(70).describe('Max-Forwards put in requests Parley originates (1-255).'),
      user_agent: z.string().min(1).default('Parley').describe('Value of the User-Agent and Server headers.'),
    }),
    imc: section({
      enabled: z.boolean().default(true).describe('Serve chat rooms: MESSAGEs to the manager and to room addresses of the local domains go to the room service.'),
      manager: z.string().regex(/^[A-Za-z0-9\-_.!~*'()&=+$,;?/]+$/, 'expected a SIP user part').default('chat-manager').describe('User part of the manager address, sip:<manager>@<domain>, which takes #create, #rooms and #help.'),
      room_pattern: z.string().regex(/^[A-Za-z0-9\-_.!~'()&=+$,;?/*]+$/, 'expected a SIP user part with * wildcards').default('chat-*').describe('Room user parts, with * matching any characters; a room name must match it (its user part unescaped: `chat-a%20b` is the name `chat-a b`).'),
      cmd_start_char: z.string().length(1).default('#').describe('Character that starts a command line in a MESSAGE body (imc_cmd_start_char).'),
      create_on_join: z.boolean().default(true).describe('#join of a room that does not exist creates it.'),
      check_on_create: z.boolean().default(false).describe('Refuse to create a room whose address is that of a known user.'),
      outbound_proxy: sipUri.nullable().default(null).describe('Next hop for room MESSAGEs to members of other domains; null: relay.outbound_proxy, and without one they are not sent.'),
      extra_hdrs: z.string().nullable().default(null).describe('Header lines ("Name: value", several separated by CRLF or newlines) added to every MESSAGE the room service sends.'),
      history: z.number().int().min(0).default(20).describe('Messages a member gets on joining, the last of the room; 0 disables history.'),
      cpim: z.boolean().default(false).describe('Send room messages as message/cpim (RFC 3862) carrying the real sender, instead of "<nick> text".'),
      rooms_table: tableName.default('imc_rooms').describe('Table of rooms, Kamailio imc schema.'),
      members_table: tableName.default('imc_members').describe('Table of room members, Kamailio imc schema.'),
      hash_size: z.number().int().min(1).max(16).default(4).describe('Power of two of the expected room count, sizing the in-memory index (Kamailio hash_size).'),
      max_members: positiveInt.default(100).describe('Most members (invited ones included) a room may have.'),
      max_rooms_per_user: positiveInt.default(10).describe('Most rooms one user may own.'),
      max_body: positiveInt.default(4096).describe('Largest room message or command, in bytes; larger ones are refused.'),
      max_rate: positiveInt.default(20).describe('Room messages per second one sender may post, on average.'),
      rate_burst: positiveInt.default(100).describe('Room messages one sender may post at once before max_rate applies.'),
      max_backlog: positiveInt.default(1000).describe('Room messages waiting for delivery to one member past which new posts to a room of that member get 503 with Retry-After.'),
      max_pending: positiveInt.default(100_000).describe('Room messages waiting for delivery in all past which new posts get 503 with Retry-After.'),
    }),
    admin: section({
      enabled: z.boolean().default(true).describe('Serve the management HTTP endpoint: JSON-RPC at /rpc (what `parley rpc`, `parley rooms` and `parley members` call) and Prometheus metrics at /metrics.'),
      listen: hostPort.default('127.0.0.1:8090').describe('HOST:PORT of the management endpoint. It controls the whole server: keep it on loopback or a private network.'),
      token: z
        .string()
        .min(16)
        .nullable()
        .default(null)
        .describe('Bearer token /rpc requires (at least 16 characters); null generates a random one at every start and writes it to admin.token beside the SQLite database (./data/ with PostgreSQL), readable by its owner only, where the parley command finds it.'),
      metrics_token: z.boolean().default(false).describe('Require the token for /metrics too; by default /metrics is open to whoever reaches admin.listen.'),
    }),
    presence: section({
      enabled: z.boolean().default(true).describe('Serve presence (RFC 3856): PUBLISH and SUBSCRIBE for addresses of the local domains go to the presence agent, which keeps publications and subscriptions in the store across restarts.'),
      min_expires: positiveInt.max(MAX_PRESENCE_EXPIRES).default(60).describe('Shortest publication or subscription accepted, in seconds; shorter ones get 423 Interval Too Brief.'),
      max_expires: positiveInt.max(MAX_PRESENCE_EXPIRES).default(3600).describe('Longest publication or subscription granted, in seconds; longer requests are cut to it.'),
      default_expires: positiveInt.max(MAX_PRESENCE_EXPIRES).default(3600).describe('Length of a publication or subscription, in seconds, when the request asks for none.'),
      policy: z
        .enum(PRESENCE_POLICIES)
        .default('open')
        .describe('Who may watch whom: open: anyone; same-domain: only users of the presentity\'s own domain (others get 403).'),
      max_publications_per_presentity: positiveInt
        .default(10)
        .describe('Most publications (one per device, RFC 3903) one address may have at once; a further new one gets 503 with Retry-After until the first of them expires.'),
      max_publications: positiveInt.default(50000).describe('Most publications kept at once, all addresses together; a further new one gets 503 with Retry-After.'),
      max_subscriptions_per_watcher: positiveInt.default(1000).describe('Most presence subscriptions one watcher may hold at once; a further new one gets 403.'),
      max_subscriptions: positiveInt.default(50000).describe('Most presence subscriptions kept at once, all watchers together; a further new one gets 503 with Retry-After.'),
      max_gateway_states: positiveInt
        .default(50000)
        .describe('Most presence states the gateways keep published at once (one per gateway and address of its network, kept across restarts); the state of a further address is left out (a warning is logged once while the bound is reached).'),
      max_gateway_watchers: positiveInt
        .default(50000)
        .describe('Most watchers on the gateways\' networks (XMPP users subscribed to SIP users, kept across restarts); a further subscription request is refused.'),
      restart_notifies_at_once: positiveInt
        .default(20)
        .describe('After a start, most NOTIFYs to the subscribers of the last run waiting for their answers at once; the next goes as soon as one is answered, so a device holding many subscriptions is not flooded.'),
    }),
    xmpp: section({
      enabled: z.boolean().default(false).describe('Run the XMPP gateway: MESSAGEs to gateway_domain go to XMPP users, and XMPP users reach SIP users through xmpp_domain.'),
      backend: z
        .enum(['component', 'server'])
        .default('component')
        .describe('component: connect to an XMPP server as an XEP-0114 component at xmpp_host:xmpp_port; server: be the XMPP server of xmpp_domain itself, federating with other XMPP servers over s2s (s2s_listen, s2s_port, dialback_secret).'),
      address_mapping: z
        .enum(['separator', 'rfc7247'])
        .default('separator')
        .describe('separator: `sip:user*jabber.example@GATEWAY_DOMAIN` is `user@jabber.example`, and XMPP users write to `sipuser*sip.example@XMPP_DOMAIN` (`*` being domain_separator); rfc7247: the same address on both sides (RFC 7247 direct mapping), `sip:user@GATEWAY_DOMAIN` is `user@GATEWAY_DOMAIN` and `user@XMPP_DOMAIN` is `sip:user@XMPP_DOMAIN`.'),
      domain_separator: z
        .string()
        .regex(/^[!~*()=+$,;?]$/, 'expected one of ! ~ * ( ) = + $ , ; ?')
        .default('*')
        .describe('Character between user and domain in a mapped address (separator mapping); one of ! ~ * ( ) = + $ , ; ? as those are valid in SIP user parts and JID localparts but not in domain names.'),
      gateway_domain: domain
        .nullable()
        .default(null)
        .describe('SIP domain of the gateway: MESSAGEs to it go to XMPP. Not one of domains. null: the same as xmpp_domain.'),
      xmpp_domain: domain
        .nullable()
        .default(null)
        .describe('XMPP domain of the gateway, the component name the XMPP server knows it by; required when enabled. With rfc7247 mapping it must be one of domains.'),
      xmpp_host: z
        .string()
        .refine(isHostname, { message: 'expected a hostname or IPv4 address' })
        .default('127.0.0.1')
        .describe('Host of the XMPP server the component connects to.'),
      xmpp_port: z.number().int().min(1).max(65535).default(5347).describe('Component port of the XMPP server (XEP-0114).'),
      xmpp_password: z
        .string()
        .min(1)
        .nullable()
        .default(null)
        .describe('Shared secret of the component (component_secret in Prosody); required when enabled in component mode. Never logged.'),
      message_type: z
        .enum(['chat', 'normal'])
        .default('chat')
        .describe('Type of the XMPP `<message/>` made from a SIP MESSAGE: chat (a one-to-one conversation) or normal (a single message).'),
      imdn: z
        .boolean()
        .default(true)
        .describe('Carry XMPP receipt and marker requests (XEP-0184, XEP-0333) to SIP users as message/cpim with IMDN headers (RFC 5438), as Linphone understands them, and their IMDNs back as receipts. false: messages from XMPP reach SIP as text/plain always, for SIP clients that do not read CPIM.'),
      delay_time: z
        .number()
        .positive()
        .default(90)
        .describe('Seconds messages for XMPP wait while the XMPP server is unreachable (server mode: the server of their domain); older ones fail back to their sender, and once the link has been down this long new ones are refused with 503.'),
      max_queue: positiveInt.default(1000).describe('Most messages waiting for the XMPP server (kept in the store\'s outbox, so a restart still sends them); further ones are refused with 503. In component mode also the most stanzas kept after writing until the server confirms them (an XEP-0199 ping answer); beyond that the oldest is taken as delivered. In server mode, per remote domain.'),
      max_queue_to_sip: positiveInt.default(10_000).describe('Most messages from XMPP waiting for delivery to one SIP user (sent and not yet answered, or queued behind those, in order); further ones go back to their senders as resource-constraint errors (try again later). XMPP has no other way to slow a sender down.'),
      reconnect_min: z.number().positive().default(1).describe('Seconds before the first reconnection attempt after the XMPP link is lost (server mode: before dialling again a remote domain whose server could not be reached); each wait is drawn between the current step and twice it (spreading retries), the step doubled at each failure.'),
      reconnect_max: z.number().positive().default(60).describe('Longest wait between reconnection attempts, in seconds; at least reconnect_min.'),
      keepalive: z.number().positive().default(60).describe('Seconds between whitespace keepalives on the XMPP link, which find a dead connection.'),
      presence_grace: z
        .number()
        .nonnegative()
        .default(15)
        .describe('Seconds the presence of XMPP contacts is trusted after the stream it came on went down (the component link, or in server mode the stream of their domain) or after a start, until it comes (back) up: then their SIP watchers are told they are unavailable. Once it is up again, Parley asks their servers for their presence (probes).'),
      s2s_listen: hostOrIp
        .default('0.0.0.0')
        .describe('Server mode: address the server-to-server listener binds to (xmpp_host and xmpp_port are for component mode only).'),
      s2s_port: z.number().int().min(0).max(65535).default(5269).describe('Server mode: port of the server-to-server listener (RFC 6120 default 5269; 0: any free port).'),
      resolver: z
        .string()
        .refine((text) => {
          const address = splitHostPort(text);
          return address !== undefined && isIP(address.host) !== 0 && (address.port === undefined || parsePort(address.port) !== undefined);
        }, { message: 'expected IP or IP:PORT ([IPv6]:PORT)' })
        .nullable()
        .default(null)
        .describe('Server mode: DNS server for the SRV (_xmpp-server._tcp) and A/AAAA lookups of remote domains, IP[:PORT]; null: the system\'s resolver, falling back to the system\'s lookup (/etc/hosts).'),
      tls_cert: readablePath.nullable().default(null).describe('Server mode: PEM certificate for STARTTLS on s2s streams; null: tls.cert. Without either, STARTTLS is not offered to incoming streams.'),
      tls_key: readablePath.nullable().default(null).describe('Server mode: PEM private key for STARTTLS on s2s streams; null: tls.key.'),
      dialback_secret: z
        .string()
        .min(16)
        .nullable()
        .default(null)
        .describe('Server mode: secret of the Server Dialback keys (XEP-0185), at least 16 characters; null: a random one at each start. Never logged.'),
      s2s_idle: z.number().positive().default(600).describe('Server mode: seconds after which a server-to-server stream that carried no stanza is closed.'),
      s2s_require_tls: z.boolean().default(true).describe('Server mode: outgoing server-to-server streams must be encrypted; to a server that offers no STARTTLS nothing is sent, and its messages fail back to their senders.'),
      s2s_verify_certificates: z.boolean().default(true).describe('Server mode: the certificate of a server Parley connects to must be trusted (s2s_ca) and valid for its domain; otherwise the stream is closed and its messages fail back. Incoming streams whose certificate is trusted and valid for their domain may authenticate with it (SASL EXTERNAL, XEP-0178) instead of dialback. false: Server Dialback alone authenticates servers, both ways.'),
      s2s_ca: readablePath.nullable().default(null).describe('Server mode: PEM file of the certificate authorities trusted for s2s_verify_certificates (for the certificates of servers Parley connects to, and of those connecting to it); null: Node\'s bundled list.'),
      s2s_max_unauthenticated: positiveInt.default(100).describe('Server mode: most incoming server-to-server streams not yet authenticated, in total; a connection over the limit gets the stream error `<policy-violation/>` and is closed.'),
      s2s_max_unauthenticated_per_ip: positiveInt.default(10).describe('Server mode: most incoming server-to-server streams not yet authenticated from one IP address; over it, `<policy-violation/>` and closed.'),
      s2s_auth_timeout: z.number().positive().default(60).describe('Server mode: seconds an incoming server-to-server stream has to authenticate a domain (by dialback or certificate); after that it is closed with `<connection-timeout/>`.'),
      s2s_dials_per_minute: positiveInt.default(6).describe('Server mode: most outgoing connections to one remote domain in a minute (for messages and dialback checks together); beyond that, retries wait, and messages for a domain no stream is trying to reach fail back to their senders at once until the minute has passed.'),
      max_stanza_size: positiveInt.min(4096).default(262144).describe('Largest stanza (or stream header) Parley reads from an XMPP peer, in bytes: on s2s streams, the component link and the per-user gateway\'s XMPP sessions. A larger one ends the stream with `<policy-violation/>` before it is buffered whole.'),
      max_xml_depth: positiveInt.min(8).default(64).describe('Deepest nesting of XML elements Parley reads from an XMPP peer (the stream element counts as 1, a stanza as 2); deeper ends the stream with `<policy-violation/>`.'),
    }),
    gateway: section({
      enabled: z.boolean().default(false).describe('Run the per-user gateways: SIP users link their own accounts on other IM networks (XMPP, IRC) and chat from SIP through them. Needs secret_key (or PARLEY_GATEWAY_KEY).'),
      registrar: sipUri
        .nullable()
        .default(null)
        .describe('Address of the gateway (the seeds\' registrar parameter): users send #link, #accounts, #help... to it, and notices come from it. null: sip:gateway@<first of domains>.'),
      jdomain: networkAlias('xmpp.example.com').describe(
        'SIP domain of the XMPP network and its delimiter, ALIAS=<delim> (the jabber seed\'s jdomain): sip:juliet*example.net@ALIAS is juliet@example.net. null: xmpp.<first of domains>=*.',
      ),
      irc_domain: networkAlias('irc.example.com').describe(
        'SIP domain of the IRC network and its delimiter, ALIAS=<delim>: sip:bob*irc.libera.chat@ALIAS is the nick bob on irc.libera.chat, sip:%23parley*irc.libera.chat@ALIAS the channel #parley there. Not one of domains, not the jdomain alias. null: irc.<first of domains>=*.',
      ),
      irc_line_limit: z
        .number()
        .int()
        .min(100)
        .max(480)
        .default(400)
        .describe('Most bytes (UTF-8) of text in one IRC PRIVMSG: longer lines of a message are split, at a space when there is one. Within the 512-byte IRC line with room for the sender\'s prefix.'),
      aliases: z
        .preprocess(
          // The jabber seed's own form, "N;alias1=<delim1>;...;aliasN=<delimN>;", is taken as it is.
          (value) => (typeof value === 'string' ? value.split(';').map((part) => part.trim()).filter((part, index) => part !== '' && !(index === 0 && /^\d+$/.test(part))) : value),
          z.array(z.string().regex(/^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?:=[!~*()=+$,;?%])?$/i, 'expected ALIAS=<delimiter>, e.g. msn.example.com=%')),
        )
        .default([])
        .describe('XMPP transports to other networks (the jabber seed\'s aliases), each ALIAS=<delim> with ALIAS the transport\'s JID: sip:bob*hotmail.com@ALIAS is sent from the user\'s XMPP account to bob<delim>hotmail.com@ALIAS, and a message to a transport that said it is offline gets 480. The seed\'s "N;alias1=<delim1>;..." string is accepted too.'),
      cache_time: positiveInt.default(600).describe('Seconds a session stays online without traffic while its SIP user is not registered (jab_go_offline).'),
      delay_time: positiveInt.default(90).describe('Seconds a message waits for its session to come online; then the sender gets an error notification.'),
      max_queue: positiveInt.default(100).describe('Messages waiting for one account\'s session (kept in the store\'s outbox) past which further ones get 503 with Retry-After; over all sessions, max_sessions times as many.'),
      priority: z.number().int().min(-128).max(127).default(9).describe('Presence priority of the gateway\'s XMPP sessions (-128..127).'),
      max_sessions: positiveInt.default(1000).describe('Most network sessions online or connecting at once, over all users.'),
      max_connecting: positiveInt.default(16).describe('Most XMPP sessions logging in at once (TLS and SCRAM cost CPU); the others wait their turn, so bringing many online after a restart does not stall SIP traffic.'),
      max_sessions_per_user: positiveInt.default(4).describe('Most network sessions of one SIP user at once.'),
      secret_key: z
        .string()
        .min(16)
        .nullable()
        .default(null)
        .describe('Key (at least 16 characters) that encrypts the linked accounts\' passwords at rest (AES-256-GCM); null: the environment variable PARLEY_GATEWAY_KEY. Required when enabled; changing it makes stored passwords unreadable. Never logged.'),
      allow_user_servers: z.boolean().default(false).describe('Let users link accounts on any server and name the server their account connects to (#link ... host[:port]). false: #link takes accounts only on xmpp_servers and irc_networks (any XMPP domain with jaddress) and no host[:port], so #link cannot probe hosts of the operator\'s network; `parley accounts add` and the RPC set servers either way.'),
      allow_unauthenticated: z.boolean().default(false).describe('Take commands and messages from senders who did not pass digest authentication (auth.policy open). For testing only: anyone could link accounts or write as another user.'),
      http_proxy_host: hostOrIp.nullable().default(null).describe('HTTP proxy the network sessions (XMPP, IRC) connect through with CONNECT, TLS inside the tunnel (the purple seed\'s httpProxy_host); null: they connect directly.'),
      http_proxy_port: z.number().int().min(1).max(65535).default(3128).describe('Port of http_proxy_host (the purple seed\'s httpProxy_port).'),
      map_local_users: z.boolean().default(true).describe('The purple seed\'s mapping: a MESSAGE to a local user who is not registered but has a linked account goes there from the sender\'s own account on that network (when the sender has one); a message from a contact who is a SIP user\'s linked account arrives as from that SIP user.'),
      jaddress: hostOrIp.nullable().default(null).describe('XMPP server to connect to for accounts linked without a server of their own and not on a domain of xmpp_servers (the jabber seed\'s jaddress): #link then takes accounts on every domain. null: the server of the account\'s domain, which #link takes only with allow_user_servers.'),
      jport: z.number().int().min(1).max(65535).nullable().default(null).describe('Port of jaddress (the jabber seed\'s jport); null: 5222, or 5223 for direct TLS.'),
      xmpp_servers: z
        .record(serverName, gatewayServer(hostOrIp.nullable().default(null), ['starttls', 'direct', 'none'], 'starttls'))
        .default({})
        .describe(
          'XMPP servers users may link accounts on, by the accounts\' domain: `{ example.net: { host, port, tls } }`, host (null: the domain itself) and port (null: 5222, 5223 for direct TLS) where to connect, tls one of starttls (the default), direct, or none for a plain-text server on a private network. #link xmpp alice@example.net <password> then needs nothing else; one naming another domain is refused with this list, unless jaddress is set (every domain through it) or allow_user_servers is true.',
        ),
      irc_networks: z
        .record(serverName, gatewayServer(hostOrIp, ['direct', 'none'], 'direct'))
        .default({})
        .describe(
          'IRC networks users may link nicks on, by name: `{ libera: { host: irc.libera.chat, port: 6697, tls: direct } }`, port null: 6697 with tls direct (the default), 6667 with none. #link irc alice@libera <password> then needs nothing else, and contacts are written bob*libera@<irc_domain>; one naming another network is refused with this list unless allow_user_servers is true.',
        ),
      sleep_time: positiveInt.default(20).describe('Seconds between two checks for sessions idle longer than cache_time (the jabber seed\'s sleep_time).'),
      reconnect_min: z.number().positive().default(1).describe('Seconds before reconnecting a session whose connection failed or was lost; each wait is drawn between the current step and twice it (spreading retries), the step doubled at each failure.'),
      reconnect_max: z.number().positive().default(60).describe('Longest wait between reconnection attempts of a session, in seconds; at least reconnect_min.'),
      db_table: tableName.default('purplemap').describe('Table of the linked accounts (the purple seed\'s db_table): Kamailio purple\'s purplemap columns plus Parley\'s; created when missing.'),
    }),
    push: section({
      enabled: z.boolean().default(false).describe('Send push notifications (RFC 8599) through the providers configured below (APNs, FCM, a webhook) to devices that registered with pn-provider, pn-prid and pn-param (or Linphone\'s pn-type, app-id, pn-tok) and have a message waiting while they are not connected. Needs at least one provider.'),
      ttl: positiveInt.default(3600).describe('Seconds a provider keeps trying to reach a device that is switched off (apns-expiration, FCM android.ttl).'),
      attempts: positiveInt.max(20).default(5).describe('Most attempts at one push, the first included; a provider\'s overload (429, 5xx), an unreachable provider or an expired credential is tried again after a wait.'),
      retry_min: z.number().positive().default(1).describe('Seconds before the first new attempt at a push; each wait is drawn between the current step and twice it, the step doubled at each failure.'),
      retry_max: z.number().positive().default(60).describe('Longest wait between attempts at a push, in seconds; at least retry_min.'),
      timeout: z.number().positive().default(10).describe('Seconds a provider has to answer one request; then it counts as failed (and is tried again).'),
      ca: readablePath.nullable().default(null).describe('PEM file of certificate authorities trusted for the providers\' and the webhook\'s HTTPS endpoints besides Node\'s bundled list (for a private gateway or webhook server); null: Node\'s list alone.'),
      apns_url: urlOf(['https:']).default('https://api.push.apple.com').describe('Base URL of APNs for apps built for production (pn-provider apns); Parley POSTs to <url>/3/device/<token> over HTTP/2.'),
      apns_sandbox_url: urlOf(['https:']).default('https://api.sandbox.push.apple.com').describe('Base URL of APNs for development builds (pn-provider apns.dev).'),
      apns_key: readablePath.nullable().default(null).describe('APNs token authentication: the .p8 signing key file from the Apple developer account; Parley signs an ES256 provider token with it (kid apns_key_id, iss apns_team_id), renewed every 50 minutes. Never logged. null: certificate authentication with apns_cert, or no APNs.'),
      apns_key_id: z.string().regex(/^[A-Z0-9]{10}$/, 'expected the 10-character key ID').nullable().default(null).describe('Key ID of apns_key (10 characters); required with it.'),
      apns_team_id: z.string().regex(/^[A-Z0-9]{10}$/, 'expected the 10-character team ID').nullable().default(null).describe('Team ID of the Apple developer account apns_key belongs to (10 characters); required with it.'),
      apns_cert: readablePath.nullable().default(null).describe('APNs certificate authentication instead of a key: the PEM client certificate for the app\'s topic; needs apns_cert_key.'),
      apns_cert_key: readablePath.nullable().default(null).describe('PEM private key of apns_cert. Never logged.'),
      apns_push_type: z.enum(['alert', 'background', 'voip']).default('alert').describe('What a message push to an Apple device is: alert (a visible notification "message from <sender>", Linphone\'s pn-msg-str as its text key), background (wakes the app silently; APNs may delay or drop it), voip (PushKit, to the device\'s voip token). A device without the token the type needs gets what its token is for.'),
      fcm_url: urlOf(['https:']).default('https://fcm.googleapis.com').describe('Base URL of the FCM HTTP v1 API; Parley POSTs to <url>/v1/projects/<project_id>/messages:send.'),
      fcm_service_account: readablePath.nullable().default(null).describe('FCM: the service-account key file (JSON) of the Firebase project, as the Firebase console downloads it; its project_id names the project, and its private key signs the JWT exchanged at its token_uri for OAuth2 access tokens, kept until they expire. Never logged. null: no FCM.'),
      webhook_url: urlOf(['https:', 'http:'], /\$(?:token|from|call_id|provider|param)\b/g).nullable().default(null).describe('Generic webhook for every other pn-provider: Parley POSTs JSON {provider, token, param, from, call_id} to this URL, in which $token, $from, $call_id, $provider and $param are replaced (URL-encoded). 2xx: sent; 404 or 410: the token is invalid; 429 or 5xx: tried again. null: no webhook.'),
      webhook_authorization: z.string().min(1).nullable().default(null).describe('Value of the Authorization header sent to webhook_url (e.g. "Bearer <secret>"). Never logged. null: none.'),
    }),
    routes: z
      .array(route)
      .min(1)
      .default([{ handler: 'relay' }])
      .describe('Routing table for requests; the first route whose method, domain and user all match takes the request.'),
  })
  .strict();

function checkAcrossSections(config: z.output<typeof baseSchema>, ctx: z.RefinementCtx): void {
  for (const section of ['registrar', 'presence'] as const) {
    const { min_expires, default_expires, max_expires } = config[section];
    if (min_expires > max_expires) {
      ctx.addIssue({ code: 'custom', path: [section, 'min_expires'], message: `must not exceed max_expires (${max_expires})` });
    } else if (default_expires < min_expires || default_expires > max_expires) {
      ctx.addIssue({
        code: 'custom',
        path: [section, 'default_expires'],
        message: `must be between min_expires (${min_expires}) and max_expires (${max_expires})`,
      });
    }
  }
  for (const name of Object.keys(config.relay.sync_sent_domains)) {
    if (!config.domains.includes(name)) ctx.addIssue({ code: 'custom', path: ['relay', 'sync_sent_domains', name], message: `${name} is not one of domains` });
  }
  if (config.sip.t2 < config.sip.t1) {
    ctx.addIssue({ code: 'custom', path: ['sip', 't2'], message: `must not be less than t1 (${config.sip.t1})` });
  }
  const secureIndex = config.listen.findIndex((l) => SECURE_TRANSPORTS.has(l.proto));
  if (secureIndex >= 0) {
    const needer = `listen[${secureIndex}] (${formatListener(config.listen[secureIndex])})`;
    for (const file of ['cert', 'key'] as const) {
      if (config.tls[file] === null) {
        ctx.addIssue({ code: 'custom', path: ['tls', file], message: `required by ${needer}` });
      }
    }
  }
  if (config.xmpp.enabled) checkXmpp(config, ctx);
  if (config.gateway.enabled) checkGateway(config, ctx);
  checkPush(config, ctx);
}

function checkXmpp(config: z.output<typeof baseSchema>, ctx: z.RefinementCtx): void {
  const { xmpp, domains } = config;
  for (const key of xmpp.backend === 'component' ? (['xmpp_domain', 'xmpp_password'] as const) : (['xmpp_domain'] as const)) {
    if (xmpp[key] === null) ctx.addIssue({ code: 'custom', path: ['xmpp', key], message: 'required when xmpp.enabled is true' });
  }
  if ((xmpp.tls_cert === null) !== (xmpp.tls_key === null)) {
    ctx.addIssue({ code: 'custom', path: ['xmpp', xmpp.tls_cert === null ? 'tls_cert' : 'tls_key'], message: 'tls_cert and tls_key go together' });
  }
  const gatewayDomain = xmpp.gateway_domain ?? xmpp.xmpp_domain;
  if (gatewayDomain !== null && domains.includes(gatewayDomain)) {
    const implied = xmpp.gateway_domain === null ? ' (xmpp_domain, as gateway_domain is null)' : '';
    ctx.addIssue({ code: 'custom', path: ['xmpp', 'gateway_domain'], message: `${gatewayDomain}${implied} is one of domains, but MESSAGEs to the gateway domain go to XMPP` });
  }
  if (xmpp.address_mapping === 'rfc7247' && xmpp.xmpp_domain !== null && !domains.includes(xmpp.xmpp_domain)) {
    ctx.addIssue({ code: 'custom', path: ['xmpp', 'xmpp_domain'], message: 'must be one of domains with rfc7247 mapping: XMPP users write to SIP users at that domain' });
  }
  if (xmpp.reconnect_max < xmpp.reconnect_min) {
    ctx.addIssue({ code: 'custom', path: ['xmpp', 'reconnect_max'], message: `must not be less than reconnect_min (${xmpp.reconnect_min})` });
  }
}

function checkGateway(config: z.output<typeof baseSchema>, ctx: z.RefinementCtx): void {
  const { gateway, domains } = config;
  if (gateway.secret_key === null && (process.env.PARLEY_GATEWAY_KEY ?? '').length < 16) {
    ctx.addIssue({ code: 'custom', path: ['gateway', 'secret_key'], message: 'required when gateway.enabled is true (or PARLEY_GATEWAY_KEY, at least 16 characters)' });
  }
  const alias = gateway.jdomain?.split('=')[0]!.toLowerCase();
  if (alias !== undefined && domains.includes(alias)) {
    ctx.addIssue({ code: 'custom', path: ['gateway', 'jdomain'], message: `${alias} is one of domains, but MESSAGEs to the network alias go to the gateway` });
  }
  const ircAlias = (gateway.irc_domain ?? `irc.${domains[0]}`).split('=')[0]!.toLowerCase();
  const implied = gateway.irc_domain === null ? ' (irc_domain is null)' : '';
  if (domains.includes(ircAlias)) {
    ctx.addIssue({ code: 'custom', path: ['gateway', 'irc_domain'], message: `${ircAlias}${implied} is one of domains, but MESSAGEs to the network alias go to the gateway` });
  } else if (ircAlias === (alias ?? `xmpp.${domains[0]}`)) {
    ctx.addIssue({ code: 'custom', path: ['gateway', 'irc_domain'], message: `${ircAlias} is the XMPP network's alias (jdomain) too; each network needs its own` });
  }
  const networkAliases = new Set([alias ?? `xmpp.${domains[0]}`, ircAlias]);
  gateway.aliases.forEach((entry, index) => {
    const transport = entry.split('=')[0]!.toLowerCase();
    if (domains.includes(transport) || networkAliases.has(transport)) {
      ctx.addIssue({ code: 'custom', path: ['gateway', 'aliases', index], message: `${transport} is one of domains or another network's alias; a transport needs its own` });
    }
    networkAliases.add(transport);
  });
  if (gateway.reconnect_max < gateway.reconnect_min) {
    ctx.addIssue({ code: 'custom', path: ['gateway', 'reconnect_max'], message: `must not be less than reconnect_min (${gateway.reconnect_min})` });
  }
}

function checkPush(config: z.output<typeof baseSchema>, ctx: z.RefinementCtx): void {
  const { push } = config;
  const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: ['push', key], message });
  if (push.apns_key !== null) {
    for (const key of ['apns_key_id', 'apns_team_id'] as const) if (push[key] === null) issue(key, 'required with apns_key');
    if (push.apns_cert !== null) issue('apns_cert', 'apns_key and apns_cert are two ways to authenticate to APNs; choose one');
  }
  if ((push.apns_cert === null) !== (push.apns_cert_key === null)) issue(push.apns_cert === null ? 'apns_cert' : 'apns_cert_key', 'apns_cert and apns_cert_key go together');
  if (push.retry_max < push.retry_min) issue('retry_max', `must not be less than retry_min (${push.retry_min})`);
  if (push.enabled && push.apns_key === null && push.apns_cert === null && push.fcm_service_account === null && push.webhook_url === null) {
    issue('enabled', 'needs a provider: apns_key or apns_cert (APNs), fcm_service_account (FCM) or webhook_url');
  }
}

export const configSchema = baseSchema.superRefine(checkAcrossSections);

export type Config = z.output<typeof configSchema>;
export type Route = Config['routes'][number];

/** A complete configuration with every option at its default. */
export function defaultConfig(): Config {
  return configSchema.parse({});
}
