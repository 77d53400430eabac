// Types for the parts of xmpp.js 0.13 (@xmpp/xml, @xmpp/component) the gateway uses; the packages
// ship none. The internals the link changes are typed where it changes them (xml-guard.ts).

declare module '@xmpp/xml' {
  namespace xml {
    class Element {
      name: string;
      attrs: Record<string, string | undefined>;
      is(name: string, xmlns?: string): boolean;
      getChild(name: string, xmlns?: string): Element | undefined;
      getChildren(name: string, xmlns?: string): Element[];
      getChildElements(): Element[];
      getChildText(name: string, xmlns?: string): string | null;
      text(): string;
      toString(): string;
    }
    class XMLError extends Error {}
    type Child = Element | string | null | undefined | false;
  }
  function xml(name: string, attrs?: Record<string, string | undefined> | null, ...children: xml.Child[]): xml.Element;
  export = xml;
}

declare module '@xmpp/component' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';

  /** An XMPP error (stream or stanza) as @xmpp/error builds it from the element. */
  export interface XmppError extends Error {
    condition: string;
    text?: string;
  }

  export interface Component extends EventEmitter {
    readonly socket: Socket | null;
    readonly reconnect: { stop(): void };
    connect(service: string): Promise<void>;
    open(options: { domain: string }): Promise<unknown>;
    stop(): Promise<unknown>;
    write(data: string): Promise<void>;
  }

  export function component(options: { service: string; domain: string; password: string }): Component;
}
