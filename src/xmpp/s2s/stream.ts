// One XML stream of a server-to-server connection (RFC 6120 §4), either direction: the socket
// (plain, then TLS after STARTTLS), a parser that is replaced at each stream restart, the stream
// header, stream errors, and an idle timer that only stanzas (not whitespace keepalives) reset.
// Bad input never throws out of a socket handler: it ends the stream with the stream error it
// deserves.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from 'pino';
import xml from '@xmpp/xml';
import { PromptAcknowledgement } from '../acknowledgement.js';
import type { OutboundStanza } from '../backend.js';
import { escapeAttribute } from '../messages.js';
import { type StreamParser, type XmlLimits, conditionOf, guardedParser } from '../xml-guard.js';

export const NS_STREAM = 'http://etherx.jabber.org/streams';
export const NS_SERVER = 'jabber:server';
export const NS_DIALBACK = 'jabber:server:dialback';
export const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
export const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
export const NS_STREAM_ERRORS = 'urn:ietf:params:xml:ns:xmpp-streams';
export const NS_DIALBACK_FEATURE = 'urn:xmpp:features:dialback';

/** Time a closing stream may take before its socket is dropped. */
const CLOSE_GRACE_MS = 2_000;

interface StreamEvents {
  /** The peer's stream header, valid; its attributes. */
  open: [Record<string, string | undefined>];
  element: [xml.Element];
  /** The connection is gone (either side closed it, or it failed). */
  closed: [];
}

export class XmlStream extends EventEmitter<StreamEvents> {
  /** Whether the socket is the TLS one. */
  secure = false;
  /** Whether our stream header is out (a stream error must follow one). */
  private headerSent = false;
  private ended = false;
  private parser: StreamParser | undefined;
  private readonly Parser: new () => StreamParser;
  private decoder = new StringDecoder('utf8');
  private lastStanza = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  /** What the peer writes is acknowledged at once: an incoming stream carries only the peer's stanzas. */
  private readonly acknowledgement = new PromptAcknowledgement(() => {
    if (this.attached && this.headerSent) this.write(' ');
  });
  /** False once the socket is handed to TLS (detach), until the TLS one is attached. */
  private attached = false;
  private readonly onData = (chunk: Buffer) => this.read(chunk);
  private readonly onClose = () => this.closed();
  private readonly onError = (error: Error) => this.log.debug({ err: error.message }, 's2s socket error');

  constructor(
    public socket: Socket,
    private readonly log: Logger,
    idleMs: number,
    private readonly onIdle: () => void,
    limits: XmlLimits,
  ) {
    super();
    this.Parser = guardedParser(limits);
    this.attach(socket);
    this.restart();
    this.idleTimer = setInterval(() => {
      if (Date.now() - this.lastStanza >= idleMs) this.onIdle();
    }, Math.max(250, Math.min(idleMs / 4, 30_000))).unref();
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  /** Stops reading the socket (before handing it to TLS). */
  detach(): Socket {
    this.attached = false;
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    return this.socket;
  }

  /** Reads from a new socket (the TLS one) with a fresh stream: after STARTTLS both sides restart. */
  upgrade(socket: Socket): void {
    this.secure = true;
    this.attach(socket);
    this.restart();
  }

  /** A fresh parser and header, for a stream restart. */
  restart(): void {
    this.headerSent = false;
    this.decoder = new StringDecoder('utf8');
    const parser = new this.Parser();
    // What follows in a chunk after the stream ended or restarted (STARTTLS, SASL) is not read.
    const current = () => this.parser === parser;
    parser.on('start', (element: xml.Element) => current() && this.onStart(element));
    parser.on('element', (element: xml.Element) => current() && this.onElement(element));
    parser.on('end', () => current() && this.close());
    parser.on('error', (error: Error) => current() && this.fail(conditionOf(error), error.message));
    this.parser = parser;
  }

  /** Sends our stream header. */
  open(attrs: Record<string, string | undefined>): void {
    const attributes = Object.entries({ ...attrs, version: '1.0' })
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => ` ${name}='${escapeAttribute(value!)}'`)
      .join('');
    this.write(`<?xml version='1.0'?><stream:stream xmlns='${NS_SERVER}' xmlns:stream='${NS_STREAM}' xmlns:db='${NS_DIALBACK}'${attributes}>`);
    this.headerSent = true;
  }

  send(element: OutboundStanza): void {
    if (this.ended) return;
    if (element.is('message') || element.is('presence') || element.is('iq')) this.lastStanza = Date.now();
    // A literal carriage return would reach the recipient as a line feed (XML 1.0 §2.11).
    this.write(element.toString().replace(/\r/g, '&#13;'));
  }

  write(text: string): void {
    if (this.ended || this.socket.destroyed) return;
    this.acknowledgement.written();
    this.socket.write(text);
  }

  /** Ends the stream with a stream error (RFC 6120 §4.9), sending a header first if none went out. */
  fail(condition: string, text?: string, headerAttrs: Record<string, string | undefined> = {}): void {
    if (this.ended) return;
    this.log.info({ condition, text, peer: this.socket.remoteAddress }, 's2s stream error sent');
    if (!this.headerSent) this.open(headerAttrs);
    const error = xml('stream:error', {}, xml(condition, { xmlns: NS_STREAM_ERRORS }), text ? xml('text', { xmlns: NS_STREAM_ERRORS }, text) : null);
    this.write(error.toString());
    this.close();
  }

  /** Closes the stream: our closing tag, then the socket once the peer closes or after a grace time. */
  close(): void {
    if (this.ended) return;
    if (this.headerSent) this.write('</stream:stream>');
    this.ended = true;
    this.parser = undefined;
    const socket = this.socket;
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
    this.stopTimers();
  }

  /** Drops the connection without a word. */
  destroy(): void {
    this.ended = true;
    this.parser = undefined;
    this.socket.destroy();
    this.stopTimers();
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    this.attached = true;
    // What we write goes at once: Nagle's algorithm would hold a stanza back until the peer
    // acknowledged the one before, which a peer that only reads this stream does late (delayed ACK).
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  private read(chunk: Buffer): void {
    // Before parsing: what the stanzas read make us write in this turn carries the acknowledgement.
    this.acknowledgement.read();
    // The guarded parser reports bad input (over a limit, forbidden, not well-formed) as an 'error'.
    this.parser?.write(this.decoder.write(chunk));
  }

  private onStart(header: xml.Element): void {
    const [prefix, local] = header.name.includes(':') ? header.name.split(':') : [undefined, header.name];
    const streamNs = prefix ? header.attrs[`xmlns:${prefix}`] : header.attrs.xmlns;
    if (local !== 'stream' || streamNs !== NS_STREAM) return this.fail('invalid-namespace', 'expected a stream:stream of http://etherx.jabber.org/streams');
    if (header.attrs.xmlns !== NS_SERVER) return this.fail('invalid-namespace', 'server-to-server streams are of jabber:server');
    this.emit('open', header.attrs);
  }

  private onElement(element: xml.Element): void {
    if (element.name === 'stream:error') {
      const condition = element.getChildElements().find((child) => child.attrs.xmlns === NS_STREAM_ERRORS && child.name !== 'text');
      this.log.info({ condition: condition?.name, text: element.getChildText('text', NS_STREAM_ERRORS) ?? undefined }, 's2s stream error received');
      this.close();
      return;
    }
    if (element.is('message') || element.is('presence') || element.is('iq')) this.lastStanza = Date.now();
    this.emit('element', element);
  }

  private closed(): void {
    const wasOpen = !this.ended;
    this.ended = true;
    this.parser = undefined;
    this.stopTimers();
    if (wasOpen) this.socket.destroy();
    this.emit('closed');
  }

  private stopTimers(): void {
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
  }
}
