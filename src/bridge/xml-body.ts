// The XML documents SIP carries in MESSAGE bodies (isComposing, IMDN), read and written alike.
import type xml from '@xmpp/xml';
import { parse, type Element } from 'ltx';

/** The root of an XML body when it is the element `name` in `ns`; undefined when the body is not XML, or another document. */
export function documentRoot(body: string, name: string, ns: string): Element | undefined {
  let root: Element;
  try {
    root = parse(body);
  } catch {
    return undefined;
  }
  return root.is(name, ns) ? root : undefined;
}

/** An XML body: the declaration, then the document. */
export function xmlBody(document: xml.Element): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${document.toString()}`;
}
