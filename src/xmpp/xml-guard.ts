// What Parley accepts of the XML an XMPP peer sends (s2s streams, the component link, the per-user
// client sessions), checked on the text before the parser sees it. ltx (under @xmpp/xml) keeps an
// unfinished element whole in memory and builds trees of any depth, and it silently skips
// comments, processing instructions and DTDs, which XMPP forbids (RFC 6120 §11.1). Here a stanza
// larger than maxStanzaBytes or nested deeper than maxDepth ends the stream with
// <policy-violation/>, forbidden XML with <restricted-xml/> (an entity is never expanded: only the
// five predefined ones and character references pass), before any of it is buffered.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { StringDecoder } from 'node:string_decoder';
import xml from '@xmpp/xml';

export interface XmlLimits {
  /** Largest stanza (or stream header), in UTF-8 bytes. */
  maxStanzaBytes: number;
  /** Deepest element nesting, the stream element counting as 1 and a stanza as 2. */
  maxDepth: number;
}

/** Bad input from the peer, with the stream error it deserves (RFC 6120 §4.9.3). */
export class XmlViolation extends xml.XMLError {
  constructor(
    readonly condition: string,
    readonly text: string,
  ) {
    super(text);
  }
}

/** The stream error condition for what the parser reported. */
export function conditionOf(error: Error): string {
  return error instanceof XmlViolation ? error.condition : 'not-well-formed';
}

const enum State {
  Text,
  StartTag,
  AttributeValue,
  EndTag,
  Cdata,
  Declaration,
}

const CDATA_OPEN = '<![CDATA[';
const PREDEFINED_ENTITIES = new Set(['amp', 'lt', 'gt', 'quot', 'apos']);
/** An entity or character reference at lastIndex; group 2 is the closing ';' when it came. */
const REFERENCE = /&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[A-Za-z_:][\w.:-]{0,63})?(;)?/y;
const LONGEST_REFERENCE = 66;

/** Scans a stream's text as it comes; throws an XmlViolation at the first thing over a limit or forbidden. */
export class XmlGuard {
  private state = State.Text;
  private depth = 0;
  private bytes = 0;
  private quote = 0;
  /** In a start tag, after an '=': the next character that is not whitespace must be a quote. */
  private awaitingValue = false;
  /** The last two characters scanned, for the ends of tags, CDATA sections and the declaration. */
  private previous = 0;
  private beforePrevious = 0;
  private headerSeen = false;
  /** The end of the previous chunk, when it was too short to decide on (a '<!' or '&...'); scanned again. */
  private carry = '';

  constructor(private readonly limits: XmlLimits) {}

  scan(chunk: string): void {
    const data = this.carry + chunk;
    this.carry = '';
    for (let i = 0; i < data.length; i++) {
      const c = data.charCodeAt(i);
      const state = this.state;
      if ((state === State.Text && (c === 0x3c /* < */ || c === 0x26)) || (state === State.AttributeValue && c === 0x26 /* & */)) {
        const length = c === 0x26 ? this.reference(data, i) : this.markup(data, i);
        if (length < 0) return void (this.carry = data.slice(i));
        this.count(data, i, i + length);
        i += length - 1;
        continue;
      }
      this.count(data, i, i + 1);
      if (state === State.StartTag) {
        if (c === 0x27 || c === 0x22) {
          this.quote = c;
          this.state = State.AttributeValue;
          this.awaitingValue = false;
        } else if (c === 0x3d /* = */) {
          this.awaitingValue = true;
        } else if (c === 0x3c) {
          throw new XmlViolation('not-well-formed', "'<' inside a tag");
        } else if (this.awaitingValue && c > 0x20) {
          // ltx would read on to the next quote, however far: the peer could hold a stanza open with one '='.
          throw new XmlViolation('not-well-formed', 'an attribute value without quotes');
        } else if (c === 0x3e /* > */) {
          this.state = State.Text;
          if (this.previous === 0x2f /* / */) this.elementEnded();
          else this.elementOpened();
        }
      } else if (state === State.AttributeValue) {
        if (c === this.quote) this.state = State.StartTag;
        else if (c === 0x3c) throw new XmlViolation('not-well-formed', "'<' in an attribute value");
      } else if (state === State.EndTag) {
        if (c === 0x3c) throw new XmlViolation('not-well-formed', "'<' inside a tag");
        if (c === 0x3e) {
          this.state = State.Text;
          this.depth--;
          this.elementEnded();
        }
      } else if (state === State.Cdata) {
        if (c === 0x3e && this.previous === 0x5d /* ] */ && this.beforePrevious === 0x5d) this.state = State.Text;
      } else if (state === State.Declaration) {
        if (c === 0x3e && this.previous === 0x3f /* ? */) this.state = State.Text;
      }
      this.beforePrevious = this.previous;
      this.previous = c;
    }
  }

  /** At a '<' in text: how many characters the markup's opening takes (-1: too few to tell yet). */
  private markup(data: string, at: number): number {
    const next = data.charCodeAt(at + 1);
    if (Number.isNaN(next)) return -1;
    if (next === 0x2f /* / */) {
      this.state = State.EndTag;
      return 2;
    }
    if (next === 0x21 /* ! */) {
      const opening = data.slice(at, at + CDATA_OPEN.length);
      if (opening === CDATA_OPEN && this.depth > 1) {
        this.state = State.Cdata;
        this.previous = this.beforePrevious = 0;
        return CDATA_OPEN.length;
      }
      if (opening.length < CDATA_OPEN.length && CDATA_OPEN.startsWith(opening)) return -1;
      throw new XmlViolation('restricted-xml', 'comments, DTDs and entity declarations are not allowed in XMPP');
    }
    if (next === 0x3f /* ? */) {
      // Only the XML declaration, and only before the stream header.
      const declaration = data.slice(at, at + 6);
      if (declaration.length < 6) return -1;
      if (this.headerSeen || this.depth > 0 || !/^<\?xml\s$/.test(declaration)) throw new XmlViolation('restricted-xml', 'processing instructions are not allowed in XMPP');
      this.state = State.Declaration;
      this.previous = this.beforePrevious = 0;
      return 6;
    }
    this.state = State.StartTag;
    this.previous = 0;
    return 1;
  }

  /** At an '&': how many characters the reference takes (-1: too few to tell yet). */
  private reference(data: string, at: number): number {
    REFERENCE.lastIndex = at;
    const match = REFERENCE.exec(data)!;
    const [text, name, semicolon] = match;
    if (!semicolon) {
      if (at + text.length === data.length && text.length < LONGEST_REFERENCE) return -1;
      throw new XmlViolation('not-well-formed', "'&' that starts no reference");
    }
    if (name === undefined) throw new XmlViolation('not-well-formed', "'&' that starts no reference");
    if (name.startsWith('#') || PREDEFINED_ENTITIES.has(name)) return text.length;
    throw new XmlViolation('restricted-xml', `the entity &${name}; is not allowed in XMPP (only the predefined ones)`);
  }

  private elementOpened(): void {
    this.depth++;
    if (this.depth > this.limits.maxDepth) throw new XmlViolation('policy-violation', `elements may be nested at most ${this.limits.maxDepth} deep`);
    if (this.depth === 1) {
      // The stream header: each stanza is counted from here on.
      this.headerSeen = true;
      this.bytes = 0;
    }
  }

  /** After an end tag or a self-closing one: a stanza is complete when the stream element is the one open. */
  private elementEnded(): void {
    if (this.depth <= 1) this.bytes = 0;
  }

  /** Counts the UTF-8 bytes of data[from, to) to the current stanza. */
  private count(data: string, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const c = data.charCodeAt(i);
      this.bytes += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c < 0xe000) ? 2 : 3;
    }
    if (this.bytes > this.limits.maxStanzaBytes) throw new XmlViolation('policy-violation', `stanzas are limited to ${this.limits.maxStanzaBytes} bytes`);
  }
}

/** @xmpp/xml's streaming parser: 'start' (the stream header), 'element' (each stanza), 'end', 'error'. */
export interface StreamParser extends EventEmitter {
  write(data: string): void;
}

const Parser = createRequire(import.meta.url)('@xmpp/xml/lib/Parser.js') as new () => StreamParser;

/**
 * A parser class (for `new`, as @xmpp/connection makes one per stream) that checks its input
 * against `limits` first, and reports any bad input, its own or the parser's (ltx throws on some),
 * once: as an 'error' event, or to `report` when given. After that it reads and emits nothing more.
 */
export function guardedParser(limits: XmlLimits, report?: (error: Error, parser: StreamParser) => void): new () => StreamParser {
  return class GuardedParser extends Parser {
    private readonly guard = new XmlGuard(limits);
    private failed = false;

    override write(data: string): void {
      if (this.failed) return;
      try {
        this.guard.scan(data);
        super.write(data);
      } catch (error) {
        this.emit('error', error instanceof xml.XMLError ? error : new xml.XMLError((error as Error).message));
      }
    }

    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (this.failed) return false;
      if (event === 'error') {
        this.failed = true;
        if (report) report(args[0] as Error, this);
        if (report || this.listenerCount('error') === 0) return Boolean(report);
      }
      return super.emit(event, ...args);
    }
  };
}

/** The parts of an @xmpp/connection entity (a component or a client) the guard takes over. */
interface Connection extends EventEmitter {
  readonly status: string;
  readonly parser: StreamParser | object | null;
  Parser: new () => StreamParser;
  _onData(data: string | Buffer): void;
  _onElement(element: xml.Element): void;
  _streamError(condition: string): Promise<unknown>;
  _detachParser(): void;
}

/**
 * Makes an @xmpp/connection entity (whose server may be hostile) read through guardedParser, and
 * fixes what the library does with bad input: it decodes each TCP chunk on its own (garbling a
 * character split between two), lets parser exceptions escape the socket's 'data' handler, feeds
 * data arriving after it dropped its parser to no parser (xmpp.js #860), answers every parse
 * error with <bad-format/> instead of the specific condition, and hands on messages and presence
 * the server sends before the stream is authenticated. Each of these now ends the stream with its
 * stream error and an 'error' event carrying an XmlViolation (the owner reconnects).
 */
export function guardConnection(entity: object, limits: XmlLimits): void {
  const connection = entity as Connection;
  // The library's own handler (private in 0.14) would answer every parse error with <bad-format/>.
  const violated = (error: Error, parser: object | null) => {
    if (parser === null || connection.parser !== parser) return;
    connection._detachParser();
    // The stream error is a courtesy to the peer: the connection ends either way.
    connection._streamError(conditionOf(error)).catch(() => {});
    connection.emit('error', error);
  };
  const Parser = guardedParser(limits, violated);
  // A client sets its transport's parser at each connect: for TCP and TLS, the only transports
  // Parley's sessions use, that is @xmpp/xml's, which this one is.
  Object.defineProperty(connection, 'Parser', { get: () => Parser, set: () => {}, configurable: true });
  let decoder = new StringDecoder('utf8');
  connection.on('connect', () => (decoder = new StringDecoder('utf8')));
  connection._onData = (data) => {
    const parser = connection.parser as StreamParser | null;
    if (parser) parser.write(typeof data === 'string' ? data : decoder.write(data));
  };
  const onElement = connection._onElement.bind(connection);
  connection._onElement = (element) => {
    // Resource binding (an iq) comes before 'online'; messages and presence have no business there.
    if (connection.status !== 'online' && (element.name === 'message' || element.name === 'presence')) {
      return violated(new XmlViolation('not-authorized', `<${element.name}/> before the stream was authenticated`), connection.parser);
    }
    onElement(element);
  };
}
