// Where the XMPP server of a domain listens (RFC 6120 §3.2): the SRV records of
// _xmpp-server._tcp.DOMAIN in priority order (weighted within a priority, RFC 2782), or when there
// are none, the domain itself at port 5269. A single SRV record with target "." says the domain
// offers no XMPP service. Names are resolved through the configured DNS server (xmpp.resolver)
// when there is one, falling back to the system's lookup (which reads /etc/hosts).
import type { SrvRecord } from 'node:dns';
import { Resolver, lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export const DEFAULT_S2S_PORT = 5269;

export interface Target {
  host: string;
  port: number;
}

/** Per-query timeout of the resolver, in ms; each query is tried twice. */
const QUERY_TIMEOUT_MS = 2_000;

export class ServerResolver {
  private readonly dns: Resolver;

  /** `server`: "host" or "host:port" of a DNS server (IPv6 in brackets); undefined: the system's. */
  constructor(private readonly server?: string) {
    this.dns = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: 2 });
    if (server) this.dns.setServers([server]);
  }

  /** The hosts and ports to try for a domain, in order; empty when the domain says it has no XMPP service. */
  async targets(domain: string): Promise<Target[]> {
    let records: SrvRecord[] = [];
    try {
      records = await this.dns.resolveSrv(`_xmpp-server._tcp.${domain}`);
    } catch {
      // No record, no such name, or no answer: the fallback below (RFC 6120 §3.2.2).
    }
    if (records.length === 1 && (records[0]!.name === '.' || records[0]!.name === '')) return [];
    if (records.length === 0) return [{ host: domain, port: DEFAULT_S2S_PORT }];
    return orderSrv(records).map((record) => ({ host: record.name.replace(/\.$/, ''), port: record.port }));
  }

  /** The addresses of a host: A and AAAA through the configured server, else the system's lookup. */
  async addresses(host: string): Promise<string[]> {
    if (isIP(host)) return [host];
    if (this.server) {
      const [v4, v6] = await Promise.allSettled([this.dns.resolve4(host), this.dns.resolve6(host)]);
      const found = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
      if (found.length > 0) return found;
    }
    try {
      return (await lookup(host, { all: true })).map((entry) => entry.address);
    } catch {
      return [];
    }
  }
}

/** RFC 2782 order: ascending priority; within one priority, a weighted random order. */
export function orderSrv(records: readonly SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const priorities = [...new Set(records.map((record) => record.priority))].sort((a, b) => a - b);
  const ordered: SrvRecord[] = [];
  for (const priority of priorities) {
    const left = records.filter((record) => record.priority === priority);
    while (left.length > 0) {
      const total = left.reduce((sum, record) => sum + record.weight, 0);
      let pick = 0;
      if (total > 0) {
        let threshold = random() * total;
        pick = left.findIndex((record) => (threshold -= record.weight) < 0);
        if (pick < 0) pick = left.length - 1;
      }
      ordered.push(...left.splice(pick, 1));
    }
  }
  return ordered;
}
