// The one replay from the JSONL store into a remote target (`runtel sync`, air-gapped training
// uploaded later). Idempotency is the target's: MLflow finds each run by its `runtel.run_id` tag and
// stores a resent metric point (same key, step, timestamp, value) once; W&B skips the history lines
// it has. Artifacts are read from the store's copies, since the files they were logged from (staged
// models, for one) may be gone.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import { ARTIFACTS_DIR } from '../backends/jsonl/store.js';
import type { StoredRun } from '../backends/jsonl/store.js';
import type { DeliveryBackend, TargetStats } from '../delivery/DeliveryBackend.js';

export interface SyncProgress {
  runsDone: number;
  runsTotal: number;
  /** Metric points of the runs being synced. */
  pointsTotal: number;
  /** Points the target has now: sent, or found there already. */
  pointsDone: number;
}

export interface SyncOptions {
  /** Events handed to the target before waiting for it to drain. Default 20,000. */
  maxEventsInFlight?: number;
  onProgress?: (progress: SyncProgress) => void;
}

/** What a replay needs of a target's backend. */
export type ReplayBackend = Pick<DeliveryBackend<unknown>, 'onEvent' | 'position' | 'whenDelivered' | 'forceFlush' | 'shutdown' | 'bindFailureReporter'> & {
  stats(): TargetStats & { skippedPoints?: number };
};

export interface SyncResult {
  /** Failures reported while syncing (each kind once); empty when everything arrived. */
  failures: BackendFailure[];
}

/** Parents before children, each in start order: a child's remote run can then name its parent. */
export function replayOrder(runs: readonly StoredRun[]): StoredRun[] {
  const byId = new Map(runs.map((r) => [r.record.id, r]));
  const depth = (run: StoredRun, seen = new Set<string>()): number => {
    const parent = run.record.parentId === undefined ? undefined : byId.get(run.record.parentId);
    if (parent === undefined || seen.has(run.record.id)) return 0;
    seen.add(run.record.id);
    return 1 + depth(parent, seen);
  };
  return [...runs].sort((a, b) => depth(a) - depth(b) || a.record.startTime - b.record.startTime);
}

/**
 * Replays every event of `runs` into `backend`, waits until it has delivered them, and shuts it
 * down. A run still running in the store (a crash without a finish) is uploaded as it is.
 */
export async function syncRuns(runs: readonly StoredRun[], backend: ReplayBackend, options: SyncOptions = {}): Promise<SyncResult> {
  const failures: BackendFailure[] = [];
  backend.bindFailureReporter((failure) => {
    // A retry is reported as it happens (by the caller's progress); only what was lost is a failure.
    if (failure.operation !== 'retry') failures.push(failure);
  });
  const ordered = replayOrder(runs);
  const maxInFlight = options.maxEventsInFlight ?? 20_000;
  let pointsTotal = 0;
  for (const run of ordered) for (const event of run.events) if (event.type === 'metrics') pointsTotal += Object.keys(event.values).length;
  const progress = (runsDone: number): void => {
    const stats = backend.stats();
    options.onProgress?.({ runsDone, runsTotal: ordered.length, pointsTotal, pointsDone: stats.sentPoints + (stats.skippedPoints ?? 0) });
  };
  progress(0);
  // Back-pressure: at most about maxEventsInFlight events wait in the target. Waiting for an event
  // handed over a while ago (not the latest) leaves the target's batching as it is.
  const checkpoints: Array<{ runId: string; seq: number }> = [];
  const chunk = Math.max(1, Math.floor(maxInFlight / 2));
  let handed = 0;
  let runsDone = 0;
  for (const run of ordered) {
    for (const event of run.events) {
      backend.onEvent(fromStore(run, event));
      if (++handed % chunk !== 0) continue;
      checkpoints.push({ runId: event.runId, seq: backend.position(event.runId) ?? 0 });
      if (checkpoints.length > 1) {
        const oldest = checkpoints.shift()!;
        await backend.whenDelivered(oldest.runId, oldest.seq);
        progress(runsDone);
      }
    }
    runsDone++;
  }
  await backend.forceFlush();
  progress(runsDone);
  await backend.shutdown();
  return { failures };
}

/** Artifacts are read from the store's copy. */
function fromStore(run: StoredRun, event: RunEvent): RunEvent {
  if (event.type !== 'artifact') return event;
  const copy = join(run.dir, ARTIFACTS_DIR, event.name);
  return existsSync(copy) ? { ...event, path: copy } : event;
}
