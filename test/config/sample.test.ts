// The sample parley.yaml is the operator's map of every option: it must name each one the schema
// has (live, or commented out as `# key: default`), no other, each at its default but where the
// sample says why it differs, and it must still run Parley as it is.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { configOptions, defaultConfig, loadConfig } from '../../src/config/index.js';

const SAMPLE = new URL('../../parley.yaml', import.meta.url);
/** A commented-out option: `# key: value`, `# - key: value` (a list item) or `#   key: value` under one. */
const COMMENTED_OPTION = /^(\s*)# ((?:- |\s*)[a-z][a-z0-9_]*:(?:\s|$))/gm;

/** Every option of a YAML document, keyed as configOptions() names them, with its value; `{}` is the value of a map option. */
function optionsIn(document: unknown, prefix = ''): Map<string, unknown> {
  const found = new Map<string, unknown>();
  for (const [name, value] of Object.entries(document as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0) {
      for (const [inner, innerValue] of optionsIn(value, key)) found.set(inner, innerValue);
      continue;
    }
    found.set(key, value);
    if (Array.isArray(value)) {
      for (const item of value.filter((entry) => typeof entry === 'object' && entry !== null)) {
        for (const inner of optionsIn(item, `${key}[]`).keys()) found.set(inner, undefined);
      }
    }
  }
  return found;
}

const text = readFileSync(SAMPLE, 'utf8');
const live = optionsIn(parse(text));
const all = optionsIn(parse(text.replace(COMMENTED_OPTION, '$1$2')));
const schemaOptions = configOptions();

test('parley.yaml names every option of the schema, and no other', () => {
  const schemaKeys = schemaOptions.map((option) => option.key);
  assert.deepEqual(schemaKeys.filter((key) => !all.has(key)), [], 'missing from parley.yaml');
  assert.deepEqual([...all.keys()].filter((key) => !schemaKeys.includes(key)), [], 'in parley.yaml but not in the schema');
});

test('parley.yaml runs on the defaults but for auth.policy open, the loopback demo', () => {
  const defaults = defaultConfig();
  assert.deepEqual(loadConfig(SAMPLE.pathname), { ...defaults, auth: { ...defaults.auth, policy: 'open' } });
  assert.match(text, /policy: open +# not the default/);
});

test('options commented out in parley.yaml show their default', () => {
  const commentedOut = schemaOptions.filter((option) => option.default && !live.has(option.key) && all.has(option.key));
  for (const option of commentedOut) assert.deepEqual(all.get(option.key), option.default!.value, option.key);
});
