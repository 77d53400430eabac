// Types for the part of @xmpp/client 0.14 the tests use; the package ships none.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';
  import type xml from '@xmpp/xml';

  export interface Client extends EventEmitter {
    readonly status: string;
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    send(element: xml.Element): Promise<void>;
    /** Feeds what the socket read to the XML parser. */
    _onData(data: Buffer | string): void;
  }

  export type Authenticate = (credentials: { username: string; password: string }, mechanism: string) => Promise<void>;

  export function client(options: {
    service: string;
    domain: string;
    resource?: string;
    credentials: (authenticate: Authenticate, mechanisms: string[]) => Promise<void>;
  }): Client;
}

// What the tests use of @xmpp/component beyond src/xmpp/xmpp-js.d.ts: a component as a plain entity (a transport).
declare module '@xmpp/component' {
  import type xml from '@xmpp/xml';

  export interface Component {
    start(): Promise<unknown>;
    send(element: xml.Element): Promise<void>;
  }
}
