// Combinations of options that are valid but expose the server: each is worth a warning from
// `parley check-config` before it goes live. Each risk names the key an operator would change.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { createSecureContext } from 'node:tls';
import { AddressRanges, parseCidr } from '../sip/transport/limits.js';
import { formatHostPort, formatListener, type Config, type Listener } from './schema.js';

export interface ConfigRisk {
  key: string;
  reason: string;
}

const LOOPBACK = new AddressRanges(['127.0.0.0/8', '::1']);
/** Loopback and private networks (RFC 1918, RFC 4193 unique local), where plain text may be an operator's choice. */
const PRIVATE = new AddressRanges(['127.0.0.0/8', '::1', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']);

/** Whether a host (a listener's, admin.listen's) can be reached from this machine only. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || LOOPBACK.has(host);
}

/** Whether every address of an IP or CIDR range is a loopback one. */
function isLoopbackRange(text: string): boolean {
  const range = parseCidr(text);
  if (!range || !LOOPBACK.has(range.address)) return false;
  // Loopback is 127.0.0.0/8, ::1/128 and the IPv4-mapped ::ffff:127.0.0.0/104.
  const narrowest = isIPv4(range.address) ? 8 : range.address.toLowerCase().startsWith('::ffff:') ? 104 : 128;
  return range.prefix >= narrowest;
}

/** The risk of auth.policy open on a listener other hosts reach; undefined on loopback. */
export function openPolicyRisk(config: Config, listener: Listener): ConfigRisk | undefined {
  if (config.auth.policy !== 'open' || isLoopbackHost(listener.host)) return undefined;
  return {
    key: 'auth.policy',
    reason: `open on ${formatListener(listener)}, an address other hosts can reach: anyone may register and send as any user; set auth.policy: required`,
  };
}

/** Why a certificate and key cannot serve TLS (unusable together, or expired); undefined when they can. */
function certificateProblem(certPath: string, keyPath: string): string | undefined {
  try {
    const cert = readFileSync(certPath);
    createSecureContext({ cert, key: readFileSync(keyPath) });
    const { validTo } = new X509Certificate(cert);
    return new Date(validTo) < new Date() ? `the certificate ${certPath} expired on ${validTo}` : undefined;
  } catch (error) {
    return `${certPath} and ${keyPath} cannot serve TLS: ${(error as Error).message}`;
  }
}

function tlsRisks(config: Config): ConfigRisk[] {
  const risks: ConfigRisk[] = [];
  const secure = config.listen.filter((listener) => listener.proto === 'tls' || listener.proto === 'wss');
  const { cert, key } = config.tls;
  const problem = secure.length > 0 && cert !== null && key !== null ? certificateProblem(cert, key) : undefined;
  if (problem) risks.push({ key: 'tls.cert', reason: `${problem}; ${secure.map(formatListener).join(', ')} will fail every handshake` });
  return risks;
}

function xmppRisks(config: Config): ConfigRisk[] {
  const { xmpp } = config;
  if (!xmpp.enabled || xmpp.backend !== 'server') return [];
  const risks: ConfigRisk[] = [];
  const cert = xmpp.tls_cert ?? config.tls.cert;
  const key = xmpp.tls_key ?? config.tls.key;
  if (cert === null || key === null) {
    const outcome = xmpp.s2s_require_tls ? 'so Parley refuses them' : 'so they are unencrypted';
    risks.push({ key: 'xmpp.tls_cert', reason: `no certificate for server-to-server streams (xmpp.tls_cert, tls.cert): other XMPP servers cannot connect with TLS, ${outcome}` });
  } else {
    const problem = certificateProblem(cert, key);
    if (problem) risks.push({ key: xmpp.tls_cert === null ? 'tls.cert' : 'xmpp.tls_cert', reason: `${problem}; server-to-server streams cannot use TLS` });
  }
  if (!xmpp.s2s_require_tls) {
    risks.push({ key: 'xmpp.s2s_require_tls', reason: 'false: messages to other XMPP servers may travel unencrypted; set it to true' });
  }
  if (!xmpp.s2s_verify_certificates) {
    risks.push({ key: 'xmpp.s2s_verify_certificates', reason: 'false: other XMPP servers are authenticated by Server Dialback alone, which trusts DNS' });
  }
  return risks;
}

/** Servers of the per-user gateway configured with tls none on a host not known to be on a private network. */
function gatewayRisks({ gateway }: Config): ConfigRisk[] {
  if (!gateway.enabled) return [];
  const servers = [
    ...Object.entries(gateway.xmpp_servers).map(([name, { host, tls }]) => ({ key: `gateway.xmpp_servers.${name}.tls`, host: host ?? name, tls })),
    ...Object.entries(gateway.irc_networks).map(([name, { host, tls }]) => ({ key: `gateway.irc_networks.${name}.tls`, host, tls })),
  ];
  return servers
    .filter(({ host, tls }) => tls === 'none' && !PRIVATE.has(host))
    .map(({ key, host }) => ({ key, reason: `none for ${host}, not an address of a private network: what the linked accounts send crosses the network unencrypted; use starttls or direct unless it is on a private network` }));
}

/** Every risky combination in `config`, in the order of the file. */
export function configRisks(config: Config): ConfigRisk[] {
  const risks: ConfigRisk[] = [];
  for (const listener of config.listen) {
    const risk = openPolicyRisk(config, listener);
    if (risk) risks.push(risk);
  }
  risks.push(...tlsRisks(config));
  for (const range of config.sip.exempt_sources.filter((entry) => !isLoopbackRange(entry))) {
    risks.push({ key: 'sip.exempt_sources', reason: `${range} is not loopback: its sources escape rate_limit and max_connections_per_ip; list only proxies of your own` });
  }
  const { admin } = config;
  if (admin.enabled && !isLoopbackHost(admin.listen.host) && admin.token === null) {
    risks.push({
      key: 'admin.token',
      reason: `null while admin.listen (${formatHostPort(admin.listen)}) is reachable from other hosts: the endpoint controls the whole server; set a token of your own or listen on loopback`,
    });
  }
  risks.push(...xmppRisks(config));
  risks.push(...gatewayRisks(config));
  return risks;
}
