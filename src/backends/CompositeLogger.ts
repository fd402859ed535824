// Fans every event out to many backends, in order. A backend that throws or fails never stops the
// others: its failure goes to the error handler (default: warn once per kind, count).

import type { RunBackend } from '../core/RunBackend.js';
import type { RunEvent } from '../core/events.js';
import type { RunRecord } from '../core/RunRecord.js';
import { BackendLogger } from '../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import type { BackendFailure } from '../core/errors.js';
import type { Logger, Run } from '../core/types.js';

export class CompositeBackend implements RunBackend {
  readonly name = 'composite';
  readonly children: readonly RunBackend[];
  private _reportFailure: ((failure: BackendFailure) => void) | undefined;

  readonly retainsArtifactPaths: boolean;

  constructor(children: readonly RunBackend[]) {
    this.children = children;
    this.retainsArtifactPaths = children.some((c) => c.retainsArtifactPaths === true);
  }

  onEvent(event: RunEvent): void {
    for (const child of this.children) {
      try {
        child.onEvent(event);
      } catch (error) {
        this._report(child, 'onEvent', error);
      }
    }
  }

  resume(runId: string): RunRecord | undefined {
    for (const child of this.children) {
      try {
        const record = child.resume?.(runId);
        if (record !== undefined) return record;
      } catch (error) {
        this._report(child, 'resume', error);
      }
    }
    return undefined;
  }

  bindFailureReporter(report: (failure: BackendFailure) => void): void {
    this._reportFailure = report;
    for (const child of this.children) child.bindFailureReporter?.(report);
  }

  /** Every child's additions, the earlier child's value winning a key both set (a failing child is reported, the rest still count). */
  childEnv(runId: string): Record<string, string> {
    const env: Record<string, string> = {};
    for (const child of [...this.children].reverse()) {
      try {
        Object.assign(env, child.childEnv?.(runId));
      } catch (error) {
        this._report(child, 'childEnv', error);
      }
    }
    return env;
  }

  runInContext<T>(runId: string, fn: () => T): T {
    let wrapped = fn;
    for (const child of this.children) {
      if (child.runInContext === undefined) continue;
      const inner = wrapped;
      const bind = child.runInContext.bind(child);
      wrapped = () => bind(runId, inner);
    }
    return wrapped();
  }

  forceFlush(): Promise<void> {
    return this._each('forceFlush', (child) => child.forceFlush());
  }

  flushRun(runId: string): Promise<void> {
    return this._each('forceFlush', (child) => child.flushRun?.(runId) ?? child.forceFlush());
  }

  async shutdown(options?: { timeoutMillis?: number }): Promise<void> {
    // The console and the store still take the run links the remote targets publish as they flush.
    await this._each('shutdown', (child) => child.shutdown(options), (child) => child.shutsDownLast !== true);
    await this._each('shutdown', (child) => child.shutdown(options), (child) => child.shutsDownLast === true);
  }

  describePending(): string | undefined {
    const parts = this.pendingChildren().map((child) => child.describePending?.()).filter((d) => d !== undefined);
    return parts.length === 0 ? undefined : parts.join('; ');
  }

  /** Children whose forceFlush or shutdown has not settled yet. */
  private readonly _pending = new Map<RunBackend, number>();

  pendingChildren(): RunBackend[] {
    return [...this._pending.keys()];
  }

  private async _each(operation: string, call: (child: RunBackend) => Promise<void>, which: (child: RunBackend) => boolean = () => true): Promise<void> {
    await Promise.all(
      this.children.filter(which).map(async (child) => {
        this._pending.set(child, (this._pending.get(child) ?? 0) + 1);
        try {
          await call(child);
        } catch (error) {
          this._report(child, operation, error);
        } finally {
          const left = this._pending.get(child)! - 1;
          if (left === 0) this._pending.delete(child);
          else this._pending.set(child, left);
        }
      }),
    );
  }

  private _report(child: RunBackend, operation: string, error: unknown): void {
    this._reportFailure?.({ backend: child.name, operation, error });
  }
}

/** Adapts a Logger that is not event-based (a user's own) so a CompositeLogger can drive it. */
class LoggerBackend implements RunBackend {
  readonly name: string;
  private readonly _logger: Logger;
  private readonly _runs = new Map<string, Run>();

  constructor(logger: Logger) {
    this._logger = logger;
    this.name = logger.constructor.name;
  }

  onEvent(event: RunEvent): void {
    if (event.type === 'run_started') {
      const parent = event.parentId === undefined ? undefined : this._runs.get(event.parentId);
      this._runs.set(
        event.runId,
        this._logger.startRun({ name: event.name, experiment: event.experiment, tags: event.tags, config: event.params, ...(parent ? { parent } : {}) }),
      );
      return;
    }
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    switch (event.type) {
      case 'params':
        return run.logParams(event.params);
      case 'tags':
        return run.setTags(event.tags);
      case 'metrics':
      // A Logger of its own has no system channel: MLflow's way, `system/*` keys as metrics.
      case 'system_metrics':
        return run.logMetrics(event.values, { step: event.step, timestamp: event.timestamp });
      case 'artifact':
        return run.logArtifact(event.path, { name: event.name });
      case 'run_finished':
        this._runs.delete(event.runId);
        void run.finish(event.status, event.error);
    }
  }

  forceFlush(): Promise<void> {
    return this._logger.forceFlush();
  }

  shutdown(): Promise<void> {
    return this._logger.shutdown();
  }
}

export class CompositeLogger extends BackendLogger {
  declare readonly backend: CompositeBackend;

  constructor(loggers: readonly Logger[], options: BackendLoggerOptions = {}) {
    super(new CompositeBackend(loggers.map((l) => (l instanceof BackendLogger ? l.backend : new LoggerBackend(l)))), options);
  }

  protected override _pendingBackends(): string[] {
    return this.backend.pendingChildren().map((b) => b.name);
  }
}
