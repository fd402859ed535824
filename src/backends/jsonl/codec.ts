// The JSONL store's line format: one event per line, as the event object itself. Metric values
// that JSON cannot hold (NaN, Infinity, -Infinity, -0) are written as those strings, so the log
// round-trips exactly. See docs/jsonl-store.md.

import type { MetricsEvent, RunEvent, RunStartedEvent } from '../../core/events.js';
import type { ProcessIdentity } from '../../core/liveness.js';

/** 2 added the writer's `process` on `run_started` lines and `heartbeat` lines; 3 added `link` lines. */
export const JSONL_SCHEMA_VERSION = 3;

/**
 * One line of a run log: an event, a heartbeat (the writer was alive at `time`), or a link (where
 * the run can be seen in a tracker's UI).
 */
export type StoreLine =
  | { kind: 'event'; event: RunEvent; process?: ProcessIdentity }
  | { kind: 'heartbeat'; time: number }
  | { kind: 'link'; label: string; url: string };

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

/** A run_started line with the process that writes the run (so a reader can tell whether it is still alive). */
export function encodeStart(event: RunStartedEvent, process: ProcessIdentity): string {
  return JSON.stringify({ ...event, v: JSONL_SCHEMA_VERSION, process });
}

export function encodeHeartbeat(time: number): string {
  return `{"type":"heartbeat","time":${time}}`;
}

export function encodeLink(label: string, url: string): string {
  return JSON.stringify({ type: 'link', label, url });
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

/** Decodes one event line; `runId` fills in the id that metrics lines leave out. Throws on a heartbeat or link line. */
export function decodeEvent(line: string, runId?: string): RunEvent {
  const decoded = decodeLine(line, runId);
  if (decoded.kind !== 'event') throw new Error(`a ${decoded.kind} line is not an event`);
  return decoded.event;
}

/** Decodes one line of a run log; `runId` fills in the id that metrics lines leave out. */
export function decodeLine(line: string, runId?: string): StoreLine {
  const raw = JSON.parse(line) as (RunEvent & { v?: number; process?: ProcessIdentity }) | { type: 'heartbeat'; time: number } | { type: 'link'; label: unknown; url: unknown };
  if (raw.type === 'heartbeat') {
    if (typeof raw.time !== 'number') throw new TypeError('heartbeat line without a time');
    return { kind: 'heartbeat', time: raw.time };
  }
  if (raw.type === 'link') {
    if (typeof raw.label !== 'string' || typeof raw.url !== 'string') throw new TypeError('link line without a label and url');
    return { kind: 'link', label: raw.label, url: raw.url };
  }
  let process: ProcessIdentity | undefined;
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
    if (raw.process !== undefined) {
      process = raw.process;
      delete raw.process;
    }
  }
  return process === undefined ? { kind: 'event', event: raw } : { kind: 'event', event: raw, process };
}
