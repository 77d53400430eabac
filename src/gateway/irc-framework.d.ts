// Types for the part of irc-framework 4.14 the gateway's IRC sessions (and the tests) use; the package ships none.
declare module 'irc-framework' {
  import type { EventEmitter } from 'node:events';

  export interface ConnectOptions {
    host: string;
    port: number;
    nick: string;
    username?: string;
    gecos?: string;
    /** Server password (PASS), also tried as SASL PLAIN for the nick when the server offers SASL. */
    password?: string;
    tls?: boolean;
    rejectUnauthorized?: boolean;
    encoding?: string;
    version?: string | false;
    auto_reconnect?: boolean;
    /** The transport class (default: the library's TCP/TLS one). */
    transport?: unknown;
    ping_interval?: number;
    ping_timeout?: number;
  }

  /** A line as the server sent it (numerics keep their number as command). */
  export interface IrcMessage {
    command: string;
    params: string[];
    nick: string;
  }

  /** privmsg, notice and action events. */
  export interface MessageEvent {
    nick: string;
    target: string;
    message: string;
    from_server: boolean;
  }

  export interface ChannelEvent {
    nick: string;
    channel: string;
    message?: string;
    /** kick: who was kicked. */
    kicked?: string;
  }

  export class Client extends EventEmitter {
    constructor(options?: Partial<ConnectOptions>);
    readonly connected: boolean;
    readonly user: { nick: string };
    readonly network: { isChannelName(name: string): boolean; supports(token: string): string | boolean | undefined };
    readonly connection: EventEmitter & { end(data?: string, hadError?: boolean): void };
    connect(options: ConnectOptions): void;
    /** Writes one line as it is (no splitting, no escaping). */
    raw(line: string): void;
    say(target: string, message: string): void;
    action(target: string, message: string): void;
    join(channel: string, key?: string): void;
    part(channel: string, message?: string): void;
    quit(message?: string): void;
    caseCompare(a: string, b: string): boolean;
    caseLower(text: string): string;
  }
}
