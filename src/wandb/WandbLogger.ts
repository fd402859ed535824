// Logs runs straight to Weights & Biases (W&B's cloud, or a server at WANDB_BASE_URL).

import { BackendLogger } from '../core/BackendLogger.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import { WandbBackend } from './WandbBackend.js';
import type { WandbBackendOptions, WandbStats } from './WandbBackend.js';

export interface WandbLoggerOptions extends WandbBackendOptions, BackendLoggerOptions {}

/**
 * Each runtel run becomes a W&B run: params as its config, metrics as history rows and summary,
 * tags, files, nested runs as groups. `WANDB_MODE=offline` (or `disabled`) sends nothing: the JSONL
 * store keeps the run, and `runtel sync --to wandb` uploads it later.
 */
export class WandbLogger extends BackendLogger {
  declare readonly backend: WandbBackend;

  constructor(options: WandbLoggerOptions = {}) {
    super(new WandbBackend(options), options);
  }

  /** Delivery counters: points sent, queued, undelivered, retries, heartbeats. */
  stats(): WandbStats {
    return this.backend.stats();
  }

  /** Where a run lives in W&B (entity, project, W&B run id), once created there. */
  wandbRun(runId: string): Promise<{ entity: string; project: string; id: string } | undefined> {
    return this.backend.wandbRun(runId);
  }
}
