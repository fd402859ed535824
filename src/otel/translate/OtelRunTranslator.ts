// OpenTelemetry data written by runtel's conventions → run events. The one translator behind the
// MLflow and W&B exporters and the bridge. Inputs are normalised first (see inputs.ts), so SDK
// objects and decoded OTLP (JSON or protobuf, any language's SDK) take the same path.
//
// It tolerates what pipelines do: records resent after a retry, logs and spans in any order,
// spans without log records (a traces-only pipeline) and records from older SDKs (event name as
// an `event.name` attribute, numbers as strings).

import type { RunEvent, RunStartedEvent } from '../../core/events.js';
import type { FinalRunStatus } from '../../core/types.js';
import {
  ATTR_ARTIFACT_KIND,
  ATTR_ARTIFACT_NAME,
  ATTR_ARTIFACT_PATH,
  ATTR_ARTIFACT_SIZE,
  ATTR_EVENT_NAME,
  ATTR_EXCEPTION_MESSAGE,
  ATTR_EXCEPTION_STACKTRACE,
  ATTR_EXCEPTION_TYPE,
  ATTR_EXPERIMENT_NAME,
  ATTR_METRIC_KEY,
  ATTR_METRIC_STEP,
  ATTR_METRIC_VALUE,
  ATTR_RUN_ID,
  ATTR_RUN_METRIC_RECORDS_COUNT,
  ATTR_RUN_NAME,
  ATTR_RUN_PARENT_ID,
  ATTR_RUN_RESUMED,
  ATTR_RUN_STATUS,
  EVENT_ARTIFACT,
  EVENT_METRIC,
  EVENT_PARAMS,
  EVENT_RUN_END,
  EVENT_RUN_HEARTBEAT,
  EVENT_RUN_START,
  EVENT_SYSTEM,
  EVENT_TAGS,
  PARAM_PREFIX,
  TAG_PREFIX,
  fromMetricAttributeValue,
} from '../conventions.js';
import { validateKey } from '../../core/validation.js';
import type { OtelLogInput, OtelSpanInput } from './inputs.js';
import { RunMemos } from './RunMemos.js';
import type { RunMemo } from './RunMemos.js';
import { systemEvent } from './system.js';

export interface TranslatorStats {
  events: number;
  ignored: number;
  rejected: number;
  /** Param and tag keys dropped for breaking the key rule (their records were kept). */
  droppedKeys: number;
}

const SYSTEM_SEEN_KEY = '\0system';
const STATUS_VALUES: ReadonlySet<string> = new Set(['success', 'failed', 'killed', 'crashed']);
const SPAN_STATUS_ERROR = 2;

export interface OtelRunTranslatorOptions {
  /** Runs remembered for de-duplication; the oldest are forgotten past this. Default 10,000. */
  maxRuns?: number;
  /** Metric points remembered per run for de-duplication. Default 1,000,000. */
  maxSeenPointsPerRun?: number;
  /**
   * Metric points remembered in all, which bounds the memory de-duplication takes (about 70 bytes a
   * point). Past it, the least recently active run forgets its points first. Default 1,000,000.
   */
  maxSeenPoints?: number;
}

export class OtelRunTranslator {
  private readonly _memos: RunMemos;
  private readonly _stats: TranslatorStats = { events: 0, ignored: 0, rejected: 0, droppedKeys: 0 };

  constructor(options: OtelRunTranslatorOptions = {}) {
    this._memos = new RunMemos({ maxRuns: options.maxRuns ?? 10_000, maxSeenPointsPerRun: options.maxSeenPointsPerRun ?? 1_000_000, maxSeenPoints: options.maxSeenPoints ?? 1_000_000 });
  }

  /** Metric points remembered for de-duplication, over all runs. */
  get seenPoints(): number {
    return this._memos.seenPoints;
  }

  stats(): TranslatorStats {
    return { ...this._stats };
  }

  /** Log records → events, in input order. Consecutive metric points of one run and step share an event. */
  logs(records: Iterable<OtelLogInput>): RunEvent[] {
    const out: RunEvent[] = [];
    for (const record of records) {
      const eventName = record.eventName || asString(record.attributes[ATTR_EVENT_NAME]);
      if (eventName === undefined || !eventName.startsWith('ml.')) {
        this._stats.ignored++;
        continue;
      }
      const runId = asString(record.attributes[ATTR_RUN_ID]);
      if (runId === undefined) {
        this._stats.rejected++;
        continue;
      }
      try {
        this._log(eventName, runId, record, out);
      } catch {
        this._stats.rejected++;
      }
    }
    this._stats.events += out.length;
    return out;
  }

  /**
   * The end of a run whose process went silent, as whoever noticed writes it: a run_finished
   * `crashed` at `endTime` (the last sign of life). Nothing when the run has finished already. If
   * the run speaks again afterwards (it was only cut off), its next record takes it back: a
   * run_started `resumed` comes first, and its own end replaces `crashed`.
   */
  crashed(runId: string, endTime: number, error?: { type: string; message: string }): RunEvent[] {
    const memo = this._memos.touch(runId);
    if (memo.finished) return [];
    memo.finished = true;
    memo.crashed = true;
    const event: RunEvent = { type: 'run_finished', runId, endTime, status: 'crashed' };
    if (error !== undefined) event.error = error;
    this._stats.events++;
    return [event];
  }

  /**
   * Whether every ml.metric and ml.system record the run's end counts has arrived. False when no end
   * gave a count, and after mayBeResent() for a run with points de-duplication does not remember.
   */
  complete(runId: string): boolean {
    return this._memos.complete(runId);
  }

  /**
   * Records of this run were taken but their sender was not told (it will send them again): once
   * the run has points de-duplication does not remember (now or later), a resent one could count
   * twice, so the run is never complete() again; its end waits out the window instead.
   */
  mayBeResent(runId: string): void {
    this._memos.mayBeResent(runId);
  }

  /** Whether the run is known and not finished (a run only heard of through heartbeats is not started). */
  isOpen(runId: string): boolean {
    const memo = this._memos.get(runId);
    return memo !== undefined && !memo.finished;
  }

  /** Run spans → events: a run_started if its records were never seen, and its run_finished. */
  spans(spans: Iterable<OtelSpanInput>): RunEvent[] {
    const out: RunEvent[] = [];
    for (const span of spans) {
      const runId = asString(span.attributes[ATTR_RUN_ID]);
      if (runId === undefined) {
        this._stats.ignored++;
        continue;
      }
      const memo = this._memos.touch(runId);
      this._revive(runId, memo, span.startMillis, out);
      memo.expected ??= asInteger(span.attributes[ATTR_RUN_METRIC_RECORDS_COUNT]);
      if (!memo.started) out.push(this._started(runId, span.attributes, span.startMillis, memo));
      else if (memo.provisional) {
        // No ml.run.start came: the span carries the params and tags.
        memo.provisional = false;
        const params = this._prefixed(span.attributes, PARAM_PREFIX);
        if (Object.keys(params).length > 0) out.push({ type: 'params', runId, time: span.startMillis, params });
      }
      if (!memo.finished) {
        memo.finished = true;
        const status = asStatus(span.attributes[ATTR_RUN_STATUS]) ?? (span.status.code === SPAN_STATUS_ERROR ? 'failed' : 'success');
        const finished: RunEvent = { type: 'run_finished', runId, endTime: span.endMillis, status };
        const exception = span.events.find((e) => e.name === 'exception');
        if (exception !== undefined) finished.error = errorInfo(exception.attributes);
        else if (status === 'failed' && span.status.message) finished.error = { type: 'Error', message: span.status.message };
        out.push(finished);
      }
    }
    this._stats.events += out.length;
    return out;
  }

  private _log(eventName: string, runId: string, record: OtelLogInput, out: RunEvent[]): void {
    const a = record.attributes;
    const memo = this._memos.touch(runId);
    // A resent start of a crashed run is not news (its records are seen): everything else is.
    if (!(eventName === EVENT_RUN_START && memo.started)) this._revive(runId, memo, record.timeMillis, out);
    switch (eventName) {
      case EVENT_RUN_HEARTBEAT:
        // Liveness only (the bridge notes when each run was last heard of); no event.
        return;
      case EVENT_RUN_START: {
        const resumed = a[ATTR_RUN_RESUMED] === true || a[ATTR_RUN_RESUMED] === 'true';
        if (memo.provisional) {
          // The run was started from a later record; its params and tags arrive now.
          memo.provisional = false;
          const params = this._prefixed(a, PARAM_PREFIX);
          const tags = this._prefixed(a, TAG_PREFIX);
          if (Object.keys(params).length > 0) out.push({ type: 'params', runId, time: record.timeMillis, params });
          if (Object.keys(tags).length > 0) out.push({ type: 'tags', runId, time: record.timeMillis, tags });
          return;
        }
        if (memo.started && !(resumed && memo.finished)) return this._duplicate();
        if (resumed) {
          memo.finished = false;
          memo.crashed = false;
          // Another process's records: its end counts only those.
          memo.received = 0;
          memo.expected = undefined;
        }
        const event = this._started(runId, a, record.timeMillis, memo);
        if (resumed) event.resumed = true;
        out.push(event);
        return;
      }
      case EVENT_PARAMS:
      case EVENT_TAGS: {
        this._ensureStarted(runId, a, record.timeMillis, memo, out);
        const values = this._prefixed(a, eventName === EVENT_PARAMS ? PARAM_PREFIX : TAG_PREFIX);
        if (Object.keys(values).length === 0) return;
        out.push(eventName === EVENT_PARAMS ? { type: 'params', runId, time: record.timeMillis, params: values } : { type: 'tags', runId, time: record.timeMillis, tags: values });
        return;
      }
      case EVENT_METRIC: {
        const key = asString(a[ATTR_METRIC_KEY]);
        const step = asInteger(a[ATTR_METRIC_STEP]);
        if (key === undefined || step === undefined || a[ATTR_METRIC_VALUE] === undefined) throw new TypeError('incomplete ml.metric record');
        // Other SDKs' keys are not checked where they were logged: one MLflow refuses would fail a whole batch.
        validateKey(key, 'metric');
        const value = fromMetricAttributeValue(a[ATTR_METRIC_VALUE]);
        if (memo.seen.has(key, step, record.timeMillis)) return this._duplicate();
        this._memos.remember(memo, key, step, record.timeMillis);
        this._ensureStarted(runId, a, record.timeMillis, memo, out);
        const last = out[out.length - 1];
        if (last?.type === 'metrics' && last.runId === runId && last.step === step && last.timestamp === record.timeMillis && !(key in last.values)) {
          last.values[key] = value;
        } else {
          out.push({ type: 'metrics', runId, step, timestamp: record.timeMillis, values: { [key]: value } });
        }
        return;
      }
      case EVENT_SYSTEM: {
        const event = systemEvent(runId, a, record.timeMillis);
        // No metric key starts with NUL: system samples cannot collide with points.
        if (memo.seen.has(SYSTEM_SEEN_KEY, event.step, record.timeMillis)) return this._duplicate();
        this._memos.remember(memo, SYSTEM_SEEN_KEY, event.step, record.timeMillis);
        this._ensureStarted(runId, a, record.timeMillis, memo, out);
        out.push(event);
        return;
      }
      case EVENT_ARTIFACT: {
        const name = asString(a[ATTR_ARTIFACT_NAME]);
        const path = asString(a[ATTR_ARTIFACT_PATH]);
        if (name === undefined || path === undefined) throw new TypeError('incomplete ml.artifact record');
        this._ensureStarted(runId, a, record.timeMillis, memo, out);
        out.push({
          type: 'artifact',
          runId,
          time: record.timeMillis,
          path,
          name,
          kind: a[ATTR_ARTIFACT_KIND] === 'directory' ? 'directory' : 'file',
          size: asInteger(a[ATTR_ARTIFACT_SIZE]) ?? 0,
        });
        return;
      }
      case EVENT_RUN_END: {
        // Read even from a second end: the run span (no count from older SDKs) may have ended it first.
        memo.expected ??= asInteger(a[ATTR_RUN_METRIC_RECORDS_COUNT]);
        if (memo.finished) return this._duplicate();
        const status = asStatus(a[ATTR_RUN_STATUS]);
        if (status === undefined) throw new TypeError('ml.run.end without a valid ml.run.status');
        this._ensureStarted(runId, a, record.timeMillis, memo, out);
        memo.finished = true;
        const event: RunEvent = { type: 'run_finished', runId, endTime: record.timeMillis, status };
        if (a[ATTR_EXCEPTION_TYPE] !== undefined || a[ATTR_EXCEPTION_MESSAGE] !== undefined) event.error = errorInfo(a);
        out.push(event);
        return;
      }
      default:
        this._stats.ignored++;
    }
  }

  // A record that arrives before its run's ml.run.start (pipelines reorder) still needs a run. It
  // takes the identity the record carries, but not its params or tags: those follow as their own event.
  private _ensureStarted(runId: string, a: Record<string, unknown>, time: number, memo: RunMemo, out: RunEvent[]): void {
    if (memo.started) return;
    const event = this._started(runId, a, time, memo);
    event.params = {};
    event.tags = {};
    memo.provisional = true;
    out.push(event);
  }

  private _started(runId: string, a: Record<string, unknown>, time: number, memo: RunMemo): RunStartedEvent {
    memo.started = true;
    const event: RunStartedEvent = {
      type: 'run_started',
      runId,
      name: asString(a[ATTR_RUN_NAME]) ?? `run-${runId.slice(0, 8)}`,
      experiment: asString(a[ATTR_EXPERIMENT_NAME]) ?? 'default',
      startTime: time,
      params: this._prefixed(a, PARAM_PREFIX),
      tags: this._prefixed(a, TAG_PREFIX),
    };
    const parentId = asString(a[ATTR_RUN_PARENT_ID]);
    if (parentId !== undefined) event.parentId = parentId;
    memo.identity = { name: event.name, experiment: event.experiment, ...(parentId !== undefined ? { parentId } : {}) };
    if (memo.resumeNext) {
      memo.resumeNext = false;
      event.resumed = true;
    }
    return event;
  }

  /** A run finished `crashed` that speaks again was only cut off: it starts again (resumed) before its new data. */
  private _revive(runId: string, memo: RunMemo, time: number, out: RunEvent[]): void {
    if (!memo.crashed) return;
    memo.crashed = false;
    memo.finished = false;
    if (!memo.started || memo.identity === undefined) {
      memo.resumeNext = true;
      return;
    }
    out.push({ type: 'run_started', runId, ...memo.identity, startTime: time, params: {}, tags: {}, resumed: true });
  }

  /**
   * The attributes under `prefix` (params or tags) as strings, by key. A key that breaks the key rule
   * is dropped and counted, and the record kept: MLflow would refuse the whole batch it travels in.
   */
  private _prefixed(a: Record<string, unknown>, prefix: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(a)) {
      if (!name.startsWith(prefix) || name.length === prefix.length) continue;
      const key = name.slice(prefix.length);
      try {
        validateKey(key, 'param or tag');
      } catch {
        this._stats.droppedKeys++;
        continue;
      }
      // Params and tags are strings by the conventions; other SDKs may send numbers or booleans.
      if (typeof value === 'string') out[key] = value;
      else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') out[key] = String(value);
    }
    return out;
  }

  private _duplicate(): void {
    this._stats.ignored++;
  }
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** int or double or a decimal string (int64 as JSON sends it), as a safe non-negative integer. */
function asInteger(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : typeof value === 'bigint' ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function asStatus(value: unknown): FinalRunStatus | undefined {
  return typeof value === 'string' && STATUS_VALUES.has(value) ? (value as FinalRunStatus) : undefined;
}

function errorInfo(a: Record<string, unknown>): { type: string; message: string; stack?: string } {
  const info: { type: string; message: string; stack?: string } = {
    type: asString(a[ATTR_EXCEPTION_TYPE]) ?? 'Error',
    message: typeof a[ATTR_EXCEPTION_MESSAGE] === 'string' ? a[ATTR_EXCEPTION_MESSAGE] : '',
  };
  const stack = asString(a[ATTR_EXCEPTION_STACKTRACE]);
  if (stack !== undefined) info.stack = stack;
  return info;
}
