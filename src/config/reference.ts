// What the schema knows about each option, read back from it: the keys valid at a place (for
// "did you mean" suggestions) and the documented options (rendered into docs/configuration.md).
import { stringify } from 'yaml';
import { z } from 'zod';
import { configSchema } from './schema.js';

export interface OptionReference {
  /** Dotted key; options of list items are written `routes[].handler`. */
  key: string;
  /** The default as written in YAML; absent when the option has none. */
  default?: { value: unknown };
  required: boolean;
  description: string;
}

/** The type a wrapper that does not change what keys a value may have (default, null, effects) wraps. */
function wrappedBy(schema: z.ZodTypeAny): z.ZodTypeAny | undefined {
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) {
    return schema._def.innerType;
  }
  return schema instanceof z.ZodEffects ? schema._def.schema : undefined;
}

function unwrap(schema: z.ZodTypeAny): z.ZodTypeAny {
  for (let inner = wrappedBy(schema); inner; inner = wrappedBy(schema)) schema = inner;
  return schema;
}

function defaultOf(schema: z.ZodTypeAny): { value: unknown } | undefined {
  for (let layer: z.ZodTypeAny | undefined = schema; layer; layer = wrappedBy(layer)) {
    if (layer instanceof z.ZodDefault) return { value: layer._def.defaultValue() };
  }
  return undefined;
}

/** The keys an object at `path` (e.g. ['routes', 0]) may have; empty when there is no object there. */
export function knownKeysAt(path: readonly (string | number)[]): string[] {
  let schema: z.ZodTypeAny | undefined = unwrap(configSchema);
  for (const part of path) {
    const child: z.ZodTypeAny | undefined =
      schema instanceof z.ZodArray && typeof part === 'number' ? schema.element
      : schema instanceof z.ZodObject && typeof part === 'string' ? schema.shape[part]
      : undefined;
    schema = child && unwrap(child);
  }
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

function* optionsOf(schema: z.ZodTypeAny, key: string): Generator<OptionReference> {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    for (const [name, child] of Object.entries<z.ZodTypeAny>(inner.shape)) {
      yield* optionsOf(child, key ? `${key}.${name}` : name);
    }
    return;
  }
  yield { key, default: defaultOf(schema), required: !schema.isOptional(), description: schema.description ?? '' };
  if (inner instanceof z.ZodArray && unwrap(inner.element) instanceof z.ZodObject) {
    yield* optionsOf(inner.element, `${key}[]`);
  }
}

/** Every option, in the order of the schema. */
export function configOptions(): OptionReference[] {
  return [...optionsOf(configSchema, '')];
}

function formatDefault(option: OptionReference): string {
  if (option.default) return `\`${stringify(option.default.value, { collectionStyle: 'flow', flowCollectionPadding: false }).trim()}\``;
  return option.required ? 'required' : '—';
}

/** The options table of docs/configuration.md. */
export function renderConfigReference(): string {
  const rows = configOptions().map(
    (option) => `| \`${option.key}\` | ${formatDefault(option)} | ${option.description} |`,
  );
  return ['| Key | Default | Description |', '| --- | --- | --- |', ...rows].join('\n') + '\n';
}
