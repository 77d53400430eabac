// A failed connection in words a user understands: which cause (refused, unreachable, DNS, TLS),
// and where. Node's errors carry a code; the networks' libraries pass them on, sometimes inside
// an AggregateError (one error per address tried).

/** The Node error code of a failed connection, looked for inside an AggregateError too. */
function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) return error.errors.map(codeOf).find((inner) => inner !== undefined);
  return undefined;
}

const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNKNOWN_PROTOCOL', 'EPROTO']);
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME/;

/** Why a connection to host:port failed, naming the cause; undefined when the error says nothing Node-specific. */
export function connectionFailure(error: unknown, host: string, port: number): string | undefined {
  const code = codeOf(error);
  const where = `${host}:${port}`;
  switch (code) {
    case undefined:
      return undefined;
    case 'ECONNREFUSED':
      return `${where} refused the connection (no server listens there)`;
    case 'ENOTFOUND':
      return `the name ${host} is not found in DNS`;
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return `the name ${host} could not be looked up (DNS failure)`;
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
      return `${where} is unreachable from here (no network route)`;
    case 'ETIMEDOUT':
      return `${where} did not answer`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `${where} closed the connection`;
  }
  if (NOT_TLS.has(code)) return `${where} does not speak TLS (is it a plain-text port?)`;
  if (UNTRUSTED.test(code)) return `the TLS certificate of ${where} is not trusted (${code})`;
  return `${where}: ${code}`;
}
