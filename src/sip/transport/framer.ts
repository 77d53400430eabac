// Cuts a byte stream into SIP messages by Content-Length (RFC 3261 §18.3).
import { SipParseError, findHeadEnd, parseContentLength, parseHead, validate } from '../parser.js';
import type { SipMessage } from '../message.js';

const CRLF_BYTE = 0x0d;
const LF_BYTE = 0x0a;

export type FrameResult = { message: SipMessage } | { error: SipParseError; fatal: boolean } | { keepalive: true };

export class StreamFramer {
  private buffer: Buffer = Buffer.alloc(0);
  /** CR/LF bytes seen between messages, possibly across chunks: every four make one ping. */
  private keepaliveBytes = 0;
  /** Bytes of the buffer already searched for the end of the head, so a head sent byte by byte is not searched again each time. */
  private searched = 0;
  /** Set by a fatal error: what follows cannot be framed, and is not kept. */
  private broken = false;

  constructor(private readonly maxMessageSize: number) {}

  /** Bytes of an incomplete message held: more than 0 means a message has begun to arrive. */
  get buffered(): number {
    return this.buffer.length;
  }

  /**
   * Feeds bytes; returns what became complete. A fatal error means the stream cannot be
   * resynchronised: the framer then holds nothing and takes nothing more.
   */
  push(chunk: Buffer): FrameResult[] {
    if (this.broken) return [];
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out = this.frame();
    if (this.broken || this.buffer.length === 0) {
      this.buffer = Buffer.alloc(0);
      this.searched = 0;
    }
    return out;
  }

  private frame(): FrameResult[] {
    const out: FrameResult[] = [];
    for (;;) {
      // Leading CRLFs are keepalives (RFC 5626 §3.5.1): a double CRLF asks for a single CRLF back.
      let skip = 0;
      while (skip < this.buffer.length && (this.buffer[skip] === CRLF_BYTE || this.buffer[skip] === LF_BYTE)) skip++;
      if (skip > 0) {
        this.keepaliveBytes += skip;
        for (; this.keepaliveBytes >= 4; this.keepaliveBytes -= 4) out.push({ keepalive: true });
        this.buffer = this.buffer.subarray(skip);
        this.searched = 0;
      }
      if (this.buffer.length === 0) break;
      this.keepaliveBytes = 0;
      // The separator may straddle the previous chunk's end: search again from 3 bytes before it.
      const end = findHeadEnd(this.buffer, Math.max(0, this.searched - 3));
      if (!end) {
        this.searched = this.buffer.length;
        if (this.buffer.length > this.maxMessageSize) this.fail(out, new SipParseError('Message Too Large', undefined, 513));
        break;
      }
      let message: SipMessage;
      let length: number;
      try {
        message = parseHead(this.buffer.toString('utf8', 0, end.at));
        const lengthText = message.get('content-length');
        // On a stream a missing Content-Length can only mean an empty body.
        length = lengthText === undefined ? 0 : parseContentLength(lengthText, message);
      } catch (error) {
        this.fail(out, error as SipParseError);
        break;
      }
      const total = end.at + end.length + length;
      if (total > this.maxMessageSize) {
        this.fail(out, new SipParseError('Message Too Large', message, 513));
        break;
      }
      if (this.buffer.length < total) break;
      message.body = Buffer.from(this.buffer.subarray(end.at + end.length, total));
      this.buffer = this.buffer.subarray(total);
      this.searched = 0;
      try {
        validate(message);
        out.push({ message });
      } catch (error) {
        out.push({ error: error as SipParseError, fatal: false });
      }
    }
    return out;
  }

  private fail(out: FrameResult[], error: SipParseError): void {
    out.push({ error, fatal: true });
    this.broken = true;
  }
}
