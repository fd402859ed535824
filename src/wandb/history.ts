// runtel's run data in W&B's shapes: run ids, config, history rows and the summary.
//
// W&B's rules and how runtel bridges them (docs/wandb.md):
// - A history row is one `_step` for all its keys, and W&B drops rows whose `_step` goes backwards.
//   runtel's points are per key and may come in any order. Points are merged into rows by step; a
//   row is closed when a larger step arrives (as W&B itself commits a row logged with an explicit
//   step), at forceFlush and at finish.
// - Every row also carries the runtel step under a custom step key (`runtel/step`), declared in the
//   config's metric definitions (`define_metric("*", step_metric="runtel/step")`). A row is written
//   with `_step` = its runtel step when that is larger than every `_step` already written, else with
//   the next free `_step`: points that arrive after their step was sent still reach W&B, and charts
//   plot them at their runtel step. Nothing is dropped.
// - NaN and ±Infinity are the bare tokens `NaN`, `Infinity`, `-Infinity` (W&B's extended JSON).
// - A line is at most 10 MiB − 100 KiB: a larger row is split into several rows of the same runtel step.

import { createHash } from 'node:crypto';
import type { MetricsEvent } from '../core/events.js';
import { parseExtendedJson, toExtendedJson } from './extendedJson.js';

/** The custom step key every row carries. */
export const DEFAULT_STEP_METRIC = 'runtel/step';
/** W&B's limit on one file_stream request. */
export const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
/** W&B's limit on one line (longer lines are skipped by W&B's own client). */
export const MAX_LINE_BYTES = 10 * 1024 * 1024 - 100 * 1024;

const RESERVED_KEYS: ReadonlySet<string> = new Set(['_step', '_runtime', '_timestamp', '_wandb']);

/**
 * The W&B run id of a runtel run: the first 64 bits of the runtel id (32 hex characters) in base 36,
 * 13 lowercase alphanumerics. Deterministic, so a replay or an exporter restart finds the same run.
 * Ids that are not 32 hex characters are hashed (SHA-256) first.
 */
export function wandbRunId(runtelId: string): string {
  const hex = /^[0-9a-f]{32}$/.test(runtelId) ? runtelId : createHash('sha256').update(runtelId).digest('hex');
  return BigInt(`0x${hex.slice(0, 16)}`).toString(36).padStart(13, '0');
}

/**
 * A runtel param string back as the value it was logged as, when that is certain: `true`/`false`,
 * `null`, numbers whose canonical form is the string itself (`0.001`, `3`, `1e+21`, but not `1.0` or
 * `007`), and JSON arrays and objects that re-serialise to the same text. NaN and ±Infinity stay
 * strings (W&B's config is plain JSON). Everything else stays the string it is.
 */
export function parseParamValue(value: string): unknown {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (value === 'null') return null;
  if (value !== '' && /^[-0-9]/.test(value)) {
    const n = Number(value);
    if (Number.isFinite(n) && String(n) === value) return n;
    return value;
  }
  if ((value.startsWith('[') && value.endsWith(']')) || (value.startsWith('{') && value.endsWith('}'))) {
    try {
      const parsed: unknown = JSON.parse(value);
      if (JSON.stringify(parsed) === value) return parsed;
    } catch {
      // Not JSON: a string.
    }
  }
  return value;
}

/**
 * runtel's `.`-flattened params back into nested objects (`model.layers` → `{ model: { layers } }`).
 * Where a key is both a value and a prefix of other keys (`a` and `a.b`), the longer key stays flat
 * from that point (`{ a: …, "a.b": … }`): nothing is lost.
 */
export function unflattenParams(params: Record<string, string>, parse = true): Record<string, unknown> {
  const keys = new Set(Object.keys(params));
  const root: Record<string, unknown> = {};
  for (const key of Object.keys(params).sort()) {
    const value = parse ? parseParamValue(params[key]!) : params[key]!;
    const segments = key.split('.');
    let node = root;
    let i = 0;
    while (i < segments.length - 1) {
      const prefix = segments.slice(0, i + 1).join('.');
      if (keys.has(prefix)) break;
      const next = node[segments[i]!];
      if (next !== undefined && (typeof next !== 'object' || next === null || Array.isArray(next) || !isPlainNode(next))) break;
      node = (node[segments[i]!] ??= createNode()) as Record<string, unknown>;
      i++;
    }
    node[segments.slice(i).join('.')] = value;
  }
  return root;
}

const NODE = Symbol('runtel.unflatten.node');
function createNode(): Record<string, unknown> {
  const node: Record<string, unknown> = {};
  Object.defineProperty(node, NODE, { value: true, enumerable: false });
  return node;
}
function isPlainNode(value: object): boolean {
  return (value as Record<symbol, unknown>)[NODE] === true;
}

/** The metric definitions W&B keeps in config `_wandb.m`: the step key, and every metric plotted against it. */
export function stepMetricDefinitions(stepMetric: string): unknown[] {
  // Field numbers of W&B's MetricRecord: 1 name, 2 glob, 5 step metric index + 1, 6 options
  // (1 step_sync, 2 hidden, 3 defined). The shapes the real SDK writes for
  // define_metric(stepMetric, hidden=True) and define_metric("*", step_metric=stepMetric).
  return [
    { '1': stepMetric, '6': [3, 2] },
    { '2': '*', '5': 1, '6': [1] },
  ];
}

interface Row {
  step: number;
  values: Map<string, number>;
  /** Largest point timestamp in the row (ms). */
  timestamp: number;
  /** Smallest seq of the events whose points the row holds (see delivery/DeliveryTarget.ts). */
  seq: number;
}

interface SummaryEntry {
  value: number;
  step: number;
  timestamp: number;
}

export interface HistoryLine {
  /** The line's index in wandb-history.jsonl. */
  index: number;
  line: string;
  /** Metric points in the line. */
  points: number;
  /** Smallest seq of the events whose points the line holds. */
  seq: number;
}

export interface RunHistoryOptions {
  /** Run start (ms): `_runtime` is measured from here. */
  startTime: number;
  stepMetric?: string;
  /** Default MAX_LINE_BYTES. */
  maxLineBytes?: number;
  /** Limit on the line as a JSON string inside a file_stream request. Default: MAX_REQUEST_BYTES − 4 KiB. */
  maxEscapedBytes?: number;
  /** Told when a row is split to fit the line limit, or a single value cannot fit. */
  onOversize?: (step: number, message: string) => void;
}

/** One run's history and summary, from metrics events to extended-JSON lines. */
export class RunHistory {
  readonly stepMetric: string;
  /** Index of the next line in wandb-history.jsonl. */
  nextIndex = 0;
  /** Lines with a smaller index are on the server already (a replay): they are built but not queued. */
  skipBelow = 0;
  /** The next free `_step`. */
  nextStep = 0;
  /** Encoded lines not yet acknowledged, in order. */
  readonly lines: HistoryLine[] = [];
  /** Rows whose `_step` differs from their runtel step (late points, splits). */
  remappedRows = 0;
  /** Points in lines that a replay found on the server already. */
  skippedPoints = 0;
  /** Points whose key and value alone do not fit in a line. */
  droppedPoints = 0;
  /** Points W&B has already (`key\0runtel step`), read from its history when a run is continued: not sent again. */
  private _known: Set<string> | undefined;
  private readonly _startTime: number;
  private readonly _maxLineBytes: number;
  private readonly _maxEscapedBytes: number;
  private readonly _onOversize: ((step: number, message: string) => void) | undefined;
  /** Rows still open to more points, by runtel step. */
  private readonly _open = new Map<number, Row[]>();
  /** Closed rows waiting for `encode()`. */
  private readonly _closed: Row[] = [];
  private _maxStep = -1;
  private readonly _summary = new Map<string, SummaryEntry>();
  private readonly _seededSummary: Record<string, unknown> = {};
  private _lastTimestamp: number;
  private _lastStepWritten: number | undefined;
  private _summaryVersion = 0;
  private _bufferedPoints = 0;

  constructor(options: RunHistoryOptions) {
    this.stepMetric = options.stepMetric ?? DEFAULT_STEP_METRIC;
    this._startTime = options.startTime;
    this._lastTimestamp = options.startTime;
    this._maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
    this._maxEscapedBytes = options.maxEscapedBytes ?? MAX_REQUEST_BYTES - 4096;
    this._onOversize = options.onOversize;
  }

  /** Points held in rows not yet encoded. */
  get bufferedPoints(): number {
    return this._bufferedPoints;
  }

  /** Bumped on every summary change. */
  get summaryVersion(): number {
    return this._summaryVersion;
  }

  /**
   * Points W&B has of this run, from its history lines (a bridge or exporter that restarted is sent
   * again what it had delivered before it stopped): such a point is skipped, never a second row.
   */
  knowLines(lines: Iterable<string>): void {
    for (const line of lines) {
      let row: unknown;
      try {
        row = parseExtendedJson(line);
      } catch {
        continue;
      }
      if (row === null || typeof row !== 'object') continue;
      const values = row as Record<string, unknown>;
      const step = values[this.stepMetric] ?? values._step;
      if (typeof step !== 'number') continue;
      this._known ??= new Set();
      for (const key of Object.keys(values)) {
        if (!RESERVED_KEYS.has(key) && key !== this.stepMetric) this._known.add(`${key}\0${step}`);
      }
    }
    // Points added before W&B's lines were read (the run is created in the background) are checked too.
    const known = this._known;
    if (known === undefined) return;
    const purge = (rows: Row[]): Row[] =>
      rows.filter((row) => {
        for (const key of [...row.values.keys()]) {
          if (!known.has(`${safeKey(key, this.stepMetric)}\0${row.step}`)) continue;
          row.values.delete(key);
          this.skippedPoints++;
          this._bufferedPoints--;
        }
        return row.values.size > 0;
      });
    for (const [step, rows] of this._open) {
      const kept = purge(rows);
      if (kept.length > 0) this._open.set(step, kept);
      else this._open.delete(step);
    }
    const closed = purge(this._closed);
    this._closed.length = 0;
    this._closed.push(...closed);
  }

  /** The smallest seq of a point not yet acknowledged (open, closed or encoded), or Infinity. */
  pendingSeq(): number {
    let low = Infinity;
    for (const rows of this._open.values()) for (const row of rows) if (row.seq < low) low = row.seq;
    for (const row of this._closed) if (row.seq < low) low = row.seq;
    for (const line of this.lines) if (line.seq < low) low = line.seq;
    return low;
  }

  /** Adds one metrics event. A step larger than every step so far closes the rows before it. */
  add(event: MetricsEvent, seq = 0): void {
    if (event.step > this._maxStep) {
      this._closeOpen();
      this._maxStep = event.step;
    }
    let rows = this._open.get(event.step);
    if (rows === undefined) {
      rows = [];
      this._open.set(event.step, rows);
    }
    for (const key in event.values) {
      const value = event.values[key]!;
      if (this._known?.has(`${safeKey(key, this.stepMetric)}\0${event.step}`) === true) {
        this.skippedPoints++;
        continue;
      }
      // A second point for a key at one step gets a row of its own: no point overwrites another.
      let row = rows.find((r) => !r.values.has(key));
      if (row === undefined) {
        row = { step: event.step, values: new Map(), timestamp: event.timestamp, seq };
        rows.push(row);
      }
      row.values.set(key, value);
      if (event.timestamp > row.timestamp) row.timestamp = event.timestamp;
      this._bufferedPoints++;
      const current = this._summary.get(key);
      // The latest value as runtel defines it: largest step, then largest timestamp, then last logged.
      if (current === undefined || event.step > current.step || (event.step === current.step && event.timestamp >= current.timestamp)) {
        this._summary.set(key, { value, step: event.step, timestamp: event.timestamp });
        this._summaryVersion++;
      }
    }
    if (event.timestamp > this._lastTimestamp) this._lastTimestamp = event.timestamp;
  }

  /** Closes every row, including the open one at the largest step (forceFlush, finish). */
  closeAll(): void {
    this._closeOpen();
  }

  /** Closes the open rows holding points of events up to `seq` (someone waits for them). */
  closeUpTo(seq: number): void {
    for (const [step, rows] of [...this._open].sort((a, b) => a[0] - b[0])) {
      if (!rows.some((row) => row.seq <= seq)) continue;
      this._closed.push(...rows);
      this._open.delete(step);
    }
  }

  /**
   * Turns closed rows into lines, assigning `_step`s and line indexes. Rows whose step is below the
   * next free `_step` (late points) go after the others of the batch, so they do not push rows that
   * can keep their own step.
   */
  encode(): void {
    if (this._closed.length === 0) return;
    const rows = this._closed.splice(0);
    const late: Row[] = [];
    for (const row of rows) {
      if (row.step < this.nextStep) late.push(row);
      else this._emit(row);
    }
    for (const row of late) this._emit(row);
  }

  private _emit(row: Row): void {
    this._bufferedPoints -= row.values.size;
    const parts = this._split(row);
    this.droppedPoints += row.values.size - parts.reduce((n, part) => n + part.length, 0);
    for (const part of parts) {
      const step = Math.max(row.step, this.nextStep);
      if (step !== row.step) this.remappedRows++;
      this.nextStep = step + 1;
      this._lastStepWritten = step;
      const line = this._line(step, row, part);
      const index = this.nextIndex++;
      if (index < this.skipBelow) {
        this.skippedPoints += part.length;
        continue;
      }
      this.lines.push({ index, line, points: part.length, seq: row.seq });
    }
  }

  /** Removes acknowledged lines from the front. */
  acknowledge(count: number): void {
    this.lines.splice(0, count);
  }

  /** Summary entries from the server (a resume): kept unless a new point replaces them. */
  seedSummary(summary: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(summary)) {
      if (!key.startsWith('_') && !this._summary.has(key)) this._seededSummary[key] = value;
    }
    this._summaryVersion++;
  }

  /** The summary line: each key's latest value, plus `_step`, `_runtime`, `_timestamp` and `_wandb.runtime`. */
  summaryLine(nowMillis: number): string {
    const summary: Record<string, unknown> = { ...this._seededSummary };
    for (const [key, entry] of this._summary) summary[safeKey(key, this.stepMetric)] = entry.value;
    const end = Math.max(nowMillis, this._lastTimestamp);
    const runtime = Math.max(0, (end - this._startTime) / 1000);
    if (this._lastStepWritten !== undefined) summary._step = this._lastStepWritten;
    summary._runtime = runtime;
    summary._timestamp = this._lastTimestamp / 1000;
    summary._wandb = { runtime: Math.floor(runtime) };
    return toExtendedJson(summary);
  }

  private _closeOpen(): void {
    if (this._open.size === 0) return;
    const steps = [...this._open.keys()].sort((a, b) => a - b);
    for (const step of steps) this._closed.push(...this._open.get(step)!);
    this._open.clear();
  }

  /** The row's keys in groups whose lines fit the limit (one group unless the row is huge). */
  private _split(row: Row): [string, number][][] {
    const entries = [...row.values.entries()];
    if (this._fits(this._line(Number.MAX_SAFE_INTEGER, row, entries))) return [entries];
    const parts: [string, number][][] = [];
    let current: [string, number][] = [];
    const empty = this._line(Number.MAX_SAFE_INTEGER, row, []);
    const base = [Buffer.byteLength(empty), Buffer.byteLength(JSON.stringify(empty))] as const;
    let size = [base[0], base[1]];
    for (const entry of entries) {
      const fragment = `,${JSON.stringify(safeKey(entry[0], this.stepMetric))}:${toExtendedJson(entry[1])}`;
      const add = [Buffer.byteLength(fragment), Buffer.byteLength(JSON.stringify(fragment)) - 2] as const;
      if (base[0] + add[0] > this._maxLineBytes || base[1] + add[1] > this._maxEscapedBytes) {
        this._onOversize?.(row.step, `metric ${JSON.stringify(entry[0])} at step ${row.step} does not fit in one W&B history line (${this._maxLineBytes} bytes): not sent`);
        continue;
      }
      if ((size[0]! + add[0] > this._maxLineBytes || size[1]! + add[1] > this._maxEscapedBytes) && current.length > 0) {
        parts.push(current);
        current = [];
        size = [base[0], base[1]];
      }
      current.push(entry);
      size = [size[0]! + add[0], size[1]! + add[1]];
    }
    if (current.length > 0) parts.push(current);
    if (parts.length > 1) this._onOversize?.(row.step, `history row at step ${row.step} is larger than one W&B line (${this._maxLineBytes} bytes): split into ${parts.length} rows of the same ${this.stepMetric}`);
    return parts;
  }

  private _fits(line: string): boolean {
    return Buffer.byteLength(line) <= this._maxLineBytes && Buffer.byteLength(JSON.stringify(line)) <= this._maxEscapedBytes;
  }

  private _line(wandbStep: number, row: Row, entries: [string, number][]): string {
    let line = `{"_step":${wandbStep},"_runtime":${toExtendedJson(Math.max(0, (row.timestamp - this._startTime) / 1000))},"_timestamp":${toExtendedJson(row.timestamp / 1000)},${JSON.stringify(this.stepMetric)}:${row.step}`;
    for (const [key, value] of entries) line += `,${JSON.stringify(safeKey(key, this.stepMetric))}:${toExtendedJson(value)}`;
    return `${line}}`;
  }
}

/** A metric key that collides with W&B's reserved keys or the step key is prefixed with `metric/`. */
export function safeKey(key: string, stepMetric: string): string {
  return RESERVED_KEYS.has(key) || key === stepMetric ? `metric/${key}` : key;
}
