// The JSONL store's line format: one event per line, as the event object itself. Metric values
// that JSON cannot hold (NaN, Infinity, -Infinity, -0) are written as those strings, so the log
// round-trips exactly. See docs/jsonl-store.md.

import type { MetricsEvent, RunEvent } from '../../core/events.js';

export const JSONL_SCHEMA_VERSION = 1;

/** A finite number as JSON; NaN, ±Infinity and -0 as quoted strings. */
export function encodeNumber(value: number): string {
  if (Number.isFinite(value)) return Object.is(value, -0) ? '"-0"' : String(value);
  return `"${value}"`; // "NaN", "Infinity", "-Infinity"
}

export function decodeNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value === 'NaN' || value === 'Infinity' || value === '-Infinity' || value === '-0') return Number(value);
  throw new TypeError(`not an encoded number: ${JSON.stringify(value)}`);
}

export function encodeEvent(event: RunEvent): string {
  if (event.type === 'metrics') return encodeMetrics(event);
  if (event.type === 'run_started') return JSON.stringify({ ...event, v: JSONL_SCHEMA_VERSION });
  return JSON.stringify(event);
}

// The hot path: built by hand so that non-finite values survive without a JSON replacer. Keys are
// validated (letters, digits, `_-. /:`), so they need no JSON escaping. The run id is the file's:
// metrics lines leave it out, which makes them a third shorter.
function encodeMetrics(event: MetricsEvent): string {
  let values = '';
  for (const key in event.values) {
    if (values !== '') values += ',';
    values += '"' + key + '":' + encodeNumber(event.values[key]!);
  }
  return `{"type":"metrics","step":${event.step},"timestamp":${event.timestamp},"values":{${values}}}`;
}

/** Decodes one line; `runId` fills in the id that metrics lines leave out. */
export function decodeEvent(line: string, runId?: string): RunEvent {
  const raw = JSON.parse(line) as RunEvent & { v?: number };
  if (raw.type === 'metrics') {
    if (raw.runId === undefined) {
      if (runId === undefined) throw new Error('metrics line without a run id, read outside its run log');
      raw.runId = runId;
    }
    const values: Record<string, number> = {};
    for (const [key, value] of Object.entries(raw.values as Record<string, unknown>)) values[key] = decodeNumber(value);
    raw.values = values;
  } else if (raw.type === 'run_started') {
    if (raw.v !== undefined && raw.v > JSONL_SCHEMA_VERSION) {
      throw new Error(`run log schema v${raw.v} is newer than this runtel understands (v${JSONL_SCHEMA_VERSION})`);
    }
    delete raw.v;
  }
  return raw;
}
