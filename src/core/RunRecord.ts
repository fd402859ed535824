// A run rebuilt from its events. The InMemory backend, the JSONL reader, resume and the CLI all use
// this one reducer, so "what a run is" has a single definition.

import type { ErrorInfo, RunEvent } from './events.js';
import type { RunStatus } from './types.js';

export interface MetricSample {
  step: number;
  value: number;
  timestamp: number;
}

export interface ArtifactRecord {
  name: string;
  path: string;
  kind: 'file' | 'directory';
  size: number;
  time: number;
}

export interface RunRecord {
  id: string;
  name: string;
  experiment: string;
  parentId?: string;
  status: RunStatus;
  startTime: number;
  endTime?: number;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** Every point per key, in logging order. */
  metrics: Record<string, MetricSample[]>;
  artifacts: ArtifactRecord[];
  error?: ErrorInfo;
  /** The largest step logged so far, or -1. */
  lastStep: number;
  /** System metric samples per `system/*` key (only when system metrics were on). */
  system?: Record<string, MetricSample[]>;
  /** The largest system-metrics step so far (a resumed run's sampler continues after it). */
  lastSystemStep?: number;
}

/** Creates a record from a run_started event, or updates `record` with a later event. */
export function applyEvent(record: RunRecord | undefined, event: RunEvent): RunRecord {
  if (event.type === 'run_started') {
    if (record !== undefined) {
      // A resumed run: back to running, earlier data kept.
      record.status = 'running';
      delete record.endTime;
      delete record.error;
      Object.assign(record.params, event.params);
      Object.assign(record.tags, event.tags);
      return record;
    }
    const created: RunRecord = {
      id: event.runId,
      name: event.name,
      experiment: event.experiment,
      status: 'running',
      startTime: event.startTime,
      params: { ...event.params },
      tags: { ...event.tags },
      metrics: {},
      artifacts: [],
      lastStep: -1,
    };
    if (event.parentId !== undefined) created.parentId = event.parentId;
    return created;
  }
  if (record === undefined) throw new Error(`event ${event.type} for run ${event.runId} before run_started`);
  switch (event.type) {
    case 'params':
      Object.assign(record.params, event.params);
      break;
    case 'tags':
      Object.assign(record.tags, event.tags);
      break;
    case 'metrics':
      for (const key in event.values) {
        (record.metrics[key] ??= []).push({ step: event.step, value: event.values[key]!, timestamp: event.timestamp });
      }
      if (event.step > record.lastStep) record.lastStep = event.step;
      break;
    case 'system_metrics': {
      const system = (record.system ??= {});
      for (const key in event.values) (system[key] ??= []).push({ step: event.step, value: event.values[key]!, timestamp: event.timestamp });
      if (event.step > (record.lastSystemStep ?? -1)) record.lastSystemStep = event.step;
      break;
    }
    case 'artifact':
      record.artifacts.push({ name: event.name, path: event.path, kind: event.kind, size: event.size, time: event.time });
      break;
    case 'run_finished':
      record.status = event.status;
      record.endTime = event.endTime;
      if (event.error !== undefined) record.error = event.error;
      break;
  }
  return record;
}

/**
 * Each metric's latest value as MLflow defines it: the point with the largest step, then the
 * largest timestamp, then the one logged last.
 */
export function lastMetricValues(record: RunRecord): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, samples] of Object.entries(record.metrics)) {
    let latest: MetricSample | undefined;
    for (const s of samples) {
      if (latest === undefined || s.step > latest.step || (s.step === latest.step && s.timestamp >= latest.timestamp)) {
        latest = s;
      }
    }
    if (latest !== undefined) out[key] = latest.value;
  }
  return out;
}
