// Run events → W&B. `onEvent` only enqueues; a background sender per run creates the run with
// UpsertBucket, streams history rows and the summary on file_stream (one request at a time, so line
// offsets stay exact), uploads files, sends heartbeats and finally `complete` with the exit code.
// Shared by WandbLogger, the W&B OTel exporters and `runtel sync --to wandb` (replay mode).

import type { RunBackend } from '../core/RunBackend.js';
import type { ArtifactEvent, ErrorInfo, RunEvent, RunStartedEvent } from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import type { FinalRunStatus } from '../core/types.js';
import { listFiles, relativeName } from '../core/artifacts.js';
import { getStringFromEnv } from '../core/env.js';
import { WandbClient, WandbError } from './WandbClient.js';
import type { WandbClientOptions } from './WandbClient.js';
import { MAX_LINE_BYTES, MAX_REQUEST_BYTES, RunHistory, stepMetricDefinitions, unflattenParams, wandbRunId } from './history.js';
import { parseExtendedJson } from './extendedJson.js';
import type { UpsertBucketInput } from './WandbClient.js';

export type WandbMode = 'online' | 'offline' | 'disabled';

export interface WandbBackendOptions extends WandbClientOptions {
  /** W&B project for every run. Default: env `WANDB_PROJECT`, else the runtel experiment (`default` → `uncategorized`). */
  project?: string;
  /** Default: env `WANDB_ENTITY`, else the key's default entity (the `viewer` query). */
  entity?: string;
  /** Group of runs that are not nested. Default: env `WANDB_RUN_GROUP`. Nested runs are grouped by their root run. */
  group?: string;
  /** Job type of runs that are not nested. Default: env `WANDB_JOB_TYPE`. */
  jobType?: string;
  /**
   * Default: env `WANDB_MODE`. `offline` and `disabled` send nothing (the JSONL store keeps the run;
   * upload it later with `runtel sync --to wandb`).
   */
  mode?: WandbMode;
  /** Sends queued rows and the summary at least this often. Default 2000. */
  flushIntervalMillis?: number;
  /** A running run with nothing else to send sends a heartbeat this often, so W&B does not mark it crashed. Default 30000. */
  heartbeatIntervalMillis?: number;
  /** Per file_stream request. Default 10 MiB (W&B's limit). */
  maxRequestBytes?: number;
  /** Per history line. Default 10 MiB − 100 KiB (W&B's limit); larger rows are split. */
  maxLineBytes?: number;
  /** The custom step key every history row carries. Default `runtel/step`. */
  stepMetric?: string;
  /** Config values typed back from runtel's param strings (numbers, booleans, JSON). Default true. */
  parseParamValues?: boolean;
  /** Points queued before new points are dropped (and counted). Default 1,000,000. */
  maxQueuedPoints?: number;
  /**
   * Ask the server for each run before streaming (RunResumeStatus), and continue its history after
   * the lines it has. The OTel exporters do. Default: only for resumed runs.
   */
  findExistingRuns?: boolean;
  /**
   * Replay a stored run (`runtel sync --to wandb`): history is rebuilt from the start and the lines
   * the server has already (its historyLineCount) are skipped, so a second sync sends nothing twice.
   */
  replay?: boolean;
  /** Called when a file_stream request with history lines was accepted. */
  onDelivered?: (runtelId: string, points: number) => void;
}

interface Target {
  entity: string;
  project: string;
}

interface RunState {
  runtelId: string;
  wandbId: string;
  started: RunStartedEvent | undefined;
  history: RunHistory | undefined;
  params: Record<string, string>;
  tags: Record<string, string>;
  rootId: string;
  group: string | undefined;
  jobType: string | undefined;
  /** Settles when the run exists on the server (or its creation failed). */
  created: Promise<void> | undefined;
  target: Target | undefined;
  metaDirty: boolean;
  metaInflight: boolean;
  streamInflight: boolean;
  lastStreamAt: number;
  sentSummaryVersion: number;
  files: ArtifactEvent[];
  filesInflight: boolean;
  /** Uploaded file names to announce in the next file_stream request. */
  uploaded: string[];
  finish: { status: FinalRunStatus; endTime: number; error: ErrorInfo | undefined } | undefined;
  dead: boolean;
  done: boolean;
}

export interface WandbStats {
  /** Metric points W&B accepted (in history lines). */
  sentPoints: number;
  /** Points queued, not yet accepted. */
  queuedPoints: number;
  /** Points given up on (queue full, permanent error, too large); the JSONL store still has them. */
  undeliveredPoints: number;
  /** Points a replay found on the server already. */
  skippedPoints: number;
  /** History lines accepted. */
  historyLines: number;
  /** Rows written with a `_step` other than their runtel step (late points, split rows). */
  remappedRows: number;
  heartbeats: number;
  /** Requests retried after 429, 5xx or a connection error. */
  retries: number;
}

const EXIT_CODES: Record<FinalRunStatus, number> = { success: 0, failed: 1, killed: 143 };
const W_AND_B_MODES: Record<string, WandbMode> = { online: 'online', run: 'online', offline: 'offline', dryrun: 'offline', disabled: 'disabled' };
const MAX_TAG_LENGTH = 64;
const MAX_DONE_RUNS = 1000;

/** `WANDB_MODE` as runtel reads it (unset or unknown: online). */
export function wandbModeFromEnv(): WandbMode {
  const raw = getStringFromEnv('WANDB_MODE')?.toLowerCase();
  return raw === undefined ? 'online' : (W_AND_B_MODES[raw] ?? 'online');
}

export class WandbBackend implements RunBackend {
  readonly name = 'wandb';
  readonly mode: WandbMode;
  /** Undefined in offline and disabled mode. */
  readonly client: WandbClient | undefined;
  private readonly _o: {
    flushIntervalMillis: number;
    heartbeatIntervalMillis: number;
    maxRequestBytes: number;
    maxLineBytes: number;
    stepMetric: string | undefined;
    parseParamValues: boolean;
    maxQueuedPoints: number;
    findExistingRuns: boolean;
    replay: boolean;
    project: string | undefined;
    entity: string | undefined;
    group: string | undefined;
    jobType: string | undefined;
  };
  private readonly _onDelivered: ((runtelId: string, points: number) => void) | undefined;
  private readonly _runs = new Map<string, RunState>();
  private _entity: Promise<string | undefined> | undefined;
  private _report: (failure: BackendFailure) => void = () => undefined;
  private readonly _reported = new Set<string>();
  private _timer: NodeJS.Timeout | undefined;
  private _queuedPoints = 0;
  private readonly _stats: WandbStats = { sentPoints: 0, queuedPoints: 0, undeliveredPoints: 0, skippedPoints: 0, historyLines: 0, remappedRows: 0, heartbeats: 0, retries: 0 };
  private readonly _idle = new Set<() => void>();
  private readonly _done: string[] = [];
  private _prunedRemapped = 0;

  constructor(options: WandbBackendOptions = {}) {
    this.mode = options.mode ?? wandbModeFromEnv();
    this.client = this.mode === 'online' ? new WandbClient({ ...options, onRetry: () => this._stats.retries++ }) : undefined;
    this._o = {
      flushIntervalMillis: options.flushIntervalMillis ?? 2000,
      heartbeatIntervalMillis: options.heartbeatIntervalMillis ?? 30_000,
      maxRequestBytes: options.maxRequestBytes ?? MAX_REQUEST_BYTES,
      maxLineBytes: options.maxLineBytes ?? MAX_LINE_BYTES,
      stepMetric: options.stepMetric,
      parseParamValues: options.parseParamValues ?? true,
      maxQueuedPoints: options.maxQueuedPoints ?? 1_000_000,
      findExistingRuns: options.findExistingRuns ?? false,
      replay: options.replay ?? false,
      project: options.project ?? getStringFromEnv('WANDB_PROJECT'),
      entity: options.entity ?? getStringFromEnv('WANDB_ENTITY'),
      group: options.group ?? getStringFromEnv('WANDB_RUN_GROUP'),
      jobType: options.jobType ?? getStringFromEnv('WANDB_JOB_TYPE'),
    };
    for (const key of ['flushIntervalMillis', 'heartbeatIntervalMillis', 'maxRequestBytes', 'maxLineBytes', 'maxQueuedPoints'] as const) {
      if (!(this._o[key] > 0)) throw new RangeError(`${key} must be greater than 0`);
    }
    if (this._o.maxRequestBytes <= 1024) throw new RangeError('maxRequestBytes must be greater than 1024');
    this._onDelivered = options.onDelivered;
  }

  bindFailureReporter(report: (failure: BackendFailure) => void): void {
    this._report = report;
  }

  stats(): WandbStats {
    let remapped = this._prunedRemapped;
    for (const run of this._runs.values()) remapped += run.history?.remappedRows ?? 0;
    return { ...this._stats, queuedPoints: this._queuedPoints, remappedRows: remapped };
  }

  /** The W&B location of a run (once it exists there): entity, project and W&B run id. */
  async wandbRun(runtelId: string): Promise<{ entity: string; project: string; id: string } | undefined> {
    const run = this._runs.get(runtelId);
    if (run === undefined) return undefined;
    await run.created;
    return run.target === undefined ? undefined : { ...run.target, id: run.wandbId };
  }

  onEvent(event: RunEvent): void {
    if (this.mode !== 'online') return;
    let run = this._runs.get(event.runId);
    if (event.type === 'run_started') {
      run = this._start(event, run);
    } else if (run === undefined || run.history === undefined) {
      this._reportOnce('no-run', 'onEvent', new Error(`event ${event.type} for run ${event.runId}, which this backend has not seen start`));
      return;
    }
    if (run.dead) {
      if (event.type === 'metrics') this._stats.undeliveredPoints += Object.keys(event.values).length;
      return;
    }
    if (run.done && event.type !== 'run_started') {
      // Data after the completion (OTel pipelines may reorder a run's span and its last records):
      // the run is streamed again and completed again, so nothing is lost.
      run.done = false;
    }
    switch (event.type) {
      case 'params':
        Object.assign(run.params, event.params);
        run.metaDirty = true;
        break;
      case 'tags':
        Object.assign(run.tags, event.tags);
        run.metaDirty = true;
        break;
      case 'metrics': {
        const count = Object.keys(event.values).length;
        if (this._queuedPoints + count > this._o.maxQueuedPoints) {
          this._stats.undeliveredPoints += count;
          this._reportOnce('queue-full', 'enqueue', new Error(`W&B queue full (${this._o.maxQueuedPoints} points): points are dropped here and kept in the local run log`));
          return;
        }
        this._queuedPoints += count;
        run.history!.add(event);
        break;
      }
      case 'artifact':
        run.files.push(event);
        break;
      case 'run_finished':
        run.finish = { status: event.status, endTime: event.endTime, error: event.error };
        run.history!.closeAll();
        run.metaDirty = true;
        this._pump(run);
        return;
      case 'run_started':
        break;
    }
    if (run.finish !== undefined) {
      // Late data of a finished run: no more points can join its rows.
      run.history!.closeAll();
      this._pump(run);
    }
    this._ensureTimer();
  }

  async forceFlush(): Promise<void> {
    for (const run of this._runs.values()) {
      run.history?.closeAll();
      this._pump(run);
    }
    if (this._isIdle()) return;
    await new Promise<void>((resolve) => this._idle.add(resolve));
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    clearInterval(this._timer);
    this._timer = undefined;
  }

  // --- runs ---

  private _start(event: RunStartedEvent, existing: RunState | undefined): RunState {
    const parent = event.parentId === undefined ? undefined : this._runs.get(event.parentId);
    const run: RunState = existing ?? {
      runtelId: event.runId,
      wandbId: wandbRunId(event.runId),
      started: undefined,
      history: undefined,
      params: {},
      tags: {},
      rootId: event.runId,
      group: undefined,
      jobType: undefined,
      created: undefined,
      target: undefined,
      metaDirty: false,
      metaInflight: false,
      streamInflight: false,
      lastStreamAt: Date.now(),
      sentSummaryVersion: -1,
      files: [],
      filesInflight: false,
      uploaded: [],
      finish: undefined,
      dead: false,
      done: false,
    };
    this._runs.set(event.runId, run);
    run.started = event;
    Object.assign(run.params, event.params);
    Object.assign(run.tags, event.tags);
    run.finish = undefined;
    run.done = false;
    if (event.parentId !== undefined) {
      // W&B has no nested runs: the tree becomes a group named after its root, the role a job type.
      run.rootId = parent?.rootId ?? event.parentId;
      run.group = this._o.group ?? wandbRunId(run.rootId);
      run.jobType = run.tags.trial_index !== undefined ? 'trial' : 'child';
      const root = this._runs.get(run.rootId);
      if (root !== undefined && root.group === undefined) {
        root.group = this._o.group ?? root.wandbId;
        root.jobType ??= 'parent';
        root.metaDirty = true;
        this._pump(root);
      }
    } else {
      run.group ??= this._o.group;
      run.jobType ??= this._o.jobType;
      // Children seen first (OTel pipelines reorder): this root heads their group.
      if (run.group === undefined) {
        for (const other of this._runs.values()) {
          if (other !== run && other.rootId === run.runtelId) {
            run.group = run.wandbId;
            run.jobType ??= 'parent';
            break;
          }
        }
      }
    }
    if (existing === undefined || run.history === undefined) {
      run.history = new RunHistory({
        startTime: event.startTime,
        ...(this._o.stepMetric !== undefined ? { stepMetric: this._o.stepMetric } : {}),
        maxLineBytes: this._o.maxLineBytes,
        maxEscapedBytes: this._o.maxRequestBytes - 1024,
        onOversize: (_step, message) => this._reportOnce('oversize', 'history', new Error(message)),
      });
      run.created = this._create(run, event);
    } else {
      // Resumed in this process: the run exists; its history continues where it is.
      run.metaDirty = true;
      this._pump(run);
    }
    return run;
  }

  private async _create(run: RunState, event: RunStartedEvent): Promise<void> {
    const client = this.client!;
    try {
      const entity = await this._defaultEntity();
      const project = this._project(event.experiment);
      let exists = false;
      if (this._o.replay || this._o.findExistingRuns || event.resumed === true) {
        const status = await client.runResumeStatus(entity, project, run.wandbId);
        if (status !== undefined) this._continueFrom(run, status);
        exists = status !== undefined;
      }
      // A replay leaves the state of a run W&B has alone (its completion comes again at the end).
      const { bucket } = await client.upsertBucket(this._upsertInput(run, { entity, project }, this._o.replay && exists ? undefined : 'running'));
      run.target = { entity: bucket.project?.entity?.name ?? entity ?? '', project: bucket.project?.name ?? project };
      if (run.target.entity === '') throw new WandbError('UpsertBucket', 200, 'GRAPHQL', 'the response names no entity; set WANDB_ENTITY');
      run.lastStreamAt = Date.now();
    } catch (error) {
      this._fail(run, 'upsert-run', error);
    } finally {
      setImmediate(() => this._pump(run));
    }
  }

  /** Continues a run the server has: after its lines (live) or skipping them (replay). */
  private _continueFrom(run: RunState, status: { historyLineCount: number; historyTail: string[]; summaryMetrics: string | undefined }): void {
    const history = run.history!;
    if (this._o.replay) {
      history.skipBelow = status.historyLineCount;
      return;
    }
    history.nextIndex = status.historyLineCount;
    let lastStep = -1;
    for (const line of status.historyTail) {
      try {
        const step = (parseExtendedJson(line) as { _step?: unknown })._step;
        if (typeof step === 'number' && step > lastStep) lastStep = step;
      } catch {
        // skip an unreadable line
      }
    }
    history.nextStep = Math.max(lastStep + 1, lastStep < 0 ? status.historyLineCount : 0);
    if (status.summaryMetrics !== undefined) {
      try {
        const summary = parseExtendedJson(status.summaryMetrics);
        if (summary !== null && typeof summary === 'object') history.seedSummary(summary as Record<string, unknown>);
      } catch {
        // a summary that does not parse is rebuilt from new points
      }
    }
  }

  private _defaultEntity(): Promise<string | undefined> {
    if (this._o.entity !== undefined) return Promise.resolve(this._o.entity);
    if (this._entity === undefined) {
      const entity = this.client!.viewerEntity();
      this._entity = entity;
      // A failure is not cached: the next run asks again.
      entity.catch(() => {
        if (this._entity === entity) this._entity = undefined;
      });
    }
    return this._entity;
  }

  private _project(experiment: string): string {
    const name = this._o.project ?? (experiment === 'default' ? 'uncategorized' : experiment);
    // W&B project names may not contain / \ # ? % : and are at most 128 characters.
    return name.replace(/[/\\#?%:]/g, '-').slice(0, 128);
  }

  private _upsertInput(run: RunState, target: { entity: string | undefined; project: string }, state?: string): UpsertBucketInput {
    const started = run.started!;
    const config: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(unflattenParams(run.params, this._o.parseParamValues))) config[key] = { value };
    const extra: Record<string, unknown> = { runtel_run_id: run.runtelId, runtel_experiment: started.experiment };
    if (started.parentId !== undefined) {
      extra.parent_run_id = wandbRunId(started.parentId);
      extra.runtel_parent_run_id = started.parentId;
    }
    if (Object.keys(run.tags).length > 0) extra.runtel_tags = { ...run.tags };
    if (run.finish !== undefined) {
      extra.runtel_status = run.finish.status;
      if (run.finish.error !== undefined) extra.runtel_error = `${run.finish.error.type}: ${run.finish.error.message}`.slice(0, 2000);
    }
    for (const [key, value] of Object.entries(extra)) config[key] = { value };
    config._wandb = { value: { m: stepMetricDefinitions(run.history!.stepMetric) } };
    const tags = Object.entries(run.tags)
      .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
      .filter((tag) => tag.length <= MAX_TAG_LENGTH);
    return {
      name: run.wandbId,
      project: target.project,
      entity: target.entity,
      displayName: started.name,
      groupName: run.group,
      jobType: run.jobType,
      config: JSON.stringify(config),
      tags,
      state,
    };
  }

  // --- sender ---

  private _ensureTimer(): void {
    if (this._timer !== undefined) return;
    const period = Math.min(this._o.flushIntervalMillis, this._o.heartbeatIntervalMillis);
    this._timer = setInterval(() => {
      let live = false;
      for (const run of this._runs.values()) {
        if (!run.done && !run.dead) live = true;
        this._pump(run);
      }
      if (!live) {
        clearInterval(this._timer);
        this._timer = undefined;
      }
    }, period);
    // Never keeps the process alive: finish() and forceFlush() drive delivery themselves.
    this._timer.unref();
  }

  private _pump(run: RunState): void {
    if (!run.dead && !run.done && run.target !== undefined) {
      if (run.metaDirty && !run.metaInflight) this._sendMeta(run);
      if (run.files.length > 0 && !run.filesInflight) this._sendFiles(run);
      if (!run.streamInflight) this._sendStream(run);
    }
    if (this._idle.size > 0 && this._isIdle()) {
      for (const resolve of this._idle) resolve();
      this._idle.clear();
    }
  }

  private _sendMeta(run: RunState): void {
    run.metaDirty = false;
    run.metaInflight = true;
    const input = this._upsertInput(run, run.target!);
    void (async () => {
      try {
        await this.client!.upsertBucket(input);
      } catch (error) {
        this._fail(run, 'upsert-run', error);
      } finally {
        run.metaInflight = false;
        this._pump(run);
      }
    })();
  }

  private _sendFiles(run: RunState): void {
    const artifact = run.files.shift()!;
    run.filesInflight = true;
    void (async () => {
      try {
        const files = artifact.kind === 'directory' ? listFiles(artifact.path).map((f) => [f, `${artifact.name}/${relativeName(artifact.path, f)}`] as const) : [[artifact.path, artifact.name] as const];
        if (files.length > 0) {
          const { entity, project } = run.target!;
          const urls = await this.client!.createRunFiles(entity, project, run.wandbId, files.map(([, name]) => name));
          const byName = new Map(urls.files.map((f) => [f.name, f.uploadUrl]));
          for (const [file, name] of files) {
            const url = byName.get(name);
            if (url === undefined) throw new WandbError('CreateRunFiles', 200, 'GRAPHQL', `no upload URL for ${JSON.stringify(name)}`);
            await this.client!.uploadFile(url, file, urls.uploadHeaders);
            run.uploaded.push(name);
          }
        }
      } catch (error) {
        // A file that could not be uploaded is reported; the run goes on (the JSONL store has it).
        this._reportOnce(`upload:${error instanceof WandbError ? error.code : 'ERROR'}`, 'upload-file', error);
      } finally {
        run.filesInflight = false;
        this._pump(run);
      }
    })();
  }

  private _sendStream(run: RunState): void {
    const history = run.history!;
    this._encode(run);
    const finishing = run.finish !== undefined;
    const othersDone = !run.metaDirty && !run.metaInflight && run.files.length === 0 && !run.filesInflight;
    const now = Date.now();

    // Budget: the envelope, then the summary, then as many lines as fit.
    const uploaded = run.uploaded.slice();
    let budget = this._o.maxRequestBytes - 256 - Buffer.byteLength(JSON.stringify(uploaded));
    const summaryVersion = history.summaryVersion;
    let summary: string | undefined;
    if (summaryVersion !== run.sentSummaryVersion || (finishing && othersDone)) {
      const raw = history.summaryLine(finishing ? run.finish!.endTime : now);
      summary = JSON.stringify(raw);
      if (Buffer.byteLength(raw) > this._o.maxLineBytes || Buffer.byteLength(summary) > budget) {
        this._reportOnce('summary-too-large', 'file_stream', new Error(`the W&B summary is ${Buffer.byteLength(raw)} bytes, over the line limit: not sent`));
        run.sentSummaryVersion = summaryVersion;
        summary = undefined;
      }
    }
    let summaryDeferred = false;
    const lines: string[] = [];
    let points = 0;
    let first: number | undefined;
    for (const entry of history.lines) {
      const escaped = JSON.stringify(entry.line);
      const size = Buffer.byteLength(escaped) + 1;
      const reserved = summary === undefined ? 0 : Buffer.byteLength(summary);
      if (size + reserved > budget) {
        if (lines.length > 0 || summary === undefined || size > budget) break;
        // The first line and the summary do not fit together: the line goes first.
        summary = undefined;
        summaryDeferred = true;
      }
      first ??= entry.index;
      lines.push(escaped);
      points += entry.points;
      budget -= size;
    }
    const complete = finishing && othersDone && !summaryDeferred && lines.length === history.lines.length && history.bufferedPoints === 0;
    if (lines.length === 0 && summary === undefined && uploaded.length === 0 && !complete) {
      if (finishing || now - run.lastStreamAt < this._o.heartbeatIntervalMillis) return;
      // Nothing to send for a while: a heartbeat, as W&B's own client sends it.
      this._stream(run, '{}', { lines: 0, points: 0, summaryVersion: undefined, uploaded: 0, complete: false, heartbeat: true });
      return;
    }
    const files: string[] = [];
    if (lines.length > 0) files.push(`"wandb-history.jsonl":{"offset":${first!},"content":[${lines.join(',')}]}`);
    if (summary !== undefined) files.push(`"wandb-summary.json":{"offset":0,"content":[${summary}]}`);
    let body = `{"files":{${files.join(',')}}`;
    if (uploaded.length > 0) body += `,"uploaded":${JSON.stringify(uploaded)}`;
    if (complete) body += `,"complete":true,"exitcode":${EXIT_CODES[run.finish!.status]}`;
    body += '}';
    this._stream(run, body, {
      lines: lines.length,
      points,
      summaryVersion: summary !== undefined ? summaryVersion : undefined,
      uploaded: uploaded.length,
      complete,
      heartbeat: false,
    });
  }

  /** Encodes closed rows; points a replay skips or that cannot fit leave the queue here. */
  private _encode(run: RunState): void {
    const history = run.history!;
    const before = history.skippedPoints + history.droppedPoints;
    const dropped = history.droppedPoints;
    history.encode();
    const gone = history.skippedPoints + history.droppedPoints - before;
    if (gone > 0) {
      this._queuedPoints -= gone;
      this._stats.skippedPoints += gone - (history.droppedPoints - dropped);
      this._stats.undeliveredPoints += history.droppedPoints - dropped;
    }
  }

  private _stream(run: RunState, body: string, sent: { lines: number; points: number; summaryVersion: number | undefined; uploaded: number; complete: boolean; heartbeat: boolean }): void {
    run.streamInflight = true;
    run.lastStreamAt = Date.now();
    const { entity, project } = run.target!;
    void (async () => {
      try {
        await this.client!.fileStream(entity, project, run.wandbId, body);
        run.history!.acknowledge(sent.lines);
        this._queuedPoints -= sent.points;
        this._stats.sentPoints += sent.points;
        this._stats.historyLines += sent.lines;
        if (sent.summaryVersion !== undefined) run.sentSummaryVersion = sent.summaryVersion;
        run.uploaded.splice(0, sent.uploaded);
        if (sent.heartbeat) this._stats.heartbeats++;
        if (sent.complete) this._completed(run);
        if (sent.points > 0) this._onDelivered?.(run.runtelId, sent.points);
      } catch (error) {
        this._fail(run, 'file_stream', error);
      } finally {
        run.streamInflight = false;
        this._pump(run);
      }
    })();
  }

  /** A completed run stays known for late data and its children, up to MAX_DONE_RUNS of them. */
  private _completed(run: RunState): void {
    run.done = true;
    this._done.push(run.runtelId);
    while (this._done.length > MAX_DONE_RUNS) {
      const oldest = this._done.shift()!;
      const pruned = this._runs.get(oldest);
      if (pruned?.done === true) {
        this._prunedRemapped += pruned.history?.remappedRows ?? 0;
        this._runs.delete(oldest);
      }
    }
  }

  private _isIdle(): boolean {
    for (const run of this._runs.values()) {
      if (run.dead || run.done) continue;
      if (run.target === undefined) return false; // still being created
      if (run.metaDirty || run.metaInflight || run.files.length > 0 || run.filesInflight || run.streamInflight) return false;
      const history = run.history!;
      this._encode(run);
      if (history.lines.length > 0 || history.summaryVersion !== run.sentSummaryVersion) return false;
      if (run.finish !== undefined) return false;
    }
    return true;
  }

  /** A permanent failure (or retries exhausted): reported once per kind; the run stops sending. */
  private _fail(run: RunState, operation: string, error: unknown): void {
    const code = error instanceof WandbError ? error.code : 'ERROR';
    this._reportOnce(`${operation}:${code}`, operation, error);
    if (run.dead) return;
    run.dead = true;
    const history = run.history;
    if (history !== undefined) {
      history.closeAll();
      this._encode(run);
      let dropped = history.bufferedPoints;
      for (const line of history.lines) dropped += line.points;
      history.acknowledge(history.lines.length);
      this._queuedPoints -= dropped;
      this._stats.undeliveredPoints += dropped;
    }
    run.files = [];
    run.finish = undefined;
  }

  private _reportOnce(kind: string, operation: string, error: unknown): void {
    if (this._reported.has(kind)) return;
    this._reported.add(kind);
    this._report({ backend: this.name, operation, error });
  }
}
