// Types for the part of @xmpp/client 0.14 the gateway's XMPP sessions use; the package ships none.
// Declarations of the same module merge (test/support/xmpp-client.d.ts declares what the tests use):
// members repeated here have the same types.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';
  import type xml from '@xmpp/xml';

  export interface Client extends EventEmitter {
    readonly status: string;
    /** The bound JID once online. */
    readonly jid: { toString(): string } | null;
    readonly reconnect: { stop(): void };
    readonly options: { service: string; domain: string };
    /** The connection methods (TCP, TLS, WebSocket), each with the socket class it connects with. */
    transports: Array<{ prototype: { Socket: unknown; socketParameters(service: string): unknown } }>;
    /** The parser of the open stream; null between streams. */
    readonly parser: object | null;
    /**
     * The connection: a net.Socket over TCP; over direct TLS @xmpp/tls's wrapper, which has no
     * destroy() and holds the TLS socket in `socket` (null once closed).
     */
    readonly socket: import('node:net').Socket | TlsSocketWrapper | null;
    start(): Promise<unknown>;
    connect(service: string): Promise<unknown>;
    open(options: { domain: string }): Promise<unknown>;
    stop(): Promise<unknown>;
    send(element: xml.Element): Promise<void>;
    /** True once the connection is encrypted (direct TLS, or STARTTLS negotiated). */
    isSecure(): boolean;
  }

  export interface TlsSocketWrapper extends EventEmitter {
    readonly socket: import('node:tls').TLSSocket | null;
  }

  export type SaslAuthenticate = (credentials: { username: string; password: string }, mechanism: string) => Promise<void>;

  export function client(options: {
    service: string;
    domain: string;
    resource?: string;
    /** Milliseconds the library waits for each step (stream open, close); 2000 by default. */
    timeout?: number;
    credentials: (authenticate: SaslAuthenticate, mechanisms: string[], fast: unknown, entity: Client) => Promise<void>;
  }): Client;
}
