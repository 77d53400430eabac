// Reaches the admin endpoint of a test server the way an operator's script would: plain HTTP.
import { readTokenFile, tokenFilePath } from '../../src/admin/index.js';
import type { TestServer } from '../support/server.js';

export function adminUrl(s: TestServer): string {
  return `http://127.0.0.1:${s.server.admin!.port}`;
}

/** The generated token, from the file the server wrote for the CLI. */
export function adminToken(s: TestServer): string {
  return readTokenFile(tokenFilePath(s.config.database));
}

/** POSTs a raw JSON-RPC body (with no Authorization header when `token` is null); the parsed answer, or undefined for an empty one. */
export async function postRpc(s: TestServer, body: unknown, token: string | null = adminToken(s)): Promise<{ status: number; body: any }> {
  const response = await fetch(`${adminUrl(s)}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : response.headers.get('content-type') === 'application/json' ? JSON.parse(text) : text };
}

/** One call; its `result`, or its `error` object. */
export async function rpc(s: TestServer, method: string, params?: unknown): Promise<{ result?: any; error?: { code: number; message: string } }> {
  const { status, body } = await postRpc(s, { jsonrpc: '2.0', id: 1, method, params });
  if (status !== 200) throw new Error(`${method}: HTTP ${status}`);
  return body;
}

export async function scrape(s: TestServer, token?: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${adminUrl(s)}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, text: await response.text() };
}

/** The value of an unlabelled sample in Prometheus text. */
export function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}
