// Offline sync: replays runs from the JSONL store into a backend (air-gapped training, upload
// later). Idempotency is the target backend's: MLflow finds each run by its `runtel.run_id` tag and
// stores a resent metric point (same key, step, timestamp, value) once.

import type { RunBackend } from '../core/RunBackend.js';
import type { StoredRun } from '../backends/jsonl/store.js';

export interface SyncProgress {
  runsDone: number;
  runsTotal: number;
  eventsDone: number;
  eventsTotal: number;
}

export interface SyncOptions {
  /** Events handed to the backend before waiting for it to drain. Default 20,000. */
  maxEventsInFlight?: number;
  onProgress?: (progress: SyncProgress) => void;
}

/** Parents before children, each in start order: a child's MLflow run can then name its parent. */
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

/** Replays every event of `runs` into `backend` and waits until it has delivered them. */
export async function syncRuns(runs: readonly StoredRun[], backend: RunBackend, options: SyncOptions = {}): Promise<void> {
  const ordered = replayOrder(runs);
  const maxInFlight = options.maxEventsInFlight ?? 20_000;
  const progress: SyncProgress = { runsDone: 0, runsTotal: ordered.length, eventsDone: 0, eventsTotal: ordered.reduce((n, r) => n + r.events.length, 0) };
  options.onProgress?.({ ...progress });
  let sinceFlush = 0;
  for (const run of ordered) {
    for (const event of run.events) {
      backend.onEvent(event);
      progress.eventsDone++;
      if (++sinceFlush >= maxInFlight) {
        await backend.forceFlush();
        sinceFlush = 0;
        options.onProgress?.({ ...progress });
      }
    }
    // A run still running in the store (a crash without a finish) is uploaded as it is.
    await backend.forceFlush();
    sinceFlush = 0;
    progress.runsDone++;
    options.onProgress?.({ ...progress });
  }
}
