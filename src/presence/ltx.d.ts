// Types for the part of ltx (which ships none) that Parley uses. ltx is an ES module with named
// exports only: `import { parse, Element } from 'ltx'`, not a default import.
declare module 'ltx' {
  export type Node = Element | string;

  export class Element {
    constructor(name: string, attrs?: Record<string, string>);
    name: string;
    attrs: Record<string, string>;
    children: Node[];
    /** The name without its namespace prefix. */
    getName(): string;
    /** The namespace of the element, inherited from its ancestors. */
    getNS(): string | undefined;
    is(name: string, xmlns?: string): boolean;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildrenByFilter(filter: (child: Node) => boolean, recursive?: boolean): Node[];
    /** The text directly inside the element, unescaped. */
    getText(): string;
    /** Adds a child element and returns it. */
    c(name: string, attrs?: Record<string, string>): Element;
    /** Adds text and returns the element itself. */
    t(text: string): this;
    up(): Element;
    toString(): string;
  }

  /** Parses one XML document; throws when it is incomplete or not XML. */
  export function parse(data: string): Element;
}
