// The shape of an RPC method a plugin contributes (parameters are strings, by name), and the
// errors it may throw: the caller's params at fault, or a call refused.

export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** The server understood the call and declined it, e.g. "no room sip:chat-x@localhost". */
  REFUSED: -32000,
} as const;

export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export interface RpcParam {
  name: string;
  optional?: boolean;
  /** A whole number, from JSON as a number or a string of digits; the method gets its digits. */
  integer?: boolean;
}

export type RpcArguments = Record<string, string | undefined>;

export interface RpcMethod {
  /** In positional order. */
  params: readonly RpcParam[];
  call(args: RpcArguments): unknown;
}

export type RpcMethods = Record<string, RpcMethod>;

export function invalidParams(message: string): RpcError {
  return new RpcError(RpcErrorCode.INVALID_PARAMS, `invalid params: ${message}`);
}
