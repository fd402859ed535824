// The one run-event model every backend consumes. Translations to MLflow, W&B and OTLP start here.
// Times are milliseconds since the Unix epoch. Params and tags are already validated and stringified.

import type { FinalRunStatus } from './types.js';
import type { TraceCarrier } from './processParent.js';

export interface RunStartedEvent {
  type: 'run_started';
  runId: string;
  name: string;
  experiment: string;
  parentId?: string;
  startTime: number;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** Set when an earlier run was resumed rather than created. */
  resumed?: boolean;
  /**
   * Set when `parentId` came from this process's environment (`RUNTEL_PARENT_RUN_ID`): the parent
   * lives in another process, so a backend finds it by id rather than waiting for its start here.
   */
  parentInherited?: true;
  /** The launching process's run span (TRACEPARENT / TRACESTATE), for the run span to continue its trace. */
  parentTrace?: TraceCarrier;
}

export interface ParamsEvent {
  type: 'params';
  runId: string;
  time: number;
  params: Record<string, string>;
}

/** One `logMetrics` call: one point per key, all at the same step and timestamp. */
export interface MetricsEvent {
  type: 'metrics';
  runId: string;
  step: number;
  timestamp: number;
  values: Record<string, number>;
}

export interface TagsEvent {
  type: 'tags';
  runId: string;
  time: number;
  tags: Record<string, string>;
}

export interface ArtifactEvent {
  type: 'artifact';
  runId: string;
  time: number;
  /** Absolute source path on this machine. */
  path: string;
  /** Relative destination inside the run's artifacts (`/`-separated). */
  name: string;
  kind: 'file' | 'directory';
  /** Total size in bytes at the time of logging. */
  size: number;
}

export interface ErrorInfo {
  type: string;
  message: string;
  stack?: string;
}

export interface RunFinishedEvent {
  type: 'run_finished';
  runId: string;
  endTime: number;
  status: FinalRunStatus;
  error?: ErrorInfo;
}

/**
 * One sample of the machine for a top-level run (see docs/system-metrics.md): `values` keyed by
 * MLflow's names (`system/cpu_utilization_percentage`, …) in MLflow's units. `step` counts the
 * run's samples from 0, as MLflow's own monitor does. Kept apart from `metrics`: W&B shows these
 * as system metrics (not history rows) and the OTel backend as host and process metrics.
 */
export interface SystemMetricsEvent {
  type: 'system_metrics';
  runId: string;
  step: number;
  timestamp: number;
  values: Record<string, number>;
}

export type RunEvent = RunStartedEvent | ParamsEvent | MetricsEvent | SystemMetricsEvent | TagsEvent | ArtifactEvent | RunFinishedEvent;

/** A single (key, step, value, timestamp) metric point. */
export interface MetricPoint {
  key: string;
  value: number;
  step: number;
  timestamp: number;
}

/** Expands a metrics event into its points, in key order. */
export function metricPoints(event: MetricsEvent): MetricPoint[] {
  const points: MetricPoint[] = [];
  for (const key in event.values) {
    points.push({ key, value: event.values[key]!, step: event.step, timestamp: event.timestamp });
  }
  return points;
}

/** Normalises anything thrown into the serialisable form events carry. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const info: ErrorInfo = { type: error.name, message: error.message };
    if (error.stack !== undefined) info.stack = error.stack;
    return info;
  }
  return { type: typeof error, message: String(error) };
}
