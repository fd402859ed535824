// A Logger that drives one RunBackend: creates runs, isolates backend failures, bounds flushes.
// Every shipped logger (InMemory, JSONL, Console, Composite, and the remote ones) is one of these.

import type { RunBackend } from './RunBackend.js';
import type { RunEvent, RunStartedEvent } from './events.js';
import type { RunRecord } from './RunRecord.js';
import type { Logger, Run, RunOptions } from './types.js';
import { RunHandle, checkTags, newRunId } from './RunHandle.js';
import { inheritedParent, inheritedRunName, processRank, rankTags } from './processParent.js';
import type { RunOwner } from './RunHandle.js';
import { FailureReporter } from './errors.js';
import type { BackendErrorHandler } from './errors.js';
import { activeRun, enterRun, leaveRun } from './context.js';
import { defaultExperiment, flushTimeoutFromEnv } from './env.js';
import { trackRun, untrackLogger, untrackRun } from './processExit.js';
import { validateName } from './validation.js';
import { systemMetricsSettings } from '../system/options.js';
import type { SystemMetricsSettings } from '../system/options.js';
import { SystemSampler } from '../system/SystemSampler.js';

const SHUTDOWN_GRACE_MILLIS = 1000;

export interface BackendLoggerOptions {
  /** Bound on `finish()`, `forceFlush()` and `shutdown()`. Default: env `RUNTEL_FLUSH_TIMEOUT_MILLIS`, else 5000. */
  flushTimeoutMillis?: number;
  /** Receives backend failures. Default: warn once per kind of failure on stderr, and count. */
  onError?: BackendErrorHandler;
  /**
   * Samples CPU, memory, disk, network, GPUs and this process for each top-level run while it runs
   * (nested runs share their parent's machine and samples). Default: env `RUNTEL_SYSTEM_METRICS`,
   * else `MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`, else false. See docs/system-metrics.md.
   */
  systemMetrics?: boolean;
  /** How often: default env `RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS`, else 10000 (MLflow's 10 s). */
  systemMetricsIntervalMillis?: number;
}

export class BackendLogger implements Logger {
  /** The backend this logger drives (a CompositeLogger fans out to its children's backends). */
  readonly backend: RunBackend;
  protected readonly _failures: FailureReporter;
  private readonly _flushTimeoutMillis: number;
  private readonly _runs = new Set<RunHandle>();
  private _shutdown: Promise<void> | undefined;
  private readonly _owner: RunOwner;
  private readonly _system: SystemMetricsSettings;
  private readonly _samplers = new Map<string, SystemSampler>();

  constructor(backend: RunBackend, options: BackendLoggerOptions = {}) {
    this.backend = backend;
    this._failures = new FailureReporter(options.onError);
    this._flushTimeoutMillis = options.flushTimeoutMillis ?? flushTimeoutFromEnv();
    if (!(this._flushTimeoutMillis > 0)) throw new RangeError('flushTimeoutMillis must be greater than 0');
    this._system = systemMetricsSettings(options.systemMetrics, options.systemMetricsIntervalMillis);
    backend.bindFailureReporter?.((failure) => this._failures.report(failure));
    this._owner = {
      emit: (event) => this._emit(event),
      childEnv: (run) => {
        try {
          return this.backend.childEnv?.(run.id);
        } catch (error) {
          this._failures.report({ backend: this.backend.name, operation: 'childEnv', error });
          return undefined;
        }
      },
      onRunFinished: async (run) => {
        this._samplers.get(run.id)?.stop();
        this._samplers.delete(run.id);
        leaveRun(run);
        this._runs.delete(run);
        untrackRun(run);
        // Staged model copies go once every backend has them; after a timeout they stay for the retries.
        const flushed = this.backend.flushRun?.(run.id) ?? this.backend.forceFlush();
        const delivered = await this._bounded(flushed, 'forceFlush');
        if (delivered && this.backend.retainsArtifactPaths !== true) run.removeStagedFiles();
      },
    };
  }

  startRun(options: RunOptions = {}): Run {
    if (this._shutdown !== undefined) throw new Error('startRun after shutdown: this logger is shut down');
    const parent = options.parent === null ? undefined : (options.parent ?? (options.nested === true ? activeRun() : undefined));
    if (options.nested === true && parent === undefined && options.parent !== null) {
      throw new Error('startRun({ nested: true }) needs an active run (one started earlier in this async context and not finished yet, or the run of an enclosing withRun) or an explicit parent');
    }
    // A run with no parent in this process takes the one its launcher named (Run.childEnv()), and
    // the rank of a distributed launch; `parent: null` opts out of the parent.
    const local = parent !== undefined;
    const inherited = local || options.parent === null || options.runId !== undefined ? undefined : inheritedParent();
    const rank = local ? undefined : processRank();
    // A nested run lands in its parent's experiment unless it names its own (RUNTEL_EXPERIMENT is the launcher's).
    const experiment = validateName(options.experiment ?? parent?.experiment ?? defaultExperiment(), 'experiment');
    const tags = { ...(rank === undefined ? {} : rankTags(rank)), ...(options.tags === undefined ? {} : checkTags(options.tags)) };
    const id = options.runId === undefined ? newRunId() : undefined;
    let name = options.name === undefined ? undefined : validateName(options.name, 'run name');
    if (name === undefined && id !== undefined && (inherited !== undefined || rank !== undefined)) name = inheritedRunName(id, inherited, rank);

    let run: RunHandle;
    let resumed = false;
    let lastSystemStep = -1;
    if (options.runId !== undefined) {
      const record = this._resume(options.runId);
      lastSystemStep = record.lastSystemStep ?? -1;
      run = new RunHandle(this._owner, {
        id: record.id,
        name: name ?? record.name,
        experiment: options.experiment ?? record.experiment,
        ...(parent?.id ?? record.parentId ? { parentId: parent?.id ?? record.parentId } : {}),
        params: record.params,
        lastStep: record.lastStep,
      });
      resumed = true;
    } else {
      const parentId = parent?.id ?? inherited?.id;
      run = new RunHandle(this._owner, {
        id: id!,
        ...(name !== undefined ? { name } : {}),
        experiment,
        ...(parentId !== undefined ? { parentId } : {}),
      });
    }
    const params = options.config === undefined ? {} : run.checkParams(options.config);
    run.acceptParams(params);

    const event: RunStartedEvent = {
      type: 'run_started',
      runId: run.id,
      name: run.name,
      experiment: run.experiment,
      startTime: Date.now(),
      params,
      tags,
    };
    if (run.parentId !== undefined) event.parentId = run.parentId;
    if (resumed) event.resumed = true;
    if (inherited !== undefined) {
      event.parentInherited = true;
      if (inherited.trace !== undefined) event.parentTrace = inherited.trace;
    }
    this._runs.add(run);
    trackRun(run, this);
    this._emit(event);
    if (this._system.enabled && run.parentId === undefined) {
      this._samplers.set(run.id, new SystemSampler({ runId: run.id, intervalMillis: this._system.intervalMillis, firstStep: lastSystemStep + 1, emit: (e) => this._emit(e) }));
    }
    if (options.activate !== false) enterRun(this, run);
    return run;
  }

  /** Runs `fn` inside the backend's context for `run` (e.g. the run's OTel span). */
  runInContext<T>(run: Run, fn: () => T): T {
    return this.backend.runInContext === undefined ? fn() : this.backend.runInContext(run.id, fn);
  }

  async forceFlush(): Promise<void> {
    await this._bounded(this.backend.forceFlush(), 'forceFlush');
  }

  shutdown(): Promise<void> {
    this._shutdown ??= (async () => {
      await Promise.allSettled([...this._runs].map((run) => run.finish('killed')));
      // Backends give up at the deadline themselves (and say what was not delivered); the grace
      // only catches one that does not.
      await this._bounded(this.backend.shutdown({ timeoutMillis: this._flushTimeoutMillis }), 'shutdown', SHUTDOWN_GRACE_MILLIS);
      untrackLogger(this);
    })();
    return this._shutdown;
  }

  /** Failure counts by `backend:operation` since this logger was created. */
  failureCounts(): Record<string, number> {
    return this._failures.counts();
  }

  /** The names of the backends still busy when a flush deadline passes. */
  protected _pendingBackends(): string[] {
    return [this.backend.name];
  }

  private _resume(runId: string): RunRecord {
    let record;
    try {
      record = this.backend.resume?.(runId);
    } catch (error) {
      this._failures.report({ backend: this.backend.name, operation: 'resume', error });
    }
    if (record === undefined) throw new Error(`cannot resume run ${JSON.stringify(runId)}: backend ${this.backend.name} does not know it`);
    return record;
  }

  private _emit(event: RunEvent): void {
    try {
      this.backend.onEvent(event);
    } catch (error) {
      this._failures.report({ backend: this.backend.name, operation: 'onEvent', error });
    }
  }

  /**
   * Waits for `work` up to the flush deadline; true when it settled in time (failed or not). The
   * deadline timer keeps the process alive (an awaited shutdown must settle), nothing else does.
   */
  private async _bounded(work: Promise<void>, operation: string, graceMillis = 0): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this._flushTimeoutMillis + graceMillis);
    });
    try {
      const outcome = await Promise.race([work.then(() => 'done' as const), deadline]);
      if (outcome === 'done') return true;
      const detail = this.backend.describePending?.();
      for (const backend of this._pendingBackends()) {
        this._failures.report({
          backend,
          operation,
          error: new Error(`${operation} did not finish within ${this._flushTimeoutMillis} ms${detail === undefined ? '' : ` (${detail})`}; delivery continues in the background`),
        });
      }
      return false;
    } catch (error) {
      this._failures.report({ backend: this.backend.name, operation, error });
      return true;
    } finally {
      clearTimeout(timer);
    }
  }
}
