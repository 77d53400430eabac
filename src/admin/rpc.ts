// JSON-RPC 2.0 (https://www.jsonrpc.org/specification): single calls, batches and notifications,
// with parameters by name or by position, over a table of methods whose parameters are strings.
import type { Logger } from 'pino';
import { RpcError, RpcErrorCode, invalidParams, type RpcArguments, type RpcMethods, type RpcParam } from '../plugin/index.js';
import { isStoreUnavailable } from '../store/index.js';

type RequestId = string | number | null;

interface RpcResponse {
  jsonrpc: '2.0';
  id: RequestId;
  result?: unknown;
  error?: { code: number; message: string };
}

export class RpcDispatcher {
  constructor(
    private readonly methods: RpcMethods,
    private readonly log: Logger,
  ) {}

  /** The response body for a request body; undefined when nothing is to be answered (notifications only). */
  async handle(body: string): Promise<RpcResponse | RpcResponse[] | undefined> {
    let request: unknown;
    try {
      request = JSON.parse(body);
    } catch {
      return failure(null, new RpcError(RpcErrorCode.PARSE_ERROR, 'parse error: the body is not JSON'));
    }
    if (!Array.isArray(request)) return this.handleOne(request);
    if (request.length === 0) return failure(null, new RpcError(RpcErrorCode.INVALID_REQUEST, 'invalid request: empty batch'));
    const responses: RpcResponse[] = [];
    // One after another, so that a batch changing rooms applies its calls in the order written.
    for (const item of request) {
      const response = await this.handleOne(item);
      if (response) responses.push(response);
    }
    return responses.length > 0 ? responses : undefined;
  }

  private async handleOne(request: unknown): Promise<RpcResponse | undefined> {
    if (!isObject(request) || request.jsonrpc !== '2.0' || typeof request.method !== 'string' || !isRequestId(request.id)) {
      const id = isObject(request) && isRequestId(request.id) ? (request.id ?? null) : null;
      return failure(id, new RpcError(RpcErrorCode.INVALID_REQUEST, 'invalid request: expected {"jsonrpc": "2.0", "method": ..., "id": ...}'));
    }
    const isNotification = !('id' in request);
    const id = request.id ?? null;
    try {
      const method = Object.hasOwn(this.methods, request.method) ? this.methods[request.method] : undefined;
      if (!method) throw new RpcError(RpcErrorCode.METHOD_NOT_FOUND, `method not found: ${request.method}`);
      const result = await method.call(bindParams(method.params, request.params));
      return isNotification ? undefined : { jsonrpc: '2.0', id, result: result ?? null };
    } catch (error) {
      if (error instanceof RpcError) return isNotification ? undefined : failure(id, error);
      // Not the call's fault, nor the server's: the endpoint answers 503 to the whole request.
      if (isStoreUnavailable(error)) throw error;
      this.log.error({ err: error, method: request.method }, 'rpc method failed');
      return isNotification ? undefined : failure(id, new RpcError(RpcErrorCode.INTERNAL_ERROR, 'internal error'));
    }
  }
}

function failure(id: RequestId, error: RpcError): RpcResponse {
  return { jsonrpc: '2.0', id, error: { code: error.code, message: error.message } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRequestId(id: unknown): id is RequestId | undefined {
  return id === undefined || id === null || typeof id === 'string' || typeof id === 'number';
}

/** Turns params by position or by name into named arguments, checking each against the method's list. */
function bindParams(specs: readonly RpcParam[], params: unknown): RpcArguments {
  let named: Record<string, unknown>;
  if (params === undefined) named = {};
  else if (Array.isArray(params)) {
    if (params.length > specs.length) throw invalidParams(`expected at most ${specs.length} by position, got ${params.length}`);
    named = Object.fromEntries(params.map((value, i) => [specs[i]!.name, value]));
  } else if (isObject(params)) named = params;
  else throw invalidParams('params must be an object (by name) or an array (by position)');

  const unknown = Object.keys(named).find((name) => !specs.some((spec) => spec.name === name));
  if (unknown !== undefined) throw invalidParams(`unknown param "${unknown}"`);
  const args: RpcArguments = {};
  for (const { name, optional, integer } of specs) {
    const value = named[name];
    if (value === undefined || value === null) {
      if (!optional) throw invalidParams(`"${name}" is required`);
    } else if (integer) {
      const digits = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? String(value) : value;
      if (typeof digits !== 'string' || !/^\d{1,15}$/.test(digits)) throw invalidParams(`"${name}" must be a whole number`);
      args[name] = digits;
    } else if (typeof value !== 'string' || value === '') throw invalidParams(`"${name}" must be a non-empty string`);
    else args[name] = value;
  }
  return args;
}
