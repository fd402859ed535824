// Run events → MLflow: the shared delivery engine driving the MLflow target. Used by MlflowLogger,
// the MLflow OTel exporters, the bridge and `runtel sync --to mlflow`.

import type { RunRecord } from '../core/RunRecord.js';
import { getStringFromEnv } from '../core/env.js';
import { DeliveryBackend } from '../delivery/DeliveryBackend.js';
import type { TargetStats } from '../delivery/DeliveryBackend.js';
import type { TargetError } from '../delivery/TargetError.js';
import { MlflowClient, isMissing } from './MlflowClient.js';
import type { MlflowClientOptions } from './MlflowClient.js';
import { heartbeatInterval } from '../core/liveness.js';
import { MlflowTarget, RUNTEL_END_REASON_TAG, RUNTEL_HEARTBEAT_TAG, RUNTEL_RUN_ID_TAG, runIdFilter } from './MlflowTarget.js';
import type { MlflowRunState } from './MlflowTarget.js';

export { RUNTEL_END_REASON_TAG, RUNTEL_HEARTBEAT_TAG, RUNTEL_RUN_ID_TAG } from './MlflowTarget.js';

export interface MlflowBackendOptions extends MlflowClientOptions {
  /** Sends queued data at least this often. Default 500 (points show up in MLflow within about a second). */
  flushIntervalMillis?: number;
  /** Per log-batch request; MLflow's limits are the defaults. Lower them for stricter servers. */
  maxMetricsPerBatch?: number;
  maxParamsPerBatch?: number;
  maxTagsPerBatch?: number;
  maxEntitiesPerBatch?: number;
  maxParamValueLength?: number;
  maxTagValueLength?: number;
  /**
   * Requests in flight at once, across runs, at most. Default 4: what a PostgreSQL-backed server with
   * several workers takes best. Below it the sender keeps in flight what it measured to store the most
   * points/s: 1 on a SQLite-backed server, whose writes wait on each other (docs/services.md, bench/bridge-ingest.ts).
   */
  maxConcurrentRequests?: number;
  /** Points queued before new points are dropped (and counted). Default 1,000,000. */
  maxQueuedPoints?: number;
  /** Finished runs kept for late data before they are forgotten. Default 1000. */
  maxDoneRuns?: number;
  /** How long `shutdown()` keeps delivering. Default: env `RUNTEL_FLUSH_TIMEOUT_MILLIS`, else 5000. */
  flushTimeoutMillis?: number;
  /**
   * Look each run up by its `runtel.run_id` tag before creating it. The OTel exporters and the bridge
   * do, so that a restart never duplicates a run. Default: only for resumed runs.
   */
  findExistingRuns?: boolean;
  /** MLflow experiment for runs whose experiment is runtel's `default`. Default: env `MLFLOW_EXPERIMENT_NAME`. */
  defaultExperimentName?: string;
  /**
   * Tag each run it creates with this process's user, script and git commit (`mlflow.user`,
   * `mlflow.source.name`, `mlflow.source.type`, `mlflow.source.git.commit`), as MLflow's client does.
   * Default true; the bridge and `runtel sync` create runs for processes that ran elsewhere, and leave them out.
   */
  sourceTags?: boolean;
  /**
   * A running run's `runtel.heartbeat` tag (milliseconds since the epoch) is renewed this often: in
   * a log-batch it sends anyway, or alone when it sent nothing for the interval. `runtel reap
   * --mlflow` reads it. Default: env `RUNTEL_HEARTBEAT_INTERVAL_MILLIS`, else 30000.
   */
  heartbeatIntervalMillis?: number;
  /** Told when a request with metric points was delivered (progress). */
  onDelivered?: (points: number) => void;
  /** Told before each retry (the backend also reports the first retry of an outage). */
  onRetry?: (error: TargetError, attempt: number) => void;
}

/** Delivery counters: points sent, queued, undelivered, retries. */
export type MlflowStats = TargetStats;

export class MlflowBackend extends DeliveryBackend<MlflowRunState> {
  readonly client: MlflowClient;
  private readonly _mlflow: MlflowTarget;
  private readonly _prefetched = new Map<string, RunRecord>();

  constructor(options: MlflowBackendOptions = {}) {
    const client = new MlflowClient(options);
    const maxConcurrentRequests = options.maxConcurrentRequests ?? 4;
    const heartbeatIntervalMillis = heartbeatInterval(options.heartbeatIntervalMillis);
    const target = new MlflowTarget(client, {
      maxMetricsPerBatch: options.maxMetricsPerBatch ?? 1000,
      maxParamsPerBatch: options.maxParamsPerBatch ?? 100,
      maxTagsPerBatch: options.maxTagsPerBatch ?? 100,
      maxEntitiesPerBatch: options.maxEntitiesPerBatch ?? 1000,
      maxParamValueLength: options.maxParamValueLength ?? 6000,
      maxTagValueLength: options.maxTagValueLength ?? 8000,
      maxConcurrentRequests,
      findExistingRuns: options.findExistingRuns ?? false,
      defaultExperimentName: options.defaultExperimentName ?? getStringFromEnv('MLFLOW_EXPERIMENT_NAME'),
      sourceTags: options.sourceTags ?? true,
      heartbeatIntervalMillis,
    });
    super(target, {
      flushIntervalMillis: options.flushIntervalMillis ?? 500,
      maxConcurrentRequests,
      heartbeatIntervalMillis,
      ...(options.maxQueuedPoints !== undefined ? { maxQueuedPoints: options.maxQueuedPoints } : {}),
      ...(options.maxDoneRuns !== undefined ? { maxDoneRuns: options.maxDoneRuns } : {}),
      ...(options.flushTimeoutMillis !== undefined ? { flushTimeoutMillis: options.flushTimeoutMillis } : {}),
      ...(options.onDelivered !== undefined ? { onDelivered: options.onDelivered } : {}),
      ...(options.onRetry !== undefined ? { onRetry: options.onRetry } : {}),
    });
    this.client = client;
    this._mlflow = target;
  }

  /** The MLflow run id for a runtel run id, once created. */
  mlflowRunId(runtelId: string): Promise<string | undefined> {
    return this._mlflow.mlflowRunId(runtelId);
  }

  /** A run fetched by `prefetch` (startRun is synchronous; MLflow's state is remote). */
  resume(runId: string): RunRecord | undefined {
    return this._prefetched.get(runId);
  }

  /**
   * Fetches an MLflow run (by `runtel.run_id` tag in `experiment`, or by MLflow run id) so that
   * `startRun({ runId })` can resume it: params, tags and the step counter come back.
   */
  async prefetch(runId: string, experiment?: string): Promise<RunRecord | undefined> {
    let run;
    if (experiment !== undefined) {
      const experimentId = await this._mlflow.experimentId(experiment);
      run = (await this.client.searchRuns([experimentId], runIdFilter(runId)))[0];
    }
    if (run === undefined) {
      try {
        run = await this.client.getRun(runId);
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
    }
    const tags = Object.fromEntries((run.data.tags ?? []).map((t) => [t.key, t.value]));
    const runtelId = tags[RUNTEL_RUN_ID_TAG] ?? run.info.run_id;
    const record: RunRecord = {
      id: runtelId,
      name: run.info.run_name ?? tags['mlflow.runName'] ?? runtelId,
      experiment: await this.client.getExperimentName(run.info.experiment_id),
      status: 'running',
      startTime: Number(run.info.start_time ?? Date.now()),
      params: Object.fromEntries((run.data.params ?? []).map((p) => [p.key, p.value])),
      tags: Object.fromEntries(Object.entries(tags).filter(([k]) => !k.startsWith('mlflow.') && k !== RUNTEL_RUN_ID_TAG && k !== RUNTEL_HEARTBEAT_TAG && k !== RUNTEL_END_REASON_TAG)),
      metrics: {},
      artifacts: [],
      lastStep: Math.max(-1, ...(run.data.metrics ?? []).map((m) => Number(m.step))),
    };
    const parentMlflowId = tags['mlflow.parentRunId'];
    if (parentMlflowId !== undefined) record.parentId = parentMlflowId;
    this._prefetched.set(runtelId, record);
    return record;
  }
}
