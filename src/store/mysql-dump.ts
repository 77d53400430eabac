// Rows out of a MySQL dump, as mysqldump writes it (INSERT INTO `t` VALUES (...),(...); with
// backslash escapes in quoted strings), so that a Kamailio database on MySQL can be imported
// without a MySQL server or driver: only INSERT statements into the table asked for are read,
// everything else (DDL, LOCK TABLES, /*!...*/ conditional comments) is skipped.
import type { KamailioAccountRow } from './types.js';

export type SqlValue = string | number | null;

/** Kamailio purple's purplemap columns, in the order of its CREATE TABLE (for INSERTs without a column list). */
const PURPLEMAP_COLUMNS = ['id', 'sip_user', 'ext_user', 'ext_prot', 'ext_pass'];

/** The dump cannot be read; the message says where (line) and why. */
export class DumpError extends Error {
  override name = 'DumpError';
}

/** Escapes of MySQL string literals; any other backslashed character stands for itself. */
const ESCAPES: Readonly<Record<string, string>> = { '0': '\0', b: '\b', n: '\n', r: '\r', t: '\t', Z: '\x1a' };

class Scanner {
  private pos = 0;

  constructor(private readonly text: string) {}

  get done(): boolean {
    this.skipSpace();
    return this.pos >= this.text.length;
  }

  fail(expected: string): never {
    const line = this.text.slice(0, this.pos).split('\n').length;
    const found = this.text.slice(this.pos, this.pos + 20).split('\n')[0];
    throw new DumpError(`line ${line}: expected ${expected}, found ${found === '' ? 'the end' : `"${found}"`}`);
  }

  /** Skips blanks and comments: -- and # to the end of the line, and /* ... *\/ (conditional ones too). */
  skipSpace(): void {
    const text = this.text;
    for (;;) {
      while (this.pos < text.length && /\s/.test(text[this.pos]!)) this.pos++;
      if (text.startsWith('/*', this.pos)) {
        const end = text.indexOf('*/', this.pos + 2);
        this.pos = end < 0 ? text.length : end + 2;
      } else if (text[this.pos] === '#' || /^--(\s|$)/.test(text.slice(this.pos, this.pos + 3))) {
        const end = text.indexOf('\n', this.pos);
        this.pos = end < 0 ? text.length : end + 1;
      } else return;
    }
  }

  /** Consumes `word` (case-insensitive, whole word) when it comes next. */
  word(word: string): boolean {
    this.skipSpace();
    const next = this.text.slice(this.pos, this.pos + word.length);
    if (next.toUpperCase() !== word || /\w/.test(this.text[this.pos + word.length] ?? '')) return false;
    this.pos += word.length;
    return true;
  }

  punctuation(char: string): boolean {
    this.skipSpace();
    if (this.text[this.pos] !== char) return false;
    this.pos++;
    return true;
  }

  expect(char: string): void {
    if (!this.punctuation(char)) this.fail(`"${char}"`);
  }

  /** A bare or `quoted` identifier; of db.table, the table. */
  identifier(): string {
    let name = this.identifierPart();
    while (this.punctuation('.')) name = this.identifierPart();
    return name;
  }

  private identifierPart(): string {
    this.skipSpace();
    if (this.text[this.pos] === '`') return this.quoted('`', false);
    const match = /^[\w$]+/.exec(this.text.slice(this.pos, this.pos + 256));
    if (!match) this.fail('a table or column name');
    this.pos += match[0].length;
    return match[0];
  }

  /** A quoted string from its opening quote; a doubled quote stands for one, and with `escapes`, backslash escapes apply. */
  private quoted(quote: string, escapes: boolean): string {
    const text = this.text;
    let value = '';
    let i = this.pos + 1;
    for (;;) {
      const char = text[i];
      if (char === undefined) this.fail(`the closing ${quote}`);
      if (char === quote) {
        if (text[i + 1] !== quote) break;
        value += quote;
        i += 2;
      } else if (char === '\\' && escapes && i + 1 < text.length) {
        const escaped = text[i + 1]!;
        value += ESCAPES[escaped] ?? escaped;
        i += 2;
      } else {
        value += char;
        i++;
      }
    }
    this.pos = i + 1;
    return value;
  }

  /** NULL, a number, a 'string' or "string" (with an optional _charset introducer), or 0x hex (read as UTF-8). */
  value(): SqlValue {
    this.skipSpace();
    if (this.word('NULL')) return null;
    const rest = this.text.slice(this.pos, this.pos + 64);
    const introducer = /^_\w+\s*(?=['"])/.exec(rest);
    if (introducer) this.pos += introducer[0].length;
    const quote = this.text[this.pos];
    if (quote === "'" || quote === '"') return this.quoted(quote, true);
    const hex = /^0x([0-9a-f]*)/i.exec(rest);
    if (hex && hex[1]!.length % 2 === 0) {
      this.pos += hex[0].length;
      return Buffer.from(hex[1]!, 'hex').toString('utf8');
    }
    const number = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?/i.exec(rest);
    if (!number) this.fail('a value (NULL, a number or a quoted string)');
    this.pos += number[0].length;
    return Number(number[0]);
  }

  /** Moves past the end of the current statement (its ";", outside quotes and comments). */
  skipStatement(): void {
    const text = this.text;
    while (this.pos < text.length) {
      this.skipSpace();
      const char = text[this.pos];
      if (char === undefined) return;
      if (char === ';') {
        this.pos++;
        return;
      }
      if (char === "'" || char === '"' || char === '`') this.quoted(char, char !== '`');
      else this.pos++;
    }
  }
}

/** Consumes "INSERT [IGNORE] INTO" or "REPLACE INTO" when the statement starts so. */
function startsInsert(scanner: Scanner): boolean {
  if (!scanner.word('INSERT') && !scanner.word('REPLACE')) return false;
  scanner.word('IGNORE');
  return scanner.word('INTO');
}

/** The rows the dump's INSERT (or REPLACE) statements put into `table`, as column -> value; INSERTs without column names take `columns` in order. */
export function insertedRows(sql: string, table: string, columns: readonly string[]): Array<Map<string, SqlValue>> {
  const scanner = new Scanner(sql);
  const rows: Array<Map<string, SqlValue>> = [];
  while (!scanner.done) {
    if (!startsInsert(scanner) || scanner.identifier() !== table) {
      scanner.skipStatement();
      continue;
    }
    let names = columns;
    if (scanner.punctuation('(')) {
      const listed = [scanner.identifier()];
      while (scanner.punctuation(',')) listed.push(scanner.identifier());
      scanner.expect(')');
      names = listed;
    }
    if (!scanner.word('VALUES') && !scanner.word('VALUE')) scanner.fail('VALUES');
    do {
      scanner.expect('(');
      const values = [scanner.value()];
      while (scanner.punctuation(',')) values.push(scanner.value());
      scanner.expect(')');
      if (values.length > names.length) scanner.fail(`at most ${names.length} values in a row of ${table}`);
      rows.push(new Map(values.map((value, i) => [names[i]!, value])));
    } while (scanner.punctuation(','));
    // ON DUPLICATE KEY UPDATE ... and the closing ";".
    scanner.skipStatement();
  }
  return rows;
}

/** The accounts a mysqldump of Kamailio purple's table inserts; throws DumpError for a row without its required columns. */
export function readPurplemapDump(sql: string, table: string): KamailioAccountRow[] {
  return insertedRows(sql, table, PURPLEMAP_COLUMNS).map((row, i) => {
    const text = (column: string): string => {
      const value = row.get(column);
      if (value === undefined || value === null) throw new DumpError(`row ${i + 1} of ${table} has no ${column}`);
      return String(value);
    };
    const password = row.get('ext_pass');
    return {
      id: Number(row.get('id') ?? i + 1),
      sipUser: text('sip_user'),
      extUser: text('ext_user'),
      extProt: text('ext_prot'),
      extPass: password === null || password === undefined ? undefined : String(password),
    };
  });
}
