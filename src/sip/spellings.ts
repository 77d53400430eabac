// Recognising a few known words where they stand in a message's text (header names, parameter
// names, methods), without cutting them out: the parser meets the same handful in every message.

/** A word to recognise, the code of its first character, and what it stands for. */
interface Spelling<T> {
  spelling: string;
  first: number;
  value: T;
}

/** Words to recognise, by their length: see spelledAt. */
export type Spellings<T> = readonly (readonly Spelling<T>[] | undefined)[];

/** The table of `words`, each standing for its value. */
export function spellings<T>(words: Iterable<readonly [spelling: string, value: T]>): Spellings<T> {
  const table: Spelling<T>[][] = [];
  for (const [spelling, value] of words) (table[spelling.length] ??= []).push({ spelling, first: spelling.charCodeAt(0), value });
  return table;
}

/** The table of `words`, each standing for itself, as that very literal (see spelledAt). */
export function literals(words: Iterable<string>): Spellings<string> {
  return spellings(Array.from(words, (word) => [word, word] as const));
}

/**
 * What the word of `table` that `text` holds from `start` to `end` stands for; undefined for any
 * other text. A literal got this way is compared and looked up by identity, where a string cut out
 * of the text would be hashed and compared character by character. Only a word of the length, whose
 * first character matches, is compared, a character at a time: a few times faster for words this
 * short than startsWith's call.
 */
export function spelledAt<T>(table: Spellings<T>, text: string, start: number, end: number): T | undefined {
  const candidates = table[end - start];
  if (candidates === undefined) return undefined;
  const first = text.charCodeAt(start);
  for (let i = 0; i < candidates.length; i++) {
    const { spelling, first: expected, value } = candidates[i]!;
    if (expected === first && sameFrom(text, start, spelling)) return value;
  }
  return undefined;
}

/** Whether `text` holds `spelling` from `start` on, its first character known to match and all of it within `text`. */
function sameFrom(text: string, start: number, spelling: string): boolean {
  for (let i = 1; i < spelling.length; i++) if (text.charCodeAt(start + i) !== spelling.charCodeAt(i)) return false;
  return true;
}
