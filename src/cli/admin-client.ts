// How the `parley` commands that manage a running server reach its admin endpoint: where it is,
// which token to present, and one JSON-RPC call.
import { isIPv6 } from 'node:net';
// The token module alone: the admin index would load the whole server into every command.
import { readTokenFile, tokenFilePath } from '../admin/token.js';
import { loadConfig, type Config } from '../config/index.js';
import { CONFIG_OPTION, HELP_OPTION } from './args.js';

export const ADMIN_CLIENT_OPTIONS = {
  ...HELP_OPTION,
  ...CONFIG_OPTION,
  admin: { type: 'string' },
  token: { type: 'string' },
} as const;

export const ADMIN_CLIENT_HELP = `  -c, --config FILE   configuration file, for admin.listen, admin.token and the database
                      (whose directory holds the generated token)
      --admin URL     admin endpoint, e.g. http://127.0.0.1:8090 (default: from admin.listen)
      --token TOKEN   bearer token (default: admin.token, else the admin.token file Parley
                      writes at start)
  -h, --help          show this help`;

export interface AdminEndpoint {
  url: string;
  token: string;
}

export function resolveAdminEndpoint(values: { config?: string; admin?: string; token?: string }): AdminEndpoint {
  // The configuration is read only for what the command line leaves out.
  let config: Config | undefined;
  const configured = () => (config ??= loadConfig(values.config));
  return { url: values.admin ?? urlOf(configured()), token: values.token ?? tokenOf(configured()) };
}

/** A listener on every interface is reached on loopback. */
function urlOf(config: Config): string {
  const { host, port } = config.admin.listen;
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${isIPv6(reachable) ? `[${reachable}]` : reachable}:${port}`;
}

function tokenOf(config: Config): string {
  if (config.admin.token !== null) return config.admin.token;
  const path = tokenFilePath(config.database);
  try {
    return readTokenFile(path);
  } catch (error) {
    throw new Error(`cannot read the admin token from ${path} (${(error as NodeJS.ErrnoException).code}); pass --token, or run this where Parley runs, as its user`);
  }
}

interface RpcReply {
  result?: unknown;
  error?: { code: number; message: string };
}

/** The method's result; a JSON-RPC error becomes an Error carrying its message. */
export async function callRpc(endpoint: AdminEndpoint, method: string, params?: unknown): Promise<unknown> {
  const url = new URL('/rpc', endpoint.url);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${endpoint.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
  } catch (error) {
    const cause = (error as Error & { cause?: NodeJS.ErrnoException }).cause;
    throw new Error(`cannot reach the admin endpoint at ${url} (${cause?.code ?? cause?.message ?? (error as Error).message})`);
  }
  if (response.status === 401) throw new Error(`the admin endpoint at ${url} refused the token`);
  if (!response.ok) throw new Error(`the admin endpoint at ${url} answered HTTP ${response.status}`);
  const reply = (await response.json()) as RpcReply;
  if (reply.error) throw new Error(reply.error.message);
  return reply.result;
}
