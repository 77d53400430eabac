import { configRisks, formatHostPort, formatListener, loadConfig, type Config } from '../config/index.js';
import { gatewayRegistrarOf, ircAliasOf, transportsOf, xmppAliasOf } from '../gateway/options.js';
import { redactUrlPassword } from '../log/index.js';
import { gatewayDomainOf } from '../xmpp/options.js';
import { syncsSent } from '../relay/sync.js';
import { CONFIG_OPTION, HELP_OPTION, parseCommandLine, printHelp, type Command } from './args.js';

const USAGE = `Usage: parley check-config [--config FILE]

Loads and validates the configuration the way \`parley start\` does, then prints a summary of
every feature enabled and, on stderr, a warning for each risky combination (open registration
on an address other hosts reach, s2s without TLS, an admin endpoint others reach without a
token of its own...), or every problem found. Exit code 0 when valid (warnings or not), 2 when not.

Options:
  -c, --config FILE   configuration file (default: none, the built-in defaults)
  -h, --help          show this help
`;

const OFF = 'off';

function authSummary({ auth }: Config): string {
  if (auth.policy === 'open') return 'open: anyone may register and send as anyone';
  return `required, digest ${auth.algorithms.join(' and ')}, realm ${auth.realm ?? 'per domain'}`;
}

function tlsSummary({ tls }: Config): string | undefined {
  return tls.cert === null ? undefined : `certificate ${tls.cert}, key ${tls.key}${tls.ca === null ? '' : `, authorities ${tls.ca}`}`;
}

function relaySummary({ relay, domains, offline }: Config): string {
  const foreign = relay.outbound_proxy === null ? `other domains refused (${relay.foreign_domain_status})` : `other domains through ${relay.outbound_proxy}`;
  const synced = domains.filter((domain) => syncsSent(domain, offline.enabled, { enabled: relay.sync_sent, domains: relay.sync_sent_domains }));
  const sync = synced.length === 0 ? 'off' : synced.length === domains.length ? 'on' : `on for ${synced.join(', ')}`;
  return `${foreign}, own-message sync ${sync}`;
}

function offlineSummary({ offline }: Config): string {
  return offline.enabled ? `stored, ${offline.max_per_user} per user for ${offline.expires} s` : OFF;
}

function roomsSummary({ imc, domains }: Config): string {
  return imc.enabled ? `manager sip:${imc.manager}@${domains[0]}, rooms ${imc.room_pattern}, history ${imc.history}` : OFF;
}

function presenceSummary({ presence }: Config): string {
  return presence.enabled ? `policy ${presence.policy}` : OFF;
}

function xmppSummary(config: Config): string {
  const { xmpp } = config;
  if (!xmpp.enabled) return OFF;
  const addresses = `SIP domain ${gatewayDomainOf(config)}, XMPP domain ${xmpp.xmpp_domain}, ${xmpp.address_mapping} mapping`;
  if (xmpp.backend === 'component') return `component of the XMPP server ${xmpp.xmpp_host}:${xmpp.xmpp_port}; ${addresses}`;
  const cert = xmpp.tls_cert ?? config.tls.cert;
  return [
    `XMPP server, s2s on ${xmpp.s2s_listen}:${xmpp.s2s_port}`,
    addresses,
    `peers: any domain, found by DNS SRV through ${xmpp.resolver ?? "the system's resolver"}`,
    `TLS ${xmpp.s2s_require_tls ? 'required' : 'optional'}, certificate ${cert ?? 'none'}`,
    `remote certificates ${xmpp.s2s_verify_certificates ? `verified against ${xmpp.s2s_ca ?? "Node's authorities"}` : 'not verified (dialback only)'}`,
  ].join('; ');
}

function gatewaySummary(config: Config): string {
  const { gateway } = config;
  if (!gateway.enabled) return OFF;
  const xmpp = xmppAliasOf(config);
  const irc = ircAliasOf(config);
  const transports = transportsOf(config).map(({ alias }) => alias);
  const xmppDomains = Object.keys(gateway.xmpp_servers);
  const ircNetworks = Object.keys(gateway.irc_networks);
  const jaddress = gateway.jaddress === null ? '' : `${xmppDomains.length > 0 ? 'other domains' : 'every domain'} through ${gateway.jaddress}${gateway.jport === null ? '' : `:${gateway.jport}`}`;
  const servers = `XMPP accounts on ${[...xmppDomains, jaddress].filter(Boolean).join(', ') || 'no domain'}, IRC accounts on ${ircNetworks.join(', ') || 'no network'}`;
  return [
    `commands to ${gatewayRegistrarOf(config)}`,
    `networks: xmpp as ${xmpp.alias}, irc as ${irc.alias}${transports.length > 0 ? `, transports ${transports.join(', ')}` : ''}`,
    `${servers}${gateway.allow_user_servers ? ', or on servers users name' : ''}`,
    gateway.http_proxy_host === null ? 'direct connections' : `through the HTTP proxy ${gateway.http_proxy_host}:${gateway.http_proxy_port}`,
    `at most ${gateway.max_sessions} sessions, ${gateway.max_sessions_per_user} per user`,
  ].join('; ');
}

function pushSummary({ push }: Config): string {
  if (!push.enabled) return OFF;
  const apnsAuth = push.apns_key !== null ? `key ${push.apns_key_id} of team ${push.apns_team_id}` : `certificate ${push.apns_cert}`;
  return [
    push.apns_key !== null || push.apns_cert !== null ? `APNs (${apnsAuth}, ${push.apns_push_type} pushes)` : undefined,
    push.fcm_service_account !== null ? `FCM (service account ${push.fcm_service_account})` : undefined,
    // The origin only: the template's query may hold a secret.
    push.webhook_url !== null ? `other providers through the webhook at ${new URL(push.webhook_url).origin}` : undefined,
  ]
    .filter((part) => part !== undefined)
    .join('; ');
}

function adminSummary({ admin }: Config): string {
  if (!admin.enabled) return OFF;
  const token = admin.token === null ? 'RPC token generated at each start' : 'RPC token set';
  return `http://${formatHostPort(admin.listen)}, ${token}, /metrics ${admin.metrics_token ? 'with the token' : 'open'}`;
}

/** What the configuration enables, one `name: value` line per feature. */
export function summarize(config: Config): string {
  const lines: [string, string | undefined][] = [
    ['listen', config.listen.map(formatListener).join(', ')],
    ['tls', tlsSummary(config)],
    ['domains', config.domains.join(', ')],
    ['auth', authSummary(config)],
    ['database', redactUrlPassword(config.database)],
    ['relay', relaySummary(config)],
    ['offline', offlineSummary(config)],
    ['rooms', roomsSummary(config)],
    ['presence', presenceSummary(config)],
    ['xmpp', xmppSummary(config)],
    ['gateways', gatewaySummary(config)],
    ['push', pushSummary(config)],
    ['admin', adminSummary(config)],
  ];
  return lines
    .filter((line): line is [string, string] => line[1] !== undefined)
    .map(([name, value]) => `  ${`${name}:`.padEnd(10)}${value}\n`)
    .join('');
}

export const checkConfigCommand: Command = {
  name: 'check-config',
  summary: 'validate a configuration file, summarize it and warn of risky settings',
  run(args) {
    const { values } = parseCommandLine({ args, options: { ...HELP_OPTION, ...CONFIG_OPTION } }, USAGE);
    if (values.help) return Promise.resolve(printHelp(USAGE));
    const config = loadConfig(values.config);
    process.stdout.write(`config OK\n${summarize(config)}`);
    for (const risk of configRisks(config)) process.stderr.write(`warning: ${risk.key}: ${risk.reason}\n`);
    return Promise.resolve(0);
  },
};
