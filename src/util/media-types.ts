// The media types of what a SIP MESSAGE carries, as the relay (what is stored offline, copied to
// the sender's devices, counted as a receipt) and the bridge (which kind it reads) tell them apart:
// inside a message/cpim wrapper (RFC 3862), the type of what it wraps.
import { CPIM_TYPE, ContentError, type CpimMessage, decodeContent, headerValue, parseCpim } from './cpim.js';

export const IMDN_TYPE = 'message/imdn+xml';
export const ISCOMPOSING_TYPE = 'application/im-iscomposing+xml';

/** The media type of a Content-Type value, in lower case, without parameters. */
export function mediaTypeOf(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase();
}

/** What is read of a SIP MESSAGE here (SipMessage is one): its body and its header values by name. */
export interface CarryingMessage {
  readonly body: Buffer;
  get(name: string): string | undefined;
}

/** What a SIP MESSAGE carries once its Content-Encoding and CPIM wrapper are undone. */
export interface CarriedContent {
  contentType: string;
  body: Buffer;
  /** The wrapper it came in, if any. */
  cpim?: CpimMessage;
}

/** The content of a SIP MESSAGE, inflated (at most maxBody bytes) and unwrapped from message/cpim; throws a ContentError when it cannot be read. */
export function carriedContent(message: CarryingMessage, maxBody: number): CarriedContent {
  const body = decodeContent(message.body, message.get('content-encoding'), maxBody);
  const contentType = message.get('content-type') ?? 'text/plain';
  if (mediaTypeOf(contentType) !== CPIM_TYPE) return { contentType, body };
  const cpim = parseCpim(body);
  const inner = decodeContent(cpim.content, headerValue(cpim.contentHeaders, 'content-encoding'), maxBody);
  return { contentType: headerValue(cpim.contentHeaders, 'content-type') ?? 'text/plain', body: inner, cpim };
}

/** The media type of what a SIP MESSAGE carries, inside message/cpim (inflated, at most maxBody); its own when that cannot be read. */
export function carriedMediaType(message: CarryingMessage, maxBody: number): string {
  try {
    return mediaTypeOf(carriedContent(message, maxBody).contentType);
  } catch (error) {
    if (!(error instanceof ContentError)) throw error;
    return mediaTypeOf(message.get('content-type') ?? '');
  }
}
