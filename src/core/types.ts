// The public run protocol: what training code sees. Implementations live elsewhere
// (core/RunHandle.ts, core/BackendLogger.ts); backends implement core/RunBackend.ts.

/**
 * A run's lifecycle state. Terminal states map to MLflow FINISHED / FAILED / KILLED; `crashed` (the
 * process died without finishing the run, found by whoever noticed) is FAILED with the tag
 * `runtel.end_reason=crashed`.
 */
export type RunStatus = 'running' | 'success' | 'failed' | 'killed' | 'crashed';

/** The states a run may be finished with. */
export type FinalRunStatus = Exclude<RunStatus, 'running'>;

/** A nested configuration object; leaves become params, keys joined with `.`. */
export type ConfigValue = unknown;

export interface RunOptions {
  /**
   * Display name. Default: `run-<first 8 hex of the id>`; in a process launched with a parent's
   * `childEnv()`, `<parent name>-<first 8 hex>`, and `…-rank<N>` where a rank is set (RANK, SLURM_PROCID).
   */
  name?: string;
  /** Experiment name. Default: the parent run's experiment for a nested run, else env `RUNTEL_EXPERIMENT`, else `"default"`. */
  experiment?: string;
  /** Hyperparameters, logged as params (flattened with `.`). */
  config?: Record<string, ConfigValue>;
  /** Initial tags. */
  tags?: Record<string, string>;
  /** When true, the parent is the current run (see `activate`, `withRun` and `activeRun()`). */
  nested?: boolean;
  /**
   * Explicit parent run; takes precedence over `nested`. Without one (and without `nested`), a run
   * in a process whose environment names a parent (`RUNTEL_PARENT_RUN_ID`, see `Run.childEnv()`) is
   * that run's child. `null`: top-level whatever the environment says.
   */
  parent?: Run | null;
  /**
   * Make the run current for the code that follows in this async context (the rest of the function
   * and whatever it awaits or calls) until it finishes, as `mlflow.start_run()` does: `activeRun()`,
   * `nested: true` and OpenTelemetry spans created meanwhile (auto-instrumented HTTP calls) see it.
   * Default true; `withRun` and `Experiment` pass false and make the run current inside their callback only.
   */
  activate?: boolean;
  /** Resume an earlier run of this logger's backend: it goes back to `running` and continues its step counter. */
  runId?: string;
}

export interface LogMetricsOptions {
  /** Non-negative safe integer. Default: one more than the largest step this run has logged (0 at first). */
  step?: number;
  /** Milliseconds since the Unix epoch, or a Date. Default: now. */
  timestamp?: number | Date;
}

export interface LogArtifactOptions {
  /** Relative destination path inside the run's artifacts. Default: the source's base name. */
  name?: string;
}

export interface LogModelOptions {
  /** Model name; stored under `models/<name>`. Default: `"model"`. */
  name?: string;
}

/** A model as `logModel` accepts it: a JSON-serialisable value, raw bytes, or a file or directory path. */
export type ModelInput = Uint8Array | string | object;

export interface Run extends AsyncDisposable {
  /** 32 lowercase hex characters, generated client-side. */
  readonly id: string;
  readonly name: string;
  readonly experiment: string;
  readonly parentId: string | undefined;
  readonly status: RunStatus;

  /**
   * The environment for a process this run launches (merge it into `spawn`/`fork`'s `env` or a job
   * spec): runs started there become this run's children, in its experiment and trace.
   * Keys: RUNTEL_PARENT_RUN_ID, RUNTEL_PARENT_RUN_NAME, RUNTEL_EXPERIMENT, TRACEPARENT, TRACESTATE
   * (an empty value means none, so it also clears one this process inherited).
   */
  childEnv(): Record<string, string>;
  /** Write-once params: the same value again is a no-op, a different value throws. */
  logParams(params: Record<string, ConfigValue>): void;
  /** Enqueues one point per key at one step; never waits for I/O. */
  logMetrics(values: Record<string, number>, options?: LogMetricsOptions): void;
  /** Last write wins. */
  setTags(tags: Record<string, string>): void;
  /** A file or directory; read by the backends after this returns, so leave it unchanged until `finish()` resolves. */
  logArtifact(path: string, options?: LogArtifactOptions): void;
  /** Serialises the model now and stores it as an artifact under `models/<name>`, with `runtel-model.json` metadata. */
  logModel(model: ModelInput, options?: LogModelOptions): void;
  /**
   * Finishes the run (idempotent: later calls return the first call's promise). Resolves when every
   * backend has the final state, or when the flush deadline has passed. `crashed` is for a
   * supervisor that saw the run's process die (the process itself cannot say it).
   */
  finish(status?: FinalRunStatus, error?: unknown): Promise<void>;
}

export interface Logger {
  /** Synchronous: the run is usable at once; backends create it remotely in the background. */
  startRun(options?: RunOptions): Run;
  /** Delivers everything queued so far (bounded by the logger's flush deadline). */
  forceFlush(): Promise<void>;
  /** Finishes runs still running as `'killed'`, flushes and releases resources. Idempotent. */
  shutdown(): Promise<void>;
}
