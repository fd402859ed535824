// Record helpers for the ingest pipeline: which runs a request touches, the identity its start
// records and spans bring, and the order that lets a run's start create it.

import { ATTR_EVENT_NAME, ATTR_EXPERIMENT_NAME, ATTR_RUN_ID, ATTR_RUN_NAME, ATTR_RUN_PARENT_ID, EVENT_METRIC, EVENT_RUN_HEARTBEAT, EVENT_RUN_START } from '../../otel/conventions.js';
import type { OtelLogInput, OtelSpanInput } from '../../otel/translate/inputs.js';
import type { RunIdentity } from './RunDirectory.js';

/** What a request says about runs, read before anything is changed. */
export interface RequestRuns {
  /** Every run id the request's ml.* records and run spans name. */
  touched: Set<string>;
  /** Identities its start records and spans bring (learnt only if the request is taken). */
  brought: Map<string, RunIdentity>;
  /** Runs it has records of but whose identity it does not bring. */
  needed: Set<string>;
  /** `ml.metric` records. */
  points: number;
}

export function requestRuns(logs: readonly OtelLogInput[], spans: readonly OtelSpanInput[]): RequestRuns {
  const out: RequestRuns = { touched: new Set(), brought: new Map(), needed: new Set(), points: 0 };
  for (const span of spans) {
    const runId = stringAttr(span.attributes, ATTR_RUN_ID);
    if (runId === undefined) continue;
    out.touched.add(runId);
    out.brought.set(runId, { ...identityOf(span.attributes), ...out.brought.get(runId) });
  }
  for (const record of logs) {
    const eventName = eventNameOf(record);
    if (eventName === undefined || !eventName.startsWith('ml.')) continue;
    const runId = stringAttr(record.attributes, ATTR_RUN_ID);
    if (runId === undefined) continue;
    out.touched.add(runId);
    if (eventName === EVENT_METRIC) out.points++;
    if (eventName === EVENT_RUN_START) out.brought.set(runId, { ...out.brought.get(runId), ...identityOf(record.attributes) });
    // A heartbeat creates nothing: it needs no identity.
    else if (eventName !== EVENT_RUN_HEARTBEAT) out.needed.add(runId);
  }
  for (const runId of out.brought.keys()) out.needed.delete(runId);
  return out;
}

/** Puts a run's identity on a record that lacks it, for the translator in case this record starts the run. */
export function withIdentity(attributes: Record<string, unknown>, identity: RunIdentity): void {
  if (identity.name !== undefined && attributes[ATTR_RUN_NAME] === undefined) attributes[ATTR_RUN_NAME] = identity.name;
  if (identity.experiment !== undefined && attributes[ATTR_EXPERIMENT_NAME] === undefined) attributes[ATTR_EXPERIMENT_NAME] = identity.experiment;
  if (identity.parentId !== undefined && attributes[ATTR_RUN_PARENT_ID] === undefined) attributes[ATTR_RUN_PARENT_ID] = identity.parentId;
}

/**
 * The records in order, except that a run's `ml.run.start` that comes after other records of the
 * same run in this request moves just before the first of them: the translator creates a run from
 * whichever record comes first, and a start that came later would lose its params and tags.
 */
export function startsFirst(logs: OtelLogInput[]): OtelLogInput[] {
  const firstStart = new Map<string, number>();
  logs.forEach((record, i) => {
    if (eventNameOf(record) !== EVENT_RUN_START) return;
    const runId = stringAttr(record.attributes, ATTR_RUN_ID);
    if (runId !== undefined && !firstStart.has(runId)) firstStart.set(runId, i);
  });
  if (firstStart.size === 0) return logs;
  const out: OtelLogInput[] = [];
  const moved = new Set<number>();
  const seen = new Set<string>();
  logs.forEach((record, i) => {
    if (moved.has(i)) return;
    const runId = stringAttr(record.attributes, ATTR_RUN_ID);
    const eventName = eventNameOf(record);
    if (runId !== undefined && eventName?.startsWith('ml.') === true && !seen.has(runId)) {
      seen.add(runId);
      const start = firstStart.get(runId);
      if (start !== undefined && start > i) {
        out.push(logs[start]!);
        moved.add(start);
      }
    }
    out.push(record);
  });
  return out;
}

export function stringAttr(attributes: Record<string, unknown>, key: string): string | undefined {
  const value = attributes[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function eventNameOf(record: OtelLogInput): string | undefined {
  return record.eventName ?? stringAttr(record.attributes, ATTR_EVENT_NAME);
}

function identityOf(attributes: Record<string, unknown>): RunIdentity {
  const identity: RunIdentity = {};
  const name = stringAttr(attributes, ATTR_RUN_NAME);
  const experiment = stringAttr(attributes, ATTR_EXPERIMENT_NAME);
  const parentId = stringAttr(attributes, ATTR_RUN_PARENT_ID);
  if (name !== undefined) identity.name = name;
  if (experiment !== undefined) identity.experiment = experiment;
  if (parentId !== undefined) identity.parentId = parentId;
  return identity;
}
