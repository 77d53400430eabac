import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { configOptions, renderConfigReference } from '../../src/config/index.js';

const DOC = new URL('../../docs/configuration.md', import.meta.url);
const GENERATED = /(<!-- options:begin -->\n)[\s\S]*?(<!-- options:end -->)/;

test('every option is described in the schema', () => {
  const undocumented = configOptions().filter((option) => option.description === '');
  assert.deepEqual(undocumented.map((option) => option.key), []);
});

test('docs/configuration.md lists the options the schema has', () => {
  const doc = readFileSync(DOC, 'utf8');
  assert.match(doc, GENERATED, 'the options markers are missing');
  const current = doc.replace(GENERATED, (_, begin: string, end: string) => `${begin}${renderConfigReference()}${end}`);
  if (process.env.UPDATE_CONFIG_DOCS) writeFileSync(DOC, current);
  assert.equal(doc, current, 'the options table is stale; regenerate it with UPDATE_CONFIG_DOCS=1');
});
