// Which run a record belongs to: name, experiment and parent, by runtel run id.
//
// Only `ml.run.start` records and run spans carry a run's identity; metric, params, tags and
// artifact records carry just `ml.run.id`. The translator creates a run from whichever record of
// it comes first, so a metric record that arrives first (a bridge restarted mid-run, the
// collector's parallel senders reordering batches) would create it under the default experiment
// and name, and MLflow would get a second run. The bridge therefore knows each run's identity
// before translating: from a start record or span it has seen, else from MLflow (the run's
// `runtel.run_id` tag, in any experiment), else it asks the sender to retry later (the start may
// be on its way), for at most `orphanGraceMillis`, after which it accepts the records as they are.

import type { MlflowClient } from '../../mlflow/MlflowClient.js';
import { RUNTEL_RUN_ID_TAG } from '../../mlflow/MlflowTarget.js';

export interface RunIdentity {
  name?: string;
  experiment?: string;
  parentId?: string;
}

/** Finds a run's identity in a tracking server; undefined when the server does not have it. */
export type RunFinder = (runtelId: string) => Promise<RunIdentity | undefined>;

export interface RunDirectoryOptions {
  finders: RunFinder[];
  /** How long records of a run with no known identity are refused (retry later) before they are taken as they are. */
  orphanGraceMillis: number;
  /** Identities remembered; the oldest are forgotten (and looked up again if needed). */
  maxRuns?: number;
  /** How long a lookup that found nothing is trusted. Default 1000 ms. */
  negativeCacheMillis?: number;
}

export type Resolution = { kind: 'known'; identity: RunIdentity } | { kind: 'orphan' } | { kind: 'wait' };

export class RunDirectory {
  private readonly _known = new Map<string, RunIdentity>();
  private readonly _orphans = new Map<string, number>();
  private readonly _lookups = new Map<string, Promise<RunIdentity | undefined>>();
  private readonly _misses = new Map<string, number>();
  private readonly _config: Required<RunDirectoryOptions>;
  private _lookupFailures = 0;

  constructor(options: RunDirectoryOptions) {
    this._config = { maxRuns: 100_000, negativeCacheMillis: 1000, ...options };
  }

  get lookupFailures(): number {
    return this._lookupFailures;
  }

  /** Records an identity seen in a start record or a span. */
  learn(runId: string, identity: RunIdentity): void {
    const known = this._known.get(runId);
    if (known !== undefined) {
      // Keep what is known; fill what is missing.
      for (const key of ['name', 'experiment', 'parentId'] as const) if (known[key] === undefined && identity[key] !== undefined) known[key] = identity[key];
      return;
    }
    this._known.set(runId, { ...identity });
    this._orphans.delete(runId);
    this._misses.delete(runId);
    if (this._known.size > this._config.maxRuns) this._known.delete(this._known.keys().next().value!);
  }

  identity(runId: string): RunIdentity | undefined {
    return this._known.get(runId);
  }

  /**
   * For each run id: its identity (known or found), `orphan` when the grace period is over (take
   * the records as they are), or `wait` (answer "retry later").
   */
  async resolve(runIds: Iterable<string>): Promise<Map<string, Resolution>> {
    const out = new Map<string, Resolution>();
    const pending: Array<Promise<void>> = [];
    const now = Date.now();
    for (const runId of runIds) {
      const known = this._known.get(runId);
      if (known !== undefined) {
        out.set(runId, { kind: 'known', identity: known });
        continue;
      }
      pending.push(
        this._lookup(runId, now).then((found) => {
          // Learnt from another request meanwhile?
          const identity = this._known.get(runId) ?? found;
          if (identity !== undefined) {
            this.learn(runId, identity);
            out.set(runId, { kind: 'known', identity });
            return;
          }
          const first = this._orphans.get(runId) ?? now;
          if (!this._orphans.has(runId)) {
            this._orphans.set(runId, first);
            if (this._orphans.size > this._config.maxRuns) this._orphans.delete(this._orphans.keys().next().value!);
          }
          out.set(runId, now - first >= this._config.orphanGraceMillis ? { kind: 'orphan' } : { kind: 'wait' });
        }),
      );
    }
    await Promise.all(pending);
    return out;
  }

  /** After the grace period an orphan's records are taken as they are: remember that, so it is not looked up again. */
  accepted(runId: string): void {
    if (!this._known.has(runId)) this.learn(runId, {});
  }

  private _lookup(runId: string, now: number): Promise<RunIdentity | undefined> {
    const missedAt = this._misses.get(runId);
    if (missedAt !== undefined && now - missedAt < this._config.negativeCacheMillis) return Promise.resolve(undefined);
    let lookup = this._lookups.get(runId);
    if (lookup === undefined) {
      lookup = this._find(runId).finally(() => this._lookups.delete(runId));
      this._lookups.set(runId, lookup);
    }
    return lookup;
  }

  private async _find(runId: string): Promise<RunIdentity | undefined> {
    for (const find of this._config.finders) {
      try {
        const identity = await find(runId);
        if (identity !== undefined) return identity;
      } catch {
        // The server is unreachable or refused: as if it did not know the run (the grace period
        // still bounds how long its records wait).
        this._lookupFailures++;
      }
    }
    this._misses.set(runId, Date.now());
    if (this._misses.size > this._config.maxRuns) this._misses.delete(this._misses.keys().next().value!);
    return undefined;
  }
}


/** Finds runs by their `runtel.run_id` tag in every active experiment of an MLflow server. */
export function mlflowRunFinder(client: MlflowClient, experimentsCacheMillis = 5000): RunFinder {
  let experiments: { at: number; list: Promise<Map<string, string>> } | undefined;

  const listExperiments = (): Promise<Map<string, string>> => {
    if (experiments !== undefined && Date.now() - experiments.at < experimentsCacheMillis) return experiments.list;
    const list = client.searchExperiments();
    experiments = { at: Date.now(), list };
    list.catch(() => {
      if (experiments?.list === list) experiments = undefined;
    });
    return list;
  };

  return async (runtelId) => {
    const all = await listExperiments();
    const found = await client.findRunByTag([...all.keys()], RUNTEL_RUN_ID_TAG, runtelId);
    if (found === undefined) return undefined;
    const experiment = all.get(found.info.experiment_id) ?? (await client.getExperimentName(found.info.experiment_id));
    const tags = new Map((found.data.tags ?? []).map((t) => [t.key, t.value]));
    const name = found.info.run_name ?? tags.get('mlflow.runName');
    return { experiment, ...(name !== undefined ? { name } : {}) };
  };
}
