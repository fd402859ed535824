// Run events → MLflow REST requests: the MLflow DeliveryTarget. Points, params and tags are merged
// into log-batch requests within MLflow's limits (channel `batch`); artifacts are uploaded one at a
// time through the artifact proxy (channel `artifacts`); the finish is an update-run.

import { mlflowRunUrl, publishRunLink } from '../core/runLinks.js';
import { MlflowExperiments } from './MlflowExperiments.js';
import { MlflowRunIds } from './MlflowRunIds.js';
import { execFile } from 'node:child_process';
import { userInfo } from 'node:os';
import { basename } from 'node:path';
import type { ArtifactEvent, RunEvent, RunFinishedEvent, RunStartedEvent } from '../core/events.js';
import type { FinalRunStatus } from '../core/types.js';
import { listFiles, relativeName } from '../core/artifacts.js';
import type { DeliveryContext, DeliveryTarget, StartedRun, Work } from '../delivery/DeliveryTarget.js';
import { redactUrl } from '../delivery/HttpClient.js';
import { MlflowError, isMissing, toMlflowMetricValue } from './MlflowClient.js';
import type { MlflowKeyValue, MlflowMetric, MlflowRunStatus , MlflowClient} from './MlflowClient.js';
import { TAG_PARENT_RUN_ID } from '../core/processParent.js';
import { findInheritedParent } from './parentLookup.js';

export const RUNTEL_RUN_ID_TAG = 'runtel.run_id';
/** Milliseconds since the epoch when the run last showed it was alive (see `heartbeatIntervalMillis`). */
export const RUNTEL_HEARTBEAT_TAG = 'runtel.heartbeat';
/** Why the run ended: runtel's status (`success`, `failed`, `killed`, `crashed`); MLflow's own status cannot say `crashed`. */
export const RUNTEL_END_REASON_TAG = 'runtel.end_reason';
const STATUS: Record<FinalRunStatus, MlflowRunStatus> = { success: 'FINISHED', failed: 'FAILED', killed: 'KILLED', crashed: 'FAILED' };

export interface MlflowLimits {
  maxMetricsPerBatch: number;
  maxParamsPerBatch: number;
  maxTagsPerBatch: number;
  maxEntitiesPerBatch: number;
  maxParamValueLength: number;
  maxTagValueLength: number;
}

export interface MlflowTargetConfig extends MlflowLimits {
  /** Requests of one run in flight at once. */
  maxConcurrentRequests: number;
  /** Look each run up by its `runtel.run_id` tag before creating it. */
  findExistingRuns: boolean;
  /** MLflow experiment for runs whose experiment is runtel's `default`. */
  defaultExperimentName: string | undefined;
  /** Tag created runs with this process's user, script and git commit (false where it is not the process that trains). */
  sourceTags: boolean;
  /**
   * How often a running run's `runtel.heartbeat` tag is renewed: it rides along with a log-batch once
   * a quarter interval has passed, and goes alone (`heartbeat()`) when the run sent nothing for an
   * interval, so it is never much more than 1.25 intervals old. Infinity: never (a replay of stored
   * runs is not a sign of life).
   */
  heartbeatIntervalMillis: number;
}

interface Keyed extends MlflowKeyValue {
  seq: number;
}

export interface MlflowRunState {
  readonly runtelId: string;
  started: RunStartedEvent | undefined;
  /** The MLflow run, once created. */
  mlflowId: string | undefined;
  artifactRoot: string | undefined;
  metrics: MlflowMetric[];
  /** The seq of each queued metric point (a parallel array: the points go to MLflow as they are). */
  metricSeqs: number[];
  params: Keyed[];
  /** Every param queued for this run, so none is sent twice. */
  paramValues: Map<string, string>;
  tags: Keyed[];
  /** runtel's own tags (heartbeat, end reason), one per key: no user writes them, so they need not wait for user tags in flight. */
  ownTags: Keyed[];
  artifacts: Array<ArtifactEvent & { seq: number }>;
  /** Tags are last-write-wins: one request carrying tags at a time keeps them in order. */
  tagsInflight: boolean;
  /** log-batch requests of this run in flight. */
  batchesInFlight: number;
  /** When the last `runtel.heartbeat` tag was taken for sending. */
  beatAt: number;
  /** The MLflow id of a parent in another process (RUNTEL_PARENT_RUN_ID), being looked up. */
  inheritedParent?: Promise<string | undefined>;
}


export class MlflowTarget implements DeliveryTarget<MlflowRunState> {
  readonly name = 'mlflow';
  readonly location: string;
  readonly createOperation = 'create-run';
  readonly client: MlflowClient['http'];
  readonly channels;
  readonly mlflow: MlflowClient;
  private readonly _config: MlflowTargetConfig;
  private _context!: DeliveryContext;
  private readonly _experiments: MlflowExperiments;
  /** runtel id → MLflow run id (settles once the run exists). */
  private readonly _ids = new MlflowRunIds();
  private _gitCommit: Promise<string | undefined> | undefined;

  constructor(client: MlflowClient, config: MlflowTargetConfig) {
    this.mlflow = client;
    this.client = client.http;
    this._experiments = new MlflowExperiments(client);
    this.location = `MLflow ${redactUrl(client.trackingUri)}`;
    for (const [key, value] of Object.entries(config)) {
      if (typeof value === 'number' && !(value > 0)) throw new RangeError(`${key} must be greater than 0, got ${value}`);
    }
    this._config = config;
    this.channels = [
      { name: 'batch', maxInFlightPerRun: config.maxConcurrentRequests },
      { name: 'artifacts', maxInFlightPerRun: 1 },
    ] as const;
  }

  bind(context: DeliveryContext): void {
    this._context = context;
  }

  /** The MLflow run id of a runtel run, once it exists. */
  mlflowRunId(runtelId: string): Promise<string | undefined> {
    return this._ids.get(runtelId);
  }

  start(event: RunStartedEvent, previous: MlflowRunState | undefined): StartedRun<MlflowRunState> {
    const state: MlflowRunState = previous ?? this._newState(event.runId);
    state.started = event;
    this._queueParams(state, event.params, 0);
    for (const [key, value] of Object.entries(event.tags)) state.tags.push({ key, value, seq: 0 });
    // The first batch says the run is alive now (a resumed run's old heartbeat would look stale).
    if (Number.isFinite(this._config.heartbeatIntervalMillis)) {
      state.beatAt = Date.now();
      setOwnTag(state, RUNTEL_HEARTBEAT_TAG, String(state.beatAt), 0);
    }
    const create = this._ids.remembered(state.runtelId, () => this._create(state, event), () => state.mlflowId);
    if (event.parentInherited === true && event.parentId !== undefined && !this._ids.has(event.parentId)) {
      // The search waits outside the request slots, as a parent being created here would.
      const parentId = event.parentId;
      state.inheritedParent = findInheritedParent(this.mlflow, RUNTEL_RUN_ID_TAG, this.experimentId(this._experimentName(event)), parentId).then((found) => {
        // Found once, known for the process's next children (they need not search again).
        if (found !== undefined) this._ids.learn(parentId, found);
        return found;
      });
      return { state, create, after: state.inheritedParent };
    }
    return { state, create, ...this._ids.after(event.parentId, this._config.findExistingRuns) };
  }

  adopt(runId: string): StartedRun<MlflowRunState> | undefined {
    if (!this._config.findExistingRuns) return undefined;
    const state = this._newState(runId);
    return { state, create: this._ids.remembered(state.runtelId, () => this._find(state), () => state.mlflowId) };
  }

  accept(state: MlflowRunState, event: Exclude<RunEvent, RunStartedEvent>, seq: number): boolean {
    switch (event.type) {
      case 'params':
        this._queueParams(state, event.params, seq);
        return false;
      case 'tags':
        for (const [key, value] of Object.entries(event.tags)) state.tags.push({ key, value, seq });
        return false;
      case 'metrics':
      case 'system_metrics': {
        const timestamp = Math.floor(event.timestamp);
        for (const key in event.values) {
          state.metrics.push({ key, value: toMlflowMetricValue(event.values[key]!), timestamp, step: event.step });
          state.metricSeqs.push(seq);
        }
        return state.metrics.length >= this._config.maxMetricsPerBatch;
      }
      case 'artifact':
        state.artifacts.push({ ...event, seq });
        return false;
      case 'run_finished':
        // MLflow's FAILED cannot say crashed: the end reason goes first, with whatever is still queued.
        setOwnTag(state, RUNTEL_END_REASON_TAG, event.status, seq);
        return true;
    }
  }

  take(state: MlflowRunState, channel: string): Work | undefined {
    return channel === 'batch' ? this._takeBatch(state) : this._takeArtifact(state);
  }

  hasQueued(state: MlflowRunState): boolean {
    return state.metrics.length > 0 || state.params.length > 0 || state.tags.length > 0 || state.ownTags.length > 0 || state.artifacts.length > 0;
  }

  queuedSeq(state: MlflowRunState): number {
    return Math.min(state.metricSeqs[0] ?? Infinity, state.params[0]?.seq ?? Infinity, state.tags[0]?.seq ?? Infinity, minSeq(state.ownTags), state.artifacts[0]?.seq ?? Infinity);
  }

  finish(state: MlflowRunState, event: RunFinishedEvent): Work {
    return {
      operation: 'update-run',
      points: 0,
      seq: Infinity,
      send: () => this.mlflow.updateRun({ run_id: state.mlflowId!, status: STATUS[event.status], end_time: Math.floor(event.endTime) }),
      killsRun: gone,
    };
  }

  /** A log-batch with only the `runtel.heartbeat` tag, for a run that sent nothing for an interval. */
  heartbeat(state: MlflowRunState): { channel: string; work: Work } | undefined {
    if (state.mlflowId === undefined || !Number.isFinite(this._config.heartbeatIntervalMillis)) return undefined;
    state.beatAt = Date.now();
    const body = { run_id: state.mlflowId, tags: [{ key: RUNTEL_HEARTBEAT_TAG, value: String(state.beatAt) }] };
    return { channel: 'batch', work: { operation: 'heartbeat', points: 0, seq: Infinity, send: () => this.mlflow.logBatch(body), killsRun: gone } };
  }

  drop(state: MlflowRunState): number {
    const dropped = state.metrics.length;
    state.metrics = [];
    state.metricSeqs = [];
    state.params = [];
    state.tags = [];
    state.ownTags = [];
    state.artifacts = [];
    return dropped;
  }

  // --- requests ---

  // Params are write-once and metrics append-only: any order is fine. Tags are last-write-wins, so
  // one request carrying tags at a time keeps them in order.
  private _takeBatch(state: MlflowRunState): Work | undefined {
    const c = this._config;
    const now = Date.now();
    // The heartbeat rides along: a run that logs steadily needs no request of its own.
    const beat = now - state.beatAt >= c.heartbeatIntervalMillis / 4;
    // Metrics alone that do not fill a batch wait while another of the run's batches is in flight:
    // its answer brings the next data (a Collector sends more once answered), and MLflow takes one
    // full request faster than two part-filled ones. With nothing in flight they go at once.
    if (state.batchesInFlight > 0 && state.metrics.length < c.maxMetricsPerBatch && state.params.length === 0 && state.ownTags.length === 0 && (state.tagsInflight || state.tags.length === 0)) return undefined;
    const own = state.ownTags.splice(0);
    const ownCount = own.length + (beat && !own.some((t) => t.key === RUNTEL_HEARTBEAT_TAG) ? 1 : 0);
    const params = state.params.splice(0, c.maxParamsPerBatch);
    const tags = state.tagsInflight ? [] : state.tags.splice(0, c.maxTagsPerBatch - ownCount);
    const room = Math.min(c.maxMetricsPerBatch, c.maxEntitiesPerBatch - params.length - tags.length - ownCount);
    const metrics = state.metrics.splice(0, room);
    const seqs = state.metricSeqs.splice(0, metrics.length);
    if (metrics.length === 0 && params.length === 0 && tags.length === 0 && own.length === 0) return undefined;
    const sentTags = tags.map((t) => this._limit(t, c.maxTagValueLength, 'tag'));
    for (const t of own) sentTags.push({ key: t.key, value: t.value });
    if (beat) {
      state.beatAt = now;
      // One key once per batch (a queued start heartbeat may be in it already).
      const queued = sentTags.findIndex((t) => t.key === RUNTEL_HEARTBEAT_TAG);
      if (queued === -1) sentTags.push({ key: RUNTEL_HEARTBEAT_TAG, value: String(now) });
      else sentTags[queued] = { key: RUNTEL_HEARTBEAT_TAG, value: String(now) };
    }
    const carriesTags = tags.length > 0;
    if (carriesTags) state.tagsInflight = true;
    state.batchesInFlight++;
    const release = (): void => {
      state.batchesInFlight--;
      if (carriesTags) state.tagsInflight = false;
    };
    const body = {
      run_id: state.mlflowId!,
      ...(metrics.length > 0 ? { metrics } : {}),
      ...(params.length > 0 ? { params: params.map((p) => this._limit(p, c.maxParamValueLength, 'param')) } : {}),
      ...(sentTags.length > 0 ? { tags: sentTags } : {}),
    };
    return {
      operation: 'log-batch',
      points: metrics.length,
      seq: Math.min(seqs[0] ?? Infinity, params[0]?.seq ?? Infinity, tags[0]?.seq ?? Infinity, minSeq(own)),
      send: () => this.mlflow.logBatch(body),
      killsRun: gone,
      onSent: release,
      onFailed: release,
    };
  }

  private _takeArtifact(state: MlflowRunState): Work | undefined {
    const artifact = state.artifacts.shift();
    if (artifact === undefined) return undefined;
    return {
      operation: 'upload-artifact',
      points: 0,
      seq: artifact.seq,
      send: () => this._upload(state, artifact),
    };
  }

  private async _upload(state: MlflowRunState, artifact: ArtifactEvent): Promise<void> {
    if (state.artifactRoot === undefined) {
      this._context.reportOnce('no-artifact-proxy', 'upload-artifact', new Error(`${this.location}: the run's artifact_uri is not mlflow-artifacts:/ (start mlflow server with artifact serving): artifacts stay in the local run log`));
      return;
    }
    const files = artifact.kind === 'directory' ? listFiles(artifact.path).map((f) => [f, `${artifact.name}/${relativeName(artifact.path, f)}`] as const) : [[artifact.path, artifact.name] as const];
    for (const [file, name] of files) await this.mlflow.uploadArtifact(`${state.artifactRoot}/${name}`, file);
  }

  private _limit(kv: Keyed, maxValue: number, what: string): MlflowKeyValue {
    if (kv.value.length <= maxValue) return { key: kv.key, value: kv.value };
    // As MLflow's own server does by default (MLFLOW_TRUNCATE_LONG_VALUES).
    this._context.reportOnce(`truncate-${what}`, 'log-batch', new Error(`${what} ${JSON.stringify(kv.key)} is ${kv.value.length} characters; truncated to this server's limit of ${maxValue}`));
    return { key: kv.key, value: kv.value.slice(0, maxValue) };
  }

  // --- runs ---

  private _newState(runtelId: string): MlflowRunState {
    return {
      runtelId, started: undefined, mlflowId: undefined, artifactRoot: undefined, metrics: [], metricSeqs: [], params: [], paramValues: new Map(), tags: [], ownTags: [], artifacts: [], tagsInflight: false, batchesInFlight: 0, beatAt: 0,
    };
  }

  // MLflow answers 400 to a batch that names a param twice: a param already queued or sent with the
  // same value (a replay, a resent OTLP batch) is not queued again.
  private _queueParams(state: MlflowRunState, params: Record<string, string>, seq: number): void {
    for (const [key, value] of Object.entries(params)) {
      if (state.paramValues.get(key) === value) continue;
      state.paramValues.set(key, value);
      state.params.push({ key, value, seq });
    }
  }

  private async _create(state: MlflowRunState, event: RunStartedEvent): Promise<void> {
    // Spawned now, read once the run's lookups are done.
    const commit = this._config.sourceTags ? this._commit() : undefined;
    const experimentId = await this.experimentId(this._experimentName(event));
    // The first run in an experiment this target has just created cannot be there yet: one request less
    // (a new experiment on MLflow's PostgreSQL store answers its first runs/search in about 60 ms).
    const inNewExperiment = this._experiments.takeCreated(experimentId);
    if ((this._config.findExistingRuns && !inNewExperiment) || event.resumed === true) {
      // A fresh runtel id is no MLflow run id: only a run resumed by one is looked up by it too.
      const existing = await this.findRun(experimentId, event.runId, event.resumed === true);
      if (existing !== undefined) {
        if (event.resumed === true && existing.status !== 'RUNNING') await this.mlflow.updateRun({ run_id: existing.runId, status: 'RUNNING' });
        state.mlflowId = existing.runId;
        state.artifactRoot = artifactRoot(existing.artifactUri);
        this._publishLink(state, experimentId);
        return;
      }
    }
    const parentId = event.parentId === undefined ? undefined : await (state.inheritedParent ?? this._parentRunId(experimentId, event.parentId));
    const tags: MlflowKeyValue[] = [{ key: 'mlflow.runName', value: event.name }, { key: RUNTEL_RUN_ID_TAG, value: event.runId }];
    if (this._config.sourceTags) {
      tags.push({ key: 'mlflow.user', value: safeUser() }, { key: 'mlflow.source.name', value: basename(process.argv[1] ?? 'node') }, { key: 'mlflow.source.type', value: 'LOCAL' });
    }
    if (parentId !== undefined) tags.push({ key: 'mlflow.parentRunId', value: parentId });
    else if (event.parentId !== undefined) {
      // Top-level, but the tree can still be rebuilt from the tag.
      tags.push({ key: TAG_PARENT_RUN_ID, value: event.parentId });
      this._context.reportOnce('parent-not-found', 'find-parent', new Error(`${this.location}: parent run ${event.parentId} of run ${event.runId} (${JSON.stringify(event.name)}) has no MLflow run tagged ${RUNTEL_RUN_ID_TAG}; the run is created top-level with the tag ${TAG_PARENT_RUN_ID}`));
    }
    const sha = await commit;
    if (sha !== undefined) tags.push({ key: 'mlflow.source.git.commit', value: sha });
    const info = await this.mlflow.createRun(
      { experiment_id: experimentId, run_name: event.name, start_time: Math.floor(event.startTime), tags },
      // The runtel.run_id tag goes in the create request, so a run an unanswered attempt made is found by it.
      { findCreated: async () => (await this.mlflow.searchRuns([experimentId], runIdFilter(event.runId), 'ALL'))[0]?.info },
    );
    state.mlflowId = info.run_id;
    state.artifactRoot = artifactRoot(info.artifact_uri);
    this._publishLink(state, experimentId);
  }

  private _publishLink(state: MlflowRunState, experimentId: string): void {
    const url = mlflowRunUrl(this.mlflow.trackingUri, experimentId, state.mlflowId!);
    if (url !== undefined) publishRunLink({ runId: state.runtelId, label: 'MLflow', url });
  }

  private _experimentName(event: RunStartedEvent): string {
    return event.experiment === 'default' && this._config.defaultExperimentName !== undefined ? this._config.defaultExperimentName : event.experiment;
  }

  /** An adopted run: found by its tag in any experiment, never created (its start is not known). */
  private async _find(state: MlflowRunState): Promise<void> {
    const run = await this.mlflow.findRunByTag([...(await this.mlflow.searchExperiments()).keys()], RUNTEL_RUN_ID_TAG, state.runtelId);
    if (run === undefined) throw new MlflowError(404, 'RESOURCE_DOES_NOT_EXIST', `no MLflow run is tagged ${RUNTEL_RUN_ID_TAG}=${state.runtelId}, and its start was not seen`, undefined, 'find-run');
    state.mlflowId = run.info.run_id;
    state.artifactRoot = artifactRoot(run.info.artifact_uri);
  }

  // The parent's MLflow id: created by this target, or (exporters, bridge, sync) found by its tag.
  private async _parentRunId(experimentId: string, parentRuntelId: string): Promise<string | undefined> {
    const known = await this._ids.settled(parentRuntelId);
    if (known !== undefined || !this._config.findExistingRuns) return known;
    return (await this.findRun(experimentId, parentRuntelId))?.runId;
  }

  /** A run by its runtel.run_id tag in one experiment, or (`byMlflowId`) by MLflow run id (resuming by MLflow id). */
  async findRun(experimentId: string, runtelId: string, byMlflowId = true): Promise<{ runId: string; status: MlflowRunStatus; artifactUri: string | undefined } | undefined> {
    const found = await this.mlflow.searchRuns([experimentId], runIdFilter(runtelId));
    let info = found[0]?.info;
    if (info === undefined && byMlflowId && /^[0-9a-f]{32}$/.test(runtelId)) {
      try {
        info = (await this.mlflow.getRun(runtelId)).info;
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
    return info === undefined ? undefined : { runId: info.run_id, status: info.status, artifactUri: info.artifact_uri };
  }

  experimentId(name: string): Promise<string> {
    return this._experiments.id(name);
  }

  private _commit(): Promise<string | undefined> {
    this._gitCommit ??= new Promise((resolve) => {
      execFile('git', ['rev-parse', 'HEAD'], { timeout: 2000 }, (error, stdout) => resolve(error ? undefined : stdout.trim() || undefined));
    });
    return this._gitCommit;
  }
}

/** Queues one of runtel's own tags; a newer value of the key replaces one still queued (keeping the older seq). */
function setOwnTag(state: MlflowRunState, key: string, value: string, seq: number): void {
  const queued = state.ownTags.find((t) => t.key === key);
  if (queued === undefined) state.ownTags.push({ key, value, seq });
  else queued.value = value;
}

function minSeq(keyed: readonly Keyed[]): number {
  let low = Infinity;
  for (const k of keyed) if (k.seq < low) low = k.seq;
  return low;
}

export function runIdFilter(runtelId: string): string {
  return `tags.\`${RUNTEL_RUN_ID_TAG}\` = '${runtelId.replace(/'/g, "\\'")}'`;
}

/** A run that is gone (deleted) or no longer takes data: nothing more of it can be delivered. */
function gone(error: unknown): boolean {
  return error instanceof MlflowError && (error.errorCode === 'RESOURCE_DOES_NOT_EXIST' || (error.errorCode === 'INVALID_PARAMETER_VALUE' && /active/.test(error.message)));
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
