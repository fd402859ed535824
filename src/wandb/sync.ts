// Uploading runs from the JSONL store to W&B (`runtel sync --to wandb`), idempotently: the backend
// replays each run's events; UpsertBucket is an upsert, and history lines the server has already
// (its historyLineCount) are skipped, so a second sync sends no line twice.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import { ARTIFACTS_DIR } from '../backends/jsonl/store.js';
import type { StoredRun } from '../backends/jsonl/store.js';
import { WandbBackend } from './WandbBackend.js';
import type { WandbBackendOptions, WandbStats } from './WandbBackend.js';

export interface WandbSyncProgress {
  /** Metric points of the runs being synced. */
  totalPoints: number;
  /** Points sent so far. */
  sentPoints: number;
  /** Points the server had already (an earlier sync). */
  skippedPoints: number;
}

export interface WandbSyncResult {
  runs: { runId: string; entity: string | undefined; project: string | undefined; wandbRunId: string | undefined }[];
  stats: WandbStats;
  /** Failures reported while syncing (each kind once). Empty when everything arrived. */
  failures: BackendFailure[];
}

/** Uploads one stored run. See {@link syncRunsToWandb}. */
export function syncRunToWandb(run: StoredRun, options: WandbBackendOptions = {}, onProgress?: (progress: WandbSyncProgress) => void): Promise<WandbSyncResult> {
  return syncRunsToWandb([run], options, onProgress);
}

/**
 * Uploads stored runs to W&B and resolves once W&B has everything (or the failures are known).
 * Sync a run tree together: a root run becomes its group's `parent` only when its children are
 * synced with it. Runs that never finished stay running in W&B (W&B then marks them crashed).
 * Ignores `WANDB_MODE`: syncing is what offline mode is for.
 */
export async function syncRunsToWandb(runs: StoredRun[], options: WandbBackendOptions = {}, onProgress?: (progress: WandbSyncProgress) => void): Promise<WandbSyncResult> {
  const failures: BackendFailure[] = [];
  const ordered = [...runs].sort((a, b) => a.record.startTime - b.record.startTime);
  let totalPoints = 0;
  for (const run of ordered) for (const event of run.events) if (event.type === 'metrics') totalPoints += Object.keys(event.values).length;
  const backend: WandbBackend = new WandbBackend({
    unrefTimers: false,
    ...options,
    mode: 'online',
    replay: true,
    onDelivered: () => {
      const stats = backend.stats();
      onProgress?.({ totalPoints, sentPoints: stats.sentPoints, skippedPoints: stats.skippedPoints });
    },
  });
  backend.bindFailureReporter((failure) => failures.push(failure));
  for (const run of ordered) {
    for (const event of run.events) backend.onEvent(storedEvent(run, event));
  }
  await backend.shutdown();
  const stats = backend.stats();
  onProgress?.({ totalPoints, sentPoints: stats.sentPoints, skippedPoints: stats.skippedPoints });
  const out: WandbSyncResult['runs'] = [];
  for (const run of ordered) {
    const where = await backend.wandbRun(run.record.id);
    out.push({ runId: run.record.id, entity: where?.entity, project: where?.project, wandbRunId: where?.id });
  }
  return { runs: out, stats, failures };
}

/** Artifacts are read from the store's copy (the original path may be gone). */
function storedEvent(run: StoredRun, event: RunEvent): RunEvent {
  if (event.type !== 'artifact') return event;
  const copy = join(run.dir, ARTIFACTS_DIR, event.name);
  return existsSync(copy) ? { ...event, path: copy } : event;
}
