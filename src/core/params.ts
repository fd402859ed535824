// Flattening and deterministic stringification of params (documented in docs/params.md).

import { MAX_PARAM_VALUE_LENGTH, validateKey } from './validation.js';

/**
 * Flattens a nested config into `a.b.c` keys with string values:
 * strings as is; numbers and bigints by `String` (`NaN`, `Infinity`, `1e+21`); booleans `true`/`false`;
 * `null` as `null`; Dates as ISO 8601; arrays as compact JSON of their stringified leaves (not flattened);
 * plain objects flattened (an empty one is `{}`); `undefined` entries are skipped.
 * Throws on circular configs, functions and symbols, invalid keys, and values over 6000 characters.
 */
export function flattenParams(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  walk(config, '', out, []);
  return out;
}

function walk(value: Record<string, unknown>, prefix: string, out: Record<string, string>, stack: object[]): void {
  if (stack.includes(value)) throw new TypeError(`config is circular at ${JSON.stringify(prefix.slice(0, -1) || '(root)')}`);
  stack.push(value);
  const entries = value instanceof Map ? [...(value as Map<unknown, unknown>).entries()].map(([k, v]) => [String(k), v] as const) : Object.entries(value);
  for (const [k, v] of entries) {
    const key = prefix + k;
    if (v === undefined) continue;
    if (isNested(v)) {
      if (Object.keys(v).length === 0 && !(v instanceof Map && v.size > 0)) {
        setParam(out, key, '{}');
      } else {
        walk(v as Record<string, unknown>, key + '.', out, stack);
      }
      continue;
    }
    setParam(out, key, stringifyParamValue(v, key, stack));
  }
  stack.pop();
}

function isNested(v: unknown): v is object {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !ArrayBuffer.isView(v);
}

function setParam(out: Record<string, string>, key: string, value: string): void {
  validateKey(key, 'param');
  if (value.length > MAX_PARAM_VALUE_LENGTH) {
    throw new RangeError(
      `param ${JSON.stringify(key)} is ${value.length} characters; the limit is ${MAX_PARAM_VALUE_LENGTH} ` +
        `(MLflow's): log large values with logArtifact instead`,
    );
  }
  out[key] = value;
}

/** Stringifies one leaf value by the rules of `flattenParams`. */
export function stringifyParamValue(v: unknown, key: string, stack: object[] = []): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'function':
    case 'symbol':
      throw new TypeError(`param ${JSON.stringify(key)} is a ${typeof v}; params must be data`);
    case 'undefined':
      return 'undefined';
  }
  if (v === null) return 'null';
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new TypeError(`param ${JSON.stringify(key)} is an invalid Date`);
    return v.toISOString();
  }
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const arr = Array.isArray(v) ? v : Array.from(v as unknown as ArrayLike<number>);
    if (stack.includes(arr)) throw new TypeError(`config is circular at ${JSON.stringify(key)}`);
    stack.push(arr);
    const parts = arr.map((item, i) => jsonLeaf(item, `${key}[${i}]`, stack));
    stack.pop();
    return `[${parts.join(',')}]`;
  }
  return JSON.stringify(flattenParams(v as Record<string, unknown>));
}

// Array elements: strings quoted, numbers and the rest as their param strings.
function jsonLeaf(item: unknown, key: string, stack: object[]): string {
  if (typeof item === 'string') return JSON.stringify(item);
  if (item === undefined) return 'null';
  if (isNested(item)) {
    if (stack.includes(item)) throw new TypeError(`config is circular at ${JSON.stringify(key)}`);
    stack.push(item);
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(item)) {
      if (v !== undefined) flat[k] = stringifyParamValue(v, `${key}.${k}`, stack);
    }
    stack.pop();
    return JSON.stringify(flat);
  }
  return stringifyParamValue(item, key, stack);
}
