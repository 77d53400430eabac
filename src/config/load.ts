import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';
import { knownKeysAt } from './reference.js';
import { configSchema, formatKey, type Config } from './schema.js';
import { closestMatch } from './suggest.js';

/** Values given on the command line; each replaces the file's. Empty lists replace nothing. */
export interface ConfigOverrides {
  listen?: string[];
  domains?: string[];
  database?: string;
  logLevel?: string;
  logFormat?: string;
  adminListen?: string;
}

type Mapping = Record<string, unknown>;

/**
 * Reads and validates the configuration file, or takes the defaults when there is no path.
 * Throws ConfigError listing every problem found.
 */
export function loadConfig(path: string | undefined, overrides: ConfigOverrides = {}): Config {
  const document = path === undefined ? {} : readDocument(path);
  const result = configSchema.safeParse(applyOverrides(document, overrides));
  if (!result.success) throw new ConfigError(result.error.issues.flatMap(toConfigIssues));
  return result.data;
}

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readDocument(path: string): Mapping {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([{ key: path, reason: `cannot read the file (${(error as NodeJS.ErrnoException).code})` }]);
  }
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return { key: `${path}:${line}:${col}`, reason: error.message };
      }),
    );
  }
  const content: unknown = document.toJS();
  if (content === null || content === undefined) return {};
  if (!isMapping(content)) throw new ConfigError([{ key: path, reason: 'expected a mapping of options at the top level' }]);
  return content;
}

function applyOverrides(document: Mapping, { listen, domains, database, logLevel, logFormat, adminListen }: ConfigOverrides): Mapping {
  const merged = { ...document };
  if (listen?.length) merged.listen = listen;
  if (domains?.length) merged.domains = domains;
  if (database !== undefined) merged.database = database;
  if (logLevel !== undefined) merged.log = { ...(isMapping(document.log) ? document.log : {}), level: logLevel };
  if (logFormat !== undefined) merged.log = { ...(isMapping(merged.log) ? merged.log : {}), format: logFormat };
  if (adminListen !== undefined) merged.admin = { ...(isMapping(document.admin) ? document.admin : {}), listen: adminListen };
  return merged;
}

function toConfigIssues(issue: ZodIssue): ConfigIssue[] {
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(issue.path);
    return issue.keys.map((key) => {
      const suggestion = closestMatch(key, known);
      return {
        key: formatKey([...issue.path, key]),
        reason: suggestion === undefined ? 'unknown key' : `unknown key (did you mean ${suggestion}?)`,
      };
    });
  }
  return [{ key: formatKey(issue.path), reason: describeIssue(issue) }];
}

// Zod's own messages are written for developers ("Expected number, received string"); these
// read as a configuration error should.
function describeIssue(issue: ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.received === 'undefined' ? 'required' : `expected ${issue.expected}, got ${issue.received}`;
    case 'invalid_enum_value':
      return `expected one of ${issue.options.join(', ')}, got ${JSON.stringify(issue.received)}`;
    case 'too_small':
      if (issue.type === 'number') return `must be ${issue.inclusive ? 'at least' : 'greater than'} ${issue.minimum}`;
      if (issue.minimum === 1) return 'must not be empty';
      return `must have at least ${issue.minimum} ${issue.type === 'string' ? 'characters' : 'entries'}`;
    case 'too_big':
      if (issue.type === 'number') return `must be ${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}`;
      return issue.message;
    default:
      return issue.message;
  }
}
