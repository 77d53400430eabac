// message/cpim (RFC 3862) as SIP clients such as Linphone wrap their messages to carry IMDN headers
// (RFC 5438): message headers ("imdn.Message-ID: ..."), a blank line, the content headers, a blank
// line, the content. Content-Encoding deflate (Linphone compresses IMDN bodies) is undone with a
// bound on the inflated size, so that a small compressed body cannot become a huge one.
import { inflateRawSync, inflateSync } from 'node:zlib';

export const CPIM_TYPE = 'message/cpim';

export interface CpimHeader {
  name: string;
  value: string;
}

export interface CpimMessage {
  /** The message headers (From, To, DateTime, NS, imdn.*), in order. */
  headers: CpimHeader[];
  /** The content headers (Content-Type, Content-Disposition...), in order. */
  contentHeaders: CpimHeader[];
  content: Buffer;
}

/** A body Parley cannot read; the message says why. */
export class ContentError extends Error {}

const HEADER = /^([!-9;-~]+):[ \t]*(.*)$/;

/** Reads a message/cpim body; throws a ContentError when it is not one. */
export function parseCpim(body: Buffer): CpimMessage {
  const { lines: headerLines, rest } = headerBlock(body, 0);
  const { lines: contentLines, rest: contentStart } = headerBlock(body, rest);
  return { headers: headerLines.map(headerOf), contentHeaders: contentLines.map(headerOf), content: body.subarray(contentStart) };
}

/** A message/cpim body. */
export function formatCpim(message: CpimMessage): Buffer {
  const block = (headers: CpimHeader[]) => headers.map(({ name, value }) => `${name}: ${value}\r\n`).join('');
  return Buffer.concat([Buffer.from(`${block(message.headers)}\r\n${block(message.contentHeaders)}\r\n`), message.content]);
}

/** The value of a header (names compare without case), if present. */
export function headerValue(headers: CpimHeader[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find((header) => header.name.toLowerCase() === lower)?.value;
}

/**
 * The prefix a CPIM message gives a namespace in its NS headers ("NS: imdn <urn:ietf:params:imdn>"),
 * so that "imdn.Message-ID" is found under whatever name the sender chose.
 */
export function namespacePrefix(headers: CpimHeader[], uri: string): string | undefined {
  for (const header of headers) {
    if (header.name.toLowerCase() !== 'ns') continue;
    const match = /^\s*([^\s<]*)\s*<([^>]*)>\s*$/.exec(header.value);
    if (match && match[2] === uri) return match[1]!;
  }
  return undefined;
}

/**
 * Undoes a Content-Encoding (identity, or deflate in the zlib or raw form); the result is at most
 * `maxBytes` long. Throws a ContentError for another encoding, a corrupt stream or a larger result.
 */
export function decodeContent(body: Buffer, encoding: string | undefined, maxBytes: number): Buffer {
  const name = encoding?.trim().toLowerCase() ?? 'identity';
  if (name === '' || name === 'identity') return body;
  if (name !== 'deflate') throw new ContentError(`unsupported content encoding ${name}`);
  try {
    return inflateSync(body, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new ContentError(`inflated body over ${maxBytes} bytes`);
    // Some senders write raw deflate without the zlib header.
    try {
      return inflateRawSync(body, { maxOutputLength: maxBytes });
    } catch (rawError) {
      if ((rawError as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new ContentError(`inflated body over ${maxBytes} bytes`);
      throw new ContentError('corrupt deflate body');
    }
  }
}

/** The header lines from `start` to the next blank line (CRLF, or LF alone), and where what follows starts. */
function headerBlock(body: Buffer, start: number): { lines: string[]; rest: number } {
  const lines: string[] = [];
  let at = start;
  for (;;) {
    let end = body.indexOf(0x0a, at);
    if (end < 0) throw new ContentError('CPIM headers without the blank line that ends them');
    const line = body.subarray(at, end > at && body[end - 1] === 0x0d ? end - 1 : end).toString('utf8');
    end++;
    if (line === '') return { lines, rest: end };
    lines.push(line);
    at = end;
  }
}

function headerOf(line: string): CpimHeader {
  const match = HEADER.exec(line);
  if (!match) throw new ContentError(`malformed CPIM header ${JSON.stringify(line.slice(0, 60))}`);
  return { name: match[1]!, value: match[2]!.trim() };
}

