// Run events → W&B requests: the W&B DeliveryTarget. A run is created with UpsertBucket; its
// config and tags follow as upserts (channel `meta`), files as uploads (channel `files`), history
// rows and the summary on file_stream (channel `stream`, one request at a time so line offsets stay
// exact); the finish is a last file_stream with `complete` and the exit code.

import { publishRunLink, wandbRunUrl } from '../core/runLinks.js';
import type { ArtifactEvent, ErrorInfo, RunEvent, RunFinishedEvent, RunStartedEvent } from '../core/events.js';
import type { FinalRunStatus } from '../core/types.js';
import { listFiles, relativeName } from '../core/artifacts.js';
import type { DeliveryContext, DeliveryTarget, StartedRun, Work } from '../delivery/DeliveryTarget.js';
import { redactUrl } from '../delivery/HttpClient.js';
import { WandbError } from './WandbClient.js';
import type { WandbClient } from './WandbClient.js';
import { packStreamRequest } from './fileStream.js';
import { continueFrom } from './resume.js';
import { upsertInput } from './upsert.js';
import { RunHistory, wandbRunId } from './history.js';
import { wandbSystemRow } from '../system/conventions.js';

export interface WandbTargetConfig {
  maxRequestBytes: number;
  maxLineBytes: number;
  stepMetric: string | undefined;
  parseParamValues: boolean;
  /** Ask W&B for each run before streaming, continue after its lines and skip the points it has. */
  findExistingRuns: boolean;
  /** Replay a stored run: rebuild history from the start and skip the lines W&B has. */
  replay: boolean;
  project: string | undefined;
  entity: string | undefined;
  group: string | undefined;
  jobType: string | undefined;
}

export interface WandbRunState {
  readonly runtelId: string;
  readonly wandbId: string;
  started: RunStartedEvent;
  history: RunHistory;
  params: Record<string, string>;
  tags: Record<string, string>;
  rootId: string;
  group: string | undefined;
  jobType: string | undefined;
  /** Settles when the run exists on W&B (or its creation failed). */
  created: Promise<void> | undefined;
  where: { entity: string; project: string } | undefined;
  metaDirty: boolean;
  /** Smallest seq of the param and tag changes not yet upserted. */
  metaSeq: number;
  sentSummaryVersion: number;
  files: Array<ArtifactEvent & { seq: number }>;
  /** Uploaded file names to announce in the next file_stream request. */
  uploaded: string[];
  finish: { status: FinalRunStatus; endTime: number; error: ErrorInfo | undefined } | undefined;
  /** History points already counted as skipped or dropped. */
  accounted: { skipped: number; dropped: number };
  /** System metric rows for `wandb-events.jsonl` (W&B's system charts), from line `offset` on. */
  events: { offset: number; lines: Array<{ line: string; points: number; seq: number }>; networkBase: { receive?: number; transmit?: number } };
}

/** A crashed run (its process died without finishing it) completes with 137, as a shell reports a process killed by SIGKILL. */
const EXIT_CODES: Record<FinalRunStatus, number> = { success: 0, failed: 1, killed: 143, crashed: 137 };

export class WandbTarget implements DeliveryTarget<WandbRunState> {
  readonly name = 'wandb';
  readonly location: string;
  readonly createOperation = 'upsert-run';
  readonly client: WandbClient['http'];
  readonly channels = [
    { name: 'meta', maxInFlightPerRun: 1 },
    { name: 'files', maxInFlightPerRun: 1 },
    { name: 'stream', maxInFlightPerRun: 1 },
  ] as const;
  readonly refinishAfterLateData = true;
  readonly wandb: WandbClient;
  private readonly _config: WandbTargetConfig;
  private _context!: DeliveryContext;
  private readonly _runs = new Map<string, WandbRunState>();
  private _entity: Promise<string | undefined> | undefined;
  private readonly _stats = { skippedPoints: 0, historyLines: 0, remappedRows: 0 };

  constructor(client: WandbClient, config: WandbTargetConfig) {
    this.wandb = client;
    this.client = client.http;
    this.location = `W&B ${redactUrl(client.baseUrl)}`;
    this._config = config;
  }

  bind(context: DeliveryContext): void {
    this._context = context;
  }

  stats(): Record<string, number> {
    let remapped = this._stats.remappedRows;
    for (const run of this._runs.values()) remapped += run.history.remappedRows;
    return { ...this._stats, remappedRows: remapped };
  }

  /** Where a run lives in W&B, once it exists there. */
  async where(runtelId: string): Promise<{ entity: string; project: string; id: string } | undefined> {
    const run = this._runs.get(runtelId);
    if (run === undefined) return undefined;
    await run.created;
    return run.where === undefined ? undefined : { ...run.where, id: run.wandbId };
  }

  start(event: RunStartedEvent, previous: WandbRunState | undefined): StartedRun<WandbRunState> {
    const run = previous ?? this._newState(event);
    this._runs.set(event.runId, run);
    run.started = event;
    Object.assign(run.params, event.params);
    Object.assign(run.tags, event.tags);
    run.finish = undefined;
    this._group(run, event);
    if (previous !== undefined) {
      // Resumed in this process: the run exists; its history continues where it is.
      this._dirty(run, 0);
      return { state: run };
    }
    return { state: run, create: () => (run.created = this._create(run, event)) };
  }

  /**
   * A run about to have children in other processes heads their group now (its children cannot
   * announce themselves here), and they join it through WANDB_RUN_GROUP, as W&B's own SDK does.
   */
  childEnv(run: WandbRunState): Record<string, string> {
    if (run.group === undefined) {
      run.group = run.wandbId;
      run.jobType ??= 'parent';
      this._dirty(run, Infinity);
      this._context.wake(run.runtelId);
    }
    return { WANDB_RUN_GROUP: run.group };
  }

  accept(run: WandbRunState, event: Exclude<RunEvent, RunStartedEvent>, seq: number): boolean {
    switch (event.type) {
      case 'params':
        Object.assign(run.params, event.params);
        this._dirty(run, seq);
        return false;
      case 'tags':
        Object.assign(run.tags, event.tags);
        this._dirty(run, seq);
        return false;
      case 'metrics':
        run.history.add(event, seq);
        // Late data of a finished run: no more points can join its rows.
        if (run.finish !== undefined) run.history.closeAll();
        this._account(run);
        return run.finish !== undefined;
      case 'system_metrics': {
        const row = wandbSystemRow(event.values, event.timestamp, run.started.startTime, run.events.networkBase);
        run.events.lines.push({ line: JSON.stringify(row), points: Object.keys(event.values).length, seq });
        return run.finish !== undefined;
      }
      case 'artifact':
        run.files.push({ ...event, seq });
        return false;
      case 'run_finished':
        run.finish = { status: event.status, endTime: event.endTime, error: event.error };
        run.history.closeAll();
        this._dirty(run, seq);
        return true;
    }
  }

  take(run: WandbRunState, channel: string): Work | undefined {
    if (channel === 'meta') return this._takeMeta(run);
    if (channel === 'files') return this._takeFile(run);
    return this._takeStream(run, undefined);
  }

  hasQueued(run: WandbRunState): boolean {
    const h = run.history;
    return run.metaDirty || run.files.length > 0 || run.uploaded.length > 0 || h.lines.length > 0 || run.events.lines.length > 0 || h.bufferedPoints > 0 || h.summaryVersion !== run.sentSummaryVersion;
  }

  queuedSeq(run: WandbRunState): number {
    return Math.min(run.metaSeq, run.files[0]?.seq ?? Infinity, run.history.pendingSeq(), run.events.lines[0]?.seq ?? Infinity);
  }

  finish(run: WandbRunState, event: RunFinishedEvent): Work {
    return this._takeStream(run, EXIT_CODES[event.status]) ?? { operation: 'file_stream', points: 0, seq: Infinity, send: () => Promise.resolve() };
  }

  heartbeat(run: WandbRunState): { channel: string; work: Work } | undefined {
    const where = run.where;
    if (where === undefined) return undefined;
    // Nothing sent for a while: a heartbeat, as W&B's own client sends it, so W&B does not mark the run crashed.
    return { channel: 'stream', work: { operation: 'file_stream', points: 0, seq: Infinity, send: () => this.wandb.fileStream(where.entity, where.project, run.wandbId, '{}'), killsRun: () => true } };
  }

  flush(run: WandbRunState): void {
    run.history.closeAll();
  }

  expedite(run: WandbRunState, seq: number): void {
    run.history.closeUpTo(seq);
  }

  drop(run: WandbRunState): number {
    const history = run.history;
    history.closeAll();
    history.encode();
    this._account(run);
    let dropped = history.bufferedPoints;
    for (const line of history.lines) dropped += line.points;
    history.acknowledge(history.lines.length);
    for (const line of run.events.lines) dropped += line.points;
    run.events.lines = [];
    run.files = [];
    run.finish = undefined;
    run.metaDirty = false;
    run.metaSeq = Infinity;
    return dropped;
  }

  forget(run: WandbRunState): void {
    this._stats.remappedRows += run.history.remappedRows;
    this._runs.delete(run.runtelId);
  }

  // --- requests ---

  private _takeMeta(run: WandbRunState): Work | undefined {
    if (!run.metaDirty) return undefined;
    const seq = run.metaSeq;
    run.metaDirty = false;
    run.metaSeq = Infinity;
    const input = upsertInput(run, run.where!, this._config.parseParamValues);
    return { operation: 'upsert-run', points: 0, seq, send: async () => void (await this.wandb.upsertBucket(input)), killsRun: () => true };
  }

  private _takeFile(run: WandbRunState): Work | undefined {
    const artifact = run.files.shift();
    if (artifact === undefined) return undefined;
    return {
      operation: 'upload-file',
      points: 0,
      seq: artifact.seq,
      // A file that could not be uploaded is reported; the run goes on (the local run log has it).
      send: async () => {
        const files = artifact.kind === 'directory' ? listFiles(artifact.path).map((f) => [f, `${artifact.name}/${relativeName(artifact.path, f)}`] as const) : [[artifact.path, artifact.name] as const];
        if (files.length === 0) return;
        const { entity, project } = run.where!;
        const urls = await this.wandb.createRunFiles(entity, project, run.wandbId, files.map(([, name]) => name));
        const byName = new Map(urls.files.map((f) => [f.name, f.uploadUrl]));
        for (const [file, name] of files) {
          const url = byName.get(name);
          if (url === undefined) throw new WandbError('CreateRunFiles', 200, 'GRAPHQL', `no upload URL for ${JSON.stringify(name)}`);
          await this.wandb.uploadFile(url, file, urls.uploadHeaders);
          run.uploaded.push(name);
        }
      },
    };
  }

  /** History lines, the summary and uploaded names; with an exit code, the completing request. */
  private _takeStream(run: WandbRunState, exitCode: number | undefined): Work | undefined {
    const uploaded = run.uploaded.slice();
    const request = packStreamRequest(run.history, {
      maxRequestBytes: this._config.maxRequestBytes,
      maxLineBytes: this._config.maxLineBytes,
      sentSummaryVersion: run.sentSummaryVersion,
      forceSummary: exitCode !== undefined,
      nowMillis: exitCode !== undefined ? run.finish?.endTime ?? Date.now() : Date.now(),
      uploaded,
      events: run.events,
      ...(exitCode !== undefined ? { exitCode } : {}),
      onSummaryTooLarge: (bytes, version) => {
        this._context.reportOnce('summary-too-large', 'file_stream', new Error(`the W&B summary is ${bytes} bytes, over the line limit: not sent`));
        run.sentSummaryVersion = version;
      },
    });
    this._account(run);
    if (request === undefined) return undefined;
    const { entity, project } = run.where!;
    return {
      operation: 'file_stream',
      points: request.points,
      seq: request.seq,
      send: () => this.wandb.fileStream(entity, project, run.wandbId, request.body),
      killsRun: () => true,
      onSent: () => {
        run.history.acknowledge(request.lines);
        run.events.lines.splice(0, request.eventLines);
        run.events.offset += request.eventLines;
        this._stats.historyLines += request.lines;
        if (request.summaryVersion !== undefined) run.sentSummaryVersion = request.summaryVersion;
        run.uploaded.splice(0, request.uploaded);
      },
    };
  }

  // --- runs ---

  private _newState(event: RunStartedEvent): WandbRunState {
    return {
      runtelId: event.runId,
      wandbId: wandbRunId(event.runId),
      started: event,
      history: new RunHistory({
        startTime: event.startTime,
        ...(this._config.stepMetric !== undefined ? { stepMetric: this._config.stepMetric } : {}),
        maxLineBytes: this._config.maxLineBytes,
        maxEscapedBytes: this._config.maxRequestBytes - 1024,
        onOversize: (_step, message) => this._context.reportOnce('oversize', 'history', new Error(message)),
      }),
      params: {},
      tags: {},
      rootId: event.runId,
      group: undefined,
      jobType: undefined,
      created: undefined,
      where: undefined,
      metaDirty: false,
      metaSeq: Infinity,
      sentSummaryVersion: -1,
      files: [],
      uploaded: [],
      finish: undefined,
      accounted: { skipped: 0, dropped: 0 },
      events: { offset: 0, lines: [], networkBase: {} },
    };
  }

  private _dirty(run: WandbRunState, seq: number): void {
    run.metaDirty = true;
    if (seq < run.metaSeq) run.metaSeq = seq;
  }

  /** Points the history skipped (W&B has them) or dropped (too large) leave the queue here. */
  private _account(run: WandbRunState): void {
    const h = run.history;
    const skipped = h.skippedPoints - run.accounted.skipped;
    const dropped = h.droppedPoints - run.accounted.dropped;
    if (skipped > 0) {
      this._stats.skippedPoints += skipped;
      this._context.discard(skipped, 'delivered');
    }
    if (dropped > 0) this._context.discard(dropped, 'undelivered');
    run.accounted = { skipped: h.skippedPoints, dropped: h.droppedPoints };
  }

  /** W&B has no nested runs: a run tree becomes a group named after its root, the role a job type. */
  private _group(run: WandbRunState, event: RunStartedEvent): void {
    if (event.parentId !== undefined) {
      const parent = this._runs.get(event.parentId);
      run.rootId = parent?.rootId ?? event.parentId;
      run.group = this._config.group ?? wandbRunId(run.rootId);
      run.jobType = run.tags.trial_index !== undefined ? 'trial' : 'child';
      const root = this._runs.get(run.rootId);
      if (root !== undefined && root.group === undefined) {
        root.group = this._config.group ?? root.wandbId;
        root.jobType ??= 'parent';
        this._dirty(root, Infinity);
        this._context.wake(root.runtelId);
      }
      return;
    }
    run.group ??= this._config.group;
    run.jobType ??= this._config.jobType;
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

  private async _create(run: WandbRunState, event: RunStartedEvent): Promise<void> {
    const entity = await this._defaultEntity();
    const project = this._project(event.experiment);
    let exists = false;
    if (this._config.replay || this._config.findExistingRuns || event.resumed === true) {
      const status = await this.wandb.runResumeStatus(entity, project, run.wandbId);
      if (status !== undefined) {
        await continueFrom(this.wandb, run.history, { wandbId: run.wandbId, entity, project }, status, this._config);
        // Live, system rows go after W&B's; a replay writes its rows at their own lines again.
        if (!this._config.replay) run.events.offset = status.eventsLineCount;
        this._account(run);
      }
      exists = status !== undefined;
    }
    // A replay leaves the state of a run W&B has alone (its completion comes again at the end).
    const { bucket } = await this.wandb.upsertBucket(upsertInput(run, { entity, project }, this._config.parseParamValues, this._config.replay && exists ? undefined : 'running'));
    const where = { entity: bucket.project?.entity?.name ?? entity ?? '', project: bucket.project?.name ?? project };
    if (where.entity === '') throw new WandbError('UpsertBucket', 200, 'GRAPHQL', 'the response names no entity; set WANDB_ENTITY');
    run.where = where;
    publishRunLink({ runId: run.runtelId, label: 'W&B', url: wandbRunUrl(this.wandb.baseUrl, where.entity, where.project, run.wandbId) });
  }

  private _defaultEntity(): Promise<string | undefined> {
    if (this._config.entity !== undefined) return Promise.resolve(this._config.entity);
    if (this._entity === undefined) {
      const entity = this.wandb.viewerEntity();
      this._entity = entity;
      // A failure is not cached: the next run asks again.
      entity.catch(() => {
        if (this._entity === entity) this._entity = undefined;
      });
    }
    return this._entity;
  }

  private _project(experiment: string): string {
    const name = this._config.project ?? (experiment === 'default' ? 'uncategorized' : experiment);
    // W&B project names may not contain / \ # ? % : and are at most 128 characters.
    return name.replace(/[/\\#?%:]/g, '-').slice(0, 128);
  }
}
