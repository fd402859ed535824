// Run events → MLflow REST. `onEvent` only enqueues; a background sender coalesces points into
// log-batch requests within MLflow's limits. Shared by MlflowLogger, the MLflow OTel exporters and
// the bridge.

import { execFile } from 'node:child_process';
import { userInfo } from 'node:os';
import { basename } from 'node:path';
import type { RunBackend } from '../core/RunBackend.js';
import type { ArtifactEvent, RunEvent, RunStartedEvent } from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import type { RunRecord } from '../core/RunRecord.js';
import { listFiles, relativeName } from '../core/artifacts.js';
import { getStringFromEnv } from '../core/env.js';
import { MlflowClient, MlflowError } from './MlflowClient.js';
import type { MlflowClientOptions, MlflowKeyValue, MlflowMetric, MlflowRunStatus } from './MlflowClient.js';

export interface MlflowBackendOptions extends MlflowClientOptions {
  /** Sends queued data at least this often. Default 500 (points show up in MLflow within about a second). */
  flushIntervalMillis?: number;
  /** Per log-batch request; MLflow's limits are the defaults. Lower them for stricter servers. */
  maxMetricsPerBatch?: number;
  maxParamsPerBatch?: number;
  maxTagsPerBatch?: number;
  maxEntitiesPerBatch?: number;
  maxKeyLength?: number;
  maxParamValueLength?: number;
  maxTagValueLength?: number;
  /** Requests in flight at once, across runs. Default 2: one is sent while the server works on the other (more only queues on a SQLite-backed server). */
  maxConcurrentRequests?: number;
  /** Points queued before new points are dropped (and counted). Default 1,000,000. */
  maxQueuedPoints?: number;
  /**
   * Look each run up by its `runtel.run_id` tag before creating it. The OTel exporters and the bridge
   * do, so that a restart never duplicates a run. Default: only for resumed runs.
   */
  findExistingRuns?: boolean;
  /** MLflow experiment for runs whose experiment is runtel's `default`. Default: env `MLFLOW_EXPERIMENT_NAME`. */
  defaultExperimentName?: string;
}

const STATUS: Record<string, MlflowRunStatus> = { success: 'FINISHED', failed: 'FAILED', killed: 'KILLED' };
export const RUNTEL_RUN_ID_TAG = 'runtel.run_id';

interface RunState {
  runtelId: string;
  /** Resolves to the MLflow run id (and artifact root) once the run exists. */
  created: Promise<{ runId: string; artifactRoot: string | undefined } | undefined> | undefined;
  started: RunStartedEvent | undefined;
  metrics: MlflowMetric[];
  params: MlflowKeyValue[];
  /** Every param queued for this run, so none is sent twice. */
  paramValues: Map<string, string>;
  tags: MlflowKeyValue[];
  artifacts: ArtifactEvent[];
  finish: { status: MlflowRunStatus; endTime: number } | undefined;
  inflight: number;
  /** Tags are last-write-wins: one request carrying tags at a time keeps them in order. */
  tagsInflight: boolean;
  artifactInflight: boolean;
  /** A permanent failure (deleted run, rejected create): later data is dropped and counted. */
  dead: boolean;
  done: boolean;
}

export interface MlflowStats {
  /** Metric points MLflow accepted. */
  sentPoints: number;
  /** Points queued, not yet accepted. */
  queuedPoints: number;
  /** Points given up on (queue full, permanent error, dead run); the JSONL store still has them. */
  undeliveredPoints: number;
  /** Requests retried after 429, 5xx or a connection error. */
  retries: number;
}

export class MlflowBackend implements RunBackend {
  readonly name = 'mlflow';
  readonly client: MlflowClient;
  private readonly _runs = new Map<string, RunState>();
  private readonly _experiments = new Map<string, Promise<string>>();
  private readonly _o: Required<Omit<MlflowBackendOptions, keyof MlflowClientOptions | 'defaultExperimentName'>>;
  private readonly _defaultExperiment: string | undefined;
  private _report: (failure: BackendFailure) => void = () => undefined;
  private _timer: NodeJS.Timeout | undefined;
  private _inflight = 0;
  private _queuedPoints = 0;
  private readonly _stats: MlflowStats = { sentPoints: 0, queuedPoints: 0, undeliveredPoints: 0, retries: 0 };
  private readonly _idle = new Set<() => void>();
  private _gitCommit: Promise<string | undefined> | undefined;
  private readonly _reported = new Set<string>();
  private readonly _prefetched = new Map<string, RunRecord>();

  constructor(options: MlflowBackendOptions = {}) {
    this.client = new MlflowClient({ ...options, onRetry: () => this._stats.retries++ });
    this._o = {
      flushIntervalMillis: options.flushIntervalMillis ?? 500,
      maxMetricsPerBatch: options.maxMetricsPerBatch ?? 1000,
      maxParamsPerBatch: options.maxParamsPerBatch ?? 100,
      maxTagsPerBatch: options.maxTagsPerBatch ?? 100,
      maxEntitiesPerBatch: options.maxEntitiesPerBatch ?? 1000,
      maxKeyLength: options.maxKeyLength ?? 250,
      maxParamValueLength: options.maxParamValueLength ?? 6000,
      maxTagValueLength: options.maxTagValueLength ?? 8000,
      maxConcurrentRequests: options.maxConcurrentRequests ?? 2,
      maxQueuedPoints: options.maxQueuedPoints ?? 1_000_000,
      findExistingRuns: options.findExistingRuns ?? false,
    };
    for (const [key, value] of Object.entries(this._o)) {
      if (typeof value === 'number' && !(value > 0)) throw new RangeError(`${key} must be greater than 0`);
    }
    this._defaultExperiment = options.defaultExperimentName ?? getStringFromEnv('MLFLOW_EXPERIMENT_NAME');
  }

  bindFailureReporter(report: (failure: BackendFailure) => void): void {
    this._report = report;
  }

  stats(): MlflowStats {
    return { ...this._stats, queuedPoints: this._queuedPoints };
  }

  /** The MLflow run id for a runtel run id, once created. */
  async mlflowRunId(runtelId: string): Promise<string | undefined> {
    return (await this._runs.get(runtelId)?.created)?.runId;
  }

  onEvent(event: RunEvent): void {
    const run = this._state(event.runId);
    if (run.dead) {
      if (event.type === 'metrics') this._stats.undeliveredPoints += Object.keys(event.values).length;
      return;
    }
    switch (event.type) {
      case 'run_started':
        run.started = event;
        run.done = false;
        run.finish = undefined;
        this._queueParams(run, event.params);
        for (const [key, value] of Object.entries(event.tags)) run.tags.push({ key, value });
        run.created = this._createRun(run, event);
        break;
      case 'params':
        this._queueParams(run, event.params);
        break;
      case 'tags':
        for (const [key, value] of Object.entries(event.tags)) run.tags.push({ key, value });
        break;
      case 'metrics': {
        let accepted = 0;
        for (const key in event.values) {
          if (this._queuedPoints + accepted >= this._o.maxQueuedPoints) {
            this._stats.undeliveredPoints++;
            this._reportOnce('queue-full', 'enqueue', new Error(`MLflow queue full (${this._o.maxQueuedPoints} points): points are dropped here and kept in the local run log`));
            continue;
          }
          run.metrics.push({ key, value: encodeMetricValue(event.values[key]!), timestamp: Math.floor(event.timestamp), step: event.step });
          accepted++;
        }
        this._queuedPoints += accepted;
        if (run.metrics.length >= this._o.maxMetricsPerBatch) this._pump();
        break;
      }
      case 'artifact':
        run.artifacts.push(event);
        break;
      case 'run_finished':
        run.finish = { status: STATUS[event.status]!, endTime: event.endTime };
        this._pump();
        return;
    }
    this._timer ??= setTimeout(() => {
      this._timer = undefined;
      this._pump();
    }, this._o.flushIntervalMillis);
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
      const experimentId = await this._experimentId(experiment);
      run = (await this.client.searchRuns([experimentId], `tags.\`${RUNTEL_RUN_ID_TAG}\` = '${runId}'`))[0];
    }
    if (run === undefined) {
      try {
        run = await this.client.getRun(runId);
      } catch (error) {
        if (error instanceof MlflowError && error.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
        throw error;
      }
    }
    const tags = Object.fromEntries((run.data.tags ?? []).map((t) => [t.key, t.value]));
    const runtelId = tags[RUNTEL_RUN_ID_TAG] ?? run.info.run_id;
    const experimentName = await this.client.getExperimentName(run.info.experiment_id);
    const record: RunRecord = {
      id: runtelId,
      name: run.info.run_name ?? tags['mlflow.runName'] ?? runtelId,
      experiment: experimentName,
      status: 'running',
      startTime: Number(run.info.start_time ?? Date.now()),
      params: Object.fromEntries((run.data.params ?? []).map((p) => [p.key, p.value])),
      tags: Object.fromEntries(Object.entries(tags).filter(([k]) => !k.startsWith('mlflow.') && k !== RUNTEL_RUN_ID_TAG)),
      metrics: {},
      artifacts: [],
      lastStep: Math.max(-1, ...(run.data.metrics ?? []).map((m) => Number(m.step))),
    };
    const parentMlflowId = tags['mlflow.parentRunId'];
    if (parentMlflowId !== undefined) record.parentId = parentMlflowId;
    this._prefetched.set(runtelId, record);
    return record;
  }

  async forceFlush(): Promise<void> {
    clearTimeout(this._timer);
    this._timer = undefined;
    this._pump();
    if (this._isIdle()) return;
    await new Promise<void>((resolve) => this._idle.add(resolve));
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    await this.client.close();
  }

  // --- sender ---

  // MLflow answers 400 to a batch that names a param twice: a param already queued or sent with the
  // same value (a replay, a resent OTLP batch) is not queued again.
  private _queueParams(run: RunState, params: Record<string, string>): void {
    for (const [key, value] of Object.entries(params)) {
      if (run.paramValues.get(key) === value) continue;
      run.paramValues.set(key, value);
      run.params.push({ key, value });
    }
  }

  private _state(runtelId: string): RunState {
    let run = this._runs.get(runtelId);
    if (run === undefined) {
      run = {
        runtelId, created: undefined, started: undefined, metrics: [], params: [], paramValues: new Map(), tags: [], artifacts: [],
        finish: undefined, inflight: 0, tagsInflight: false, artifactInflight: false, dead: false, done: false,
      };
      this._runs.set(runtelId, run);
    }
    return run;
  }

  private _isIdle(): boolean {
    if (this._inflight > 0) return false;
    for (const run of this._runs.values()) {
      if (run.dead || run.created === undefined) continue;
      if (run.metrics.length > 0 || run.params.length > 0 || run.tags.length > 0 || run.artifacts.length > 0 || run.finish !== undefined) return false;
    }
    return true;
  }

  /** Starts as many requests as the concurrency bound allows. */
  private _pump(): void {
    for (const run of this._runs.values()) {
      if (this._inflight >= this._o.maxConcurrentRequests) return;
      if (run.dead || run.created === undefined) continue;
      while (this._inflight < this._o.maxConcurrentRequests && this._startNext(run)) {
        // keep starting requests for this run
      }
    }
    if (this._isIdle()) {
      for (const resolve of this._idle) resolve();
      this._idle.clear();
    }
  }

  private _startNext(run: RunState): boolean {
    const hasEntities = run.params.length > 0 || run.tags.length > 0;
    if (run.metrics.length > 0 || run.params.length > 0 || (run.tags.length > 0 && !run.tagsInflight)) {
      // Params are write-once and metrics append-only: any order is fine. Tags are last-write-wins,
      // so one request carrying tags at a time keeps them in order.
      const params = run.params.splice(0, this._o.maxParamsPerBatch);
      const tags = run.tagsInflight ? [] : run.tags.splice(0, this._o.maxTagsPerBatch);
      const room = Math.min(this._o.maxMetricsPerBatch, this._o.maxEntitiesPerBatch - params.length - tags.length);
      const metrics = run.metrics.splice(0, room);
      if (metrics.length === 0 && params.length === 0 && tags.length === 0) return false;
      const carriesTags = tags.length > 0;
      if (carriesTags) run.tagsInflight = true;
      this._track(run, this._sendBatch(run, metrics, params, tags), () => {
        if (carriesTags) run.tagsInflight = false;
      });
      return true;
    }
    if (run.artifacts.length > 0 && !run.artifactInflight) {
      const artifact = run.artifacts.shift()!;
      run.artifactInflight = true;
      this._track(run, this._upload(run, artifact), () => {
        run.artifactInflight = false;
      });
      return true;
    }
    if (run.finish !== undefined && run.inflight === 0 && !hasEntities && run.artifacts.length === 0) {
      const finish = run.finish;
      run.finish = undefined;
      this._track(run, this._finishRun(run, finish.status, finish.endTime), () => {
        run.done = true;
      });
      return true;
    }
    return false;
  }

  private _track(run: RunState, work: Promise<void>, after: () => void): void {
    this._inflight++;
    run.inflight++;
    void work.finally(() => {
      this._inflight--;
      run.inflight--;
      after();
      this._pump();
    });
  }

  private async _sendBatch(run: RunState, metrics: MlflowMetric[], params: MlflowKeyValue[], tags: MlflowKeyValue[]): Promise<void> {
    const created = await run.created;
    if (created === undefined) return this._drop(run, metrics.length);
    try {
      await this.client.logBatch({
        run_id: created.runId,
        ...(metrics.length > 0 ? { metrics } : {}),
        ...(params.length > 0 ? { params: params.map((p) => this._limit(p, this._o.maxParamValueLength, 'param')) } : {}),
        ...(tags.length > 0 ? { tags: tags.map((t) => this._limit(t, this._o.maxTagValueLength, 'tag')) } : {}),
      });
      this._stats.sentPoints += metrics.length;
      this._queuedPoints -= metrics.length;
    } catch (error) {
      this._queuedPoints -= metrics.length;
      this._stats.undeliveredPoints += metrics.length;
      this._fail(run, 'log-batch', error);
    }
  }

  private _limit(kv: MlflowKeyValue, maxValue: number, what: string): MlflowKeyValue {
    if (kv.value.length <= maxValue) return kv;
    // As MLflow's own server does by default (MLFLOW_TRUNCATE_LONG_VALUES).
    this._reportOnce(`truncate-${what}`, 'log-batch', new Error(`${what} ${JSON.stringify(kv.key)} is ${kv.value.length} characters; truncated to this server's limit of ${maxValue}`));
    return { key: kv.key, value: kv.value.slice(0, maxValue) };
  }

  private async _createRun(run: RunState, event: RunStartedEvent): Promise<{ runId: string; artifactRoot: string | undefined } | undefined> {
    try {
      const experimentName = event.experiment === 'default' && this._defaultExperiment !== undefined ? this._defaultExperiment : event.experiment;
      const experimentId = await this._experimentId(experimentName);
      if (this._o.findExistingRuns || event.resumed === true) {
        const existing = await this._findRun(experimentId, event.runId);
        if (existing !== undefined) {
          if (event.resumed === true && existing.status !== 'RUNNING') await this.client.updateRun({ run_id: existing.runId, status: 'RUNNING' });
          return { runId: existing.runId, artifactRoot: artifactRoot(existing.artifactUri) };
        }
      }
      const parentId = event.parentId === undefined ? undefined : await this._parentRunId(experimentId, event.parentId);
      const tags: MlflowKeyValue[] = [
        { key: 'mlflow.runName', value: event.name },
        { key: 'mlflow.user', value: safeUser() },
        { key: 'mlflow.source.name', value: basename(process.argv[1] ?? 'node') },
        { key: 'mlflow.source.type', value: 'LOCAL' },
        { key: RUNTEL_RUN_ID_TAG, value: event.runId },
      ];
      if (parentId !== undefined) tags.push({ key: 'mlflow.parentRunId', value: parentId });
      const commit = await this._commit();
      if (commit !== undefined) tags.push({ key: 'mlflow.source.git.commit', value: commit });
      const info = await this.client.createRun(
        { experiment_id: experimentId, run_name: event.name, start_time: Math.floor(event.startTime), tags },
        // The runtel.run_id tag goes in the create request, so a run an unanswered attempt made is found by it.
        { findCreated: async () => (await this.client.searchRuns([experimentId], `tags.\`${RUNTEL_RUN_ID_TAG}\` = '${event.runId}'`, 'ALL'))[0]?.info },
      );
      return { runId: info.run_id, artifactRoot: artifactRoot(info.artifact_uri) };
    } catch (error) {
      this._fail(run, 'create-run', error);
      return undefined;
    } finally {
      // Data queued before the run existed can go now.
      setImmediate(() => this._pump());
    }
  }

  // The parent's MLflow id: created by this backend, or (exporters, bridge, sync) found by its tag.
  private async _parentRunId(experimentId: string, parentRuntelId: string): Promise<string | undefined> {
    const known = await this.mlflowRunId(parentRuntelId);
    if (known !== undefined || !this._o.findExistingRuns) return known;
    return (await this._findRun(experimentId, parentRuntelId))?.runId;
  }

  private async _findRun(experimentId: string, runtelId: string): Promise<{ runId: string; status: MlflowRunStatus; artifactUri: string | undefined } | undefined> {
    const found = await this.client.searchRuns([experimentId], `tags.\`${RUNTEL_RUN_ID_TAG}\` = '${runtelId}'`);
    let info = found[0]?.info;
    if (info === undefined && /^[0-9a-f]{32}$/.test(runtelId)) {
      // Resuming by MLflow run id.
      try {
        info = (await this.client.getRun(runtelId)).info;
      } catch (error) {
        if (!(error instanceof MlflowError) || error.errorCode !== 'RESOURCE_DOES_NOT_EXIST') throw error;
      }
    }
    return info === undefined ? undefined : { runId: info.run_id, status: info.status, artifactUri: info.artifact_uri };
  }

  private _experimentId(name: string): Promise<string> {
    let id = this._experiments.get(name);
    if (id === undefined) {
      id = this.client.getOrCreateExperiment(name);
      this._experiments.set(name, id);
      // A failure is not cached: the next run tries again.
      id.catch(() => this._experiments.delete(name));
    }
    return id;
  }

  private async _upload(run: RunState, artifact: ArtifactEvent): Promise<void> {
    const created = await run.created;
    if (created === undefined) return;
    if (created.artifactRoot === undefined) {
      this._reportOnce('no-artifact-proxy', 'upload-artifact', new Error("the run's artifact_uri is not mlflow-artifacts:/ (start mlflow server with artifact serving): artifacts stay in the local run log"));
      return;
    }
    try {
      const files = artifact.kind === 'directory' ? listFiles(artifact.path).map((f) => [f, `${artifact.name}/${relativeName(artifact.path, f)}`] as const) : [[artifact.path, artifact.name] as const];
      for (const [file, name] of files) await this.client.uploadArtifact(`${created.artifactRoot}/${name}`, file);
    } catch (error) {
      this._fail(run, 'upload-artifact', error, false);
    }
  }

  private async _finishRun(run: RunState, status: MlflowRunStatus, endTime: number): Promise<void> {
    const created = await run.created;
    if (created === undefined) return;
    try {
      await this.client.updateRun({ run_id: created.runId, status, end_time: Math.floor(endTime) });
    } catch (error) {
      this._fail(run, 'update-run', error);
    }
  }

  private _drop(run: RunState, points: number): void {
    this._queuedPoints -= points;
    this._stats.undeliveredPoints += points;
    void run;
  }

  /** A permanent failure: reported once per kind; a run that is gone is marked dead. */
  private _fail(run: RunState, operation: string, error: unknown, killsRun = true): void {
    const code = error instanceof MlflowError ? error.errorCode : 'ERROR';
    this._reportOnce(`${operation}:${code}`, operation, error);
    const gone = error instanceof MlflowError && (error.errorCode === 'RESOURCE_DOES_NOT_EXIST' || (error.errorCode === 'INVALID_PARAMETER_VALUE' && /active/.test(error.message)));
    if (killsRun && (gone || operation === 'create-run')) {
      run.dead = true;
      const dropped = run.metrics.length;
      run.metrics = [];
      run.params = [];
      run.tags = [];
      run.artifacts = [];
      run.finish = undefined;
      this._drop(run, dropped);
    }
  }

  private _reportOnce(kind: string, operation: string, error: unknown): void {
    if (this._reported.has(kind)) return;
    this._reported.add(kind);
    this._report({ backend: this.name, operation, error });
  }

  private _commit(): Promise<string | undefined> {
    this._gitCommit ??= new Promise((resolve) => {
      execFile('git', ['rev-parse', 'HEAD'], { timeout: 2000 }, (error, stdout) => resolve(error ? undefined : stdout.trim() || undefined));
    });
    return this._gitCommit;
  }
}

/** NaN and ±Infinity as the quoted strings MLflow's JSON parser accepts. */
export function encodeMetricValue(value: number): number | string {
  return Number.isFinite(value) ? value : String(value);
}

function artifactRoot(uri: string | undefined): string | undefined {
  const match = uri === undefined ? null : /^mlflow-artifacts:(?:\/\/[^/]*)?\/(.+)$/.exec(uri);
  return match?.[1]?.replace(/\/+$/, '');
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
