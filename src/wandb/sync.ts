// `runtel sync --to wandb` as a function: the one replay (src/sync/syncRuns.ts) into a W&B backend
// in replay mode, which rebuilds each run's history and skips the lines W&B has already.

import type { BackendFailure } from '../core/errors.js';
import type { StoredRun } from '../backends/jsonl/store.js';
import { syncRuns } from '../sync/syncRuns.js';
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
  const backend = new WandbBackend({ keepProcessAlive: true, ...options, mode: 'online', replay: true });
  const { failures } = await syncRuns(runs, backend, {
    onProgress: (p) => {
      const stats = backend.stats();
      onProgress?.({ totalPoints: p.pointsTotal, sentPoints: stats.sentPoints, skippedPoints: stats.skippedPoints });
    },
  });
  const out: WandbSyncResult['runs'] = [];
  for (const run of runs) {
    const where = await backend.wandbRun(run.record.id);
    out.push({ runId: run.record.id, entity: where?.entity, project: where?.project, wandbRunId: where?.id });
  }
  return { runs: out, stats: backend.stats(), failures };
}
