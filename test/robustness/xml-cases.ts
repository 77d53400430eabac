// Hostile XML for the XMPP fuzzer (xml-fuzz.test.ts): what a rogue peer sends on an XMPP stream
// Parley reads (an incoming s2s stream, the component link, a per-user client session), each case
// with the stream error Parley must end the stream with. Named cases cover the issue's list (bad
// XML, 10,000-deep nesting, a 10 MB text node, 100,000 attributes, forbidden XML, entities);
// seeded mutations of valid stanzas add the unforeseen. Case i of seed s is always the same text.
import { Rng, inputSeed } from './mutate.js';

export interface XmlCase {
  name: string;
  /** What the peer writes, in order (large ones lazily: the 10 MB case is never built whole). */
  chunks: () => Iterable<string>;
  /** Stream error conditions Parley may answer with; empty: it may also take the input (a mutation can stay valid). */
  expect: readonly string[];
}

export interface Addressing {
  /** A sender the peer may not speak for, and a recipient at Parley. */
  from: string;
  to: string;
}

const MB = 1024 * 1024;

/** `total` characters of text, in chunks of 64 KiB. */
function* bigText(total: number): Iterable<string> {
  const chunk = 'x'.repeat(64 * 1024);
  for (let sent = 0; sent < total; sent += chunk.length) yield chunk;
}

/** Cases for an open stream, whatever its kind: each one written after the stream header. */
export function streamCases({ from, to }: Addressing): XmlCase[] {
  const message = `<message from='${from}' to='${to}' type='chat'>`;
  const once = (...chunks: string[]) => () => chunks;
  return [
    { name: 'mismatched end tag', chunks: once(`${message}<body>broken</message>`), expect: ['not-well-formed'] },
    { name: 'unquoted attribute', chunks: once(`<message from=${from}><body>x</body></message>`), expect: ['not-well-formed'] },
    { name: "'&' that starts no reference", chunks: once(`${message}<body>fish & chips</body></message>`), expect: ['not-well-formed'] },
    { name: 'an illegal character reference', chunks: once(`${message}<body>&#0;</body></message>`), expect: ['not-well-formed'] },
    { name: '10,000-deep nesting', chunks: once(message, '<a>'.repeat(10_000)), expect: ['policy-violation'] },
    { name: '10 MB text node', chunks: () => [`${message}<body>`, ...bigText(10 * MB)], expect: ['policy-violation'] },
    {
      name: '100,000 attributes',
      chunks: () => [`<message from='${from}' to='${to}'`, ...Array.from({ length: 100 }, (_, block) => Array.from({ length: 1000 }, (_, i) => ` a${block * 1000 + i}='v'`).join('')), '/>'],
      expect: ['policy-violation'],
    },
    { name: 'a comment', chunks: once(`<!-- hello -->${message}<body>x</body></message>`), expect: ['restricted-xml'] },
    { name: 'a processing instruction', chunks: once(`<?php echo 1; ?>${message}<body>x</body></message>`), expect: ['restricted-xml'] },
    {
      name: 'an entity expansion bomb (DTD)',
      chunks: once(`<!DOCTYPE lolz [<!ENTITY lol "lol">${Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('')}]>`, `${message}<body>&lol9;</body></message>`),
      expect: ['restricted-xml'],
    },
    { name: 'an external entity reference', chunks: once(`${message}<body>&xxe;</body></message>`), expect: ['restricted-xml'] },
  ];
}

const VALID_STANZAS = (a: Addressing) => [
  `<message from='${a.from}' to='${a.to}' type='chat' id='m1'><body>Hello &amp; welcome &#x263A;</body><thread>t1</thread></message>`,
  `<presence from='${a.from}' to='${a.to}'><show>away</show><status>out</status><priority>1</priority></presence>`,
  `<iq from='${a.from}' to='${a.to}' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>`,
  `<message from='${a.from}' to='${a.to}'><body><![CDATA[<not markup>]]></body><x xmlns='jabber:x:data' type='form'><field var='a'><value>1</value></field></x></message>`,
];

const NASTY = ['<', '>', '&', "'", '"', '/', '=', '!', '?', '<!--', '<?x', ']]>', '<![CDATA[', '&lol;', '&#xD800;', '\u0000', '\uFFFF', 'xmlns=\'urn:x\'', '</stream:stream>', '<stream:stream>', ' a=\'1\' a=\'2\''];

/** Mutation `index` of seed `seed`: a valid stanza with a few insertions, deletions or truncations. */
export function mutatedCase(seed: number, index: number, addressing: Addressing): XmlCase {
  const rng = new Rng(inputSeed(seed, index));
  let text = rng.pick(VALID_STANZAS(addressing));
  const steps: string[] = [];
  for (let n = rng.range(1, 3); n > 0; n--) {
    const at = rng.int(text.length + 1);
    const kind = rng.int(4);
    if (kind === 0) {
      const piece = rng.pick(NASTY);
      text = text.slice(0, at) + piece + text.slice(at);
      steps.push(`insert ${JSON.stringify(piece)} at ${at}`);
    } else if (kind === 1) {
      const length = rng.range(1, 8);
      text = text.slice(0, at) + text.slice(at + length);
      steps.push(`delete ${length} at ${at}`);
    } else if (kind === 2) {
      text = text.slice(0, at);
      steps.push(`truncate at ${at}`);
    } else {
      const depth = rng.range(1, 200);
      text = text.slice(0, at) + '<n>'.repeat(depth) + text.slice(at);
      steps.push(`nest ${depth} at ${at}`);
    }
  }
  // The stream ends after the mutant: a truncated one cannot wait for more.
  return { name: `mutation ${index} (${steps.join(', ')})`, chunks: () => [text, '</stream:stream>'], expect: [] };
}
