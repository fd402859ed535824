// Logs runs straight to an MLflow tracking server over REST.

import { BackendLogger } from '../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import type { Run, RunOptions } from '../core/types.js';
import { MlflowBackend } from './MlflowBackend.js';
import type { MlflowBackendOptions, MlflowStats } from './MlflowBackend.js';

export interface MlflowLoggerOptions extends MlflowBackendOptions, BackendLoggerOptions {}

export class MlflowLogger extends BackendLogger {
  declare readonly backend: MlflowBackend;

  constructor(options: MlflowLoggerOptions = {}) {
    super(new MlflowBackend(options), options);
  }

  /**
   * Resumes an MLflow run, found by its `runtel.run_id` tag (in `options.experiment`) or by its MLflow
   * run id: it goes back to RUNNING, and params and the step counter continue. (Plain
   * `startRun({ runId })` works too when another backend, such as the JSONL store, knows the run.)
   */
  async resumeRun(runId: string, options: Omit<RunOptions, 'runId'> = {}): Promise<Run> {
    const record = await this.backend.prefetch(runId, options.experiment);
    if (record === undefined) throw new Error(`cannot resume run ${JSON.stringify(runId)}: MLflow has no such run`);
    return this.startRun({ ...options, runId: record.id });
  }

  /** Delivery counters: points sent, queued, undelivered, and retries. */
  stats(): MlflowStats {
    return this.backend.stats();
  }
}
