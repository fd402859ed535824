// The Run implementation: validates at the call site, turns calls into events, never waits for I/O.

import { randomBytes } from 'node:crypto';
import { basename, resolve, sep } from 'node:path';
import { rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RunEvent } from './events.js';
import { toErrorInfo } from './events.js';
import type { FinalRunStatus, LogArtifactOptions, LogMetricsOptions, LogModelOptions, ModelInput, Run, RunStatus } from './types.js';
import { flattenParams } from './params.js';
import { validateKey, validateMetricValue, validateStep, validateTagValue, validateTimestamp } from './validation.js';
import { artifactSize, stageModel } from './artifacts.js';
import { childEnvOf } from './processParent.js';

/** What a run needs from the logger that owns it. */
export interface RunOwner {
  emit(event: RunEvent): void;
  onRunFinished(run: RunHandle): Promise<void>;
  childEnv(run: RunHandle): Record<string, string> | undefined;
}

export interface RunInit {
  id?: string;
  name?: string;
  experiment: string;
  parentId?: string;
  params?: Record<string, string>;
  lastStep?: number;
}

const FINAL_STATUSES: ReadonlySet<string> = new Set(['success', 'failed', 'killed', 'crashed']);

export function newRunId(): string {
  return randomBytes(16).toString('hex');
}

export class RunHandle implements Run {
  readonly id: string;
  readonly name: string;
  readonly experiment: string;
  readonly parentId: string | undefined;
  private _status: RunStatus = 'running';
  private readonly _params: Map<string, string>;
  private _nextStep: number;
  private _finished: Promise<void> | undefined;
  private readonly _owner: RunOwner;
  private readonly _staged: string[] = [];

  constructor(owner: RunOwner, init: RunInit) {
    this._owner = owner;
    this.id = init.id ?? newRunId();
    this.name = init.name ?? `run-${this.id.slice(0, 8)}`;
    this.experiment = init.experiment;
    this.parentId = init.parentId;
    this._params = new Map(Object.entries(init.params ?? {}));
    this._nextStep = (init.lastStep ?? -1) + 1;
  }

  get status(): RunStatus {
    return this._status;
  }

  /** Params as validated and stringified; used to check re-logged keys. */
  get params(): ReadonlyMap<string, string> {
    return this._params;
  }

  /** Validates params against what this run already has; returns the ones that are new. */
  checkParams(params: Record<string, unknown>): Record<string, string> {
    const flat = flattenParams(params);
    const fresh: Record<string, string> = {};
    for (const [key, value] of Object.entries(flat)) {
      const old = this._params.get(key);
      if (old === undefined) fresh[key] = value;
      else if (old !== value) {
        throw new Error(`param ${JSON.stringify(key)} is already ${JSON.stringify(old)}; params are write-once, so it cannot become ${JSON.stringify(value)}`);
      }
    }
    return fresh;
  }

  /** Records params accepted by `checkParams` (used by the logger for the run_started event too). */
  acceptParams(params: Record<string, string>): void {
    for (const key in params) this._params.set(key, params[key]!);
  }

  childEnv(): Record<string, string> {
    return { ...childEnvOf(this), ...this._owner.childEnv(this) };
  }

  logParams(params: Record<string, unknown>): void {
    this._assertRunning('logParams');
    const fresh = this.checkParams(params);
    if (Object.keys(fresh).length === 0) return;
    this.acceptParams(fresh);
    this._owner.emit({ type: 'params', runId: this.id, time: Date.now(), params: fresh });
  }

  logMetrics(values: Record<string, number>, options?: LogMetricsOptions): void {
    this._assertRunning('logMetrics');
    let step: number;
    let timestamp: number;
    if (options === undefined) {
      step = this._nextStep;
      timestamp = Date.now();
    } else {
      step = options.step === undefined ? this._nextStep : validateStep(options.step);
      timestamp = options.timestamp === undefined ? Date.now() : validateTimestamp(options.timestamp);
    }
    // Copy while validating: the caller may reuse its object for the next step.
    const copy: Record<string, number> = {};
    let count = 0;
    for (const key in values) {
      const value = values[key];
      validateKey(key, 'metric');
      validateMetricValue(key, value);
      copy[key] = value;
      count++;
    }
    if (count === 0) return;
    if (step >= this._nextStep) this._nextStep = step + 1;
    this._owner.emit({ type: 'metrics', runId: this.id, step, timestamp, values: copy });
  }

  setTags(tags: Record<string, string>): void {
    this._assertRunning('setTags');
    const checked = checkTags(tags);
    if (Object.keys(checked).length === 0) return;
    this._owner.emit({ type: 'tags', runId: this.id, time: Date.now(), tags: checked });
  }

  logArtifact(path: string, options?: LogArtifactOptions): void {
    this._assertRunning('logArtifact');
    const source = resolve(path);
    let stats;
    try {
      stats = statSync(source);
    } catch {
      throw new Error(`artifact path ${JSON.stringify(path)} does not exist or cannot be read`);
    }
    const name = artifactName(options?.name ?? basename(source));
    this._owner.emit({
      type: 'artifact',
      runId: this.id,
      time: Date.now(),
      path: source,
      name,
      kind: stats.isDirectory() ? 'directory' : 'file',
      size: stats.isDirectory() ? artifactSize(source) : stats.size,
    });
  }

  logModel(model: ModelInput, options?: LogModelOptions): void {
    this._assertRunning('logModel');
    const name = artifactName(options?.name ?? 'model');
    const staged = stageModel(this.id, name, model);
    this._staged.push(dirname(staged));
    this.logArtifact(staged, { name: `models/${name}` });
  }

  finish(status: FinalRunStatus = 'success', error?: unknown): Promise<void> {
    if (this._finished !== undefined) return this._finished;
    if (!FINAL_STATUSES.has(status)) {
      throw new TypeError(`finish status must be 'success', 'failed', 'killed' or 'crashed', got ${JSON.stringify(status)}`);
    }
    this._status = status;
    const event: RunEvent = { type: 'run_finished', runId: this.id, endTime: Date.now(), status };
    if (error !== undefined) event.error = toErrorInfo(error);
    this._owner.emit(event);
    this._finished = this._owner.onRunFinished(this);
    return this._finished;
  }

  /** Deletes the staging copies of logged models (called once every backend has them). */
  removeStagedFiles(): void {
    for (const dir of this._staged.splice(0)) rmSync(dir, { recursive: true, force: true });
  }

  /**
   * The end of an `await using` scope: finishes the run 'success' unless it is finished already.
   * Disposal does not see an exception thrown in the scope; a block that fails must call
   * `finish('failed', error)` itself (or run inside `withRun`).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.finish('success');
  }

  private _assertRunning(method: string): void {
    if (this._status !== 'running') {
      throw new Error(`run ${JSON.stringify(this.name)} (${this.id}) is ${this._status}: ${method} after finish is not allowed`);
    }
  }
}

export function checkTags(tags: Record<string, string>): Record<string, string> {
  if (typeof tags !== 'object' || tags === null) throw new TypeError('tags must be an object of strings');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(tags)) {
    validateKey(key, 'tag');
    out[key] = validateTagValue(key, value);
  }
  return out;
}

// Artifact names are relative `/` paths without `.`/`..` segments (they become remote paths).
function artifactName(name: string): string {
  const normalized = name.split(sep).join('/');
  const segments = normalized.split('/');
  if (normalized === '' || normalized.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new TypeError(`invalid artifact name ${JSON.stringify(name)}: a relative path without empty, '.' or '..' segments`);
  }
  return normalized;
}
