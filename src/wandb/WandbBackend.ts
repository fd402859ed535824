// Run events → W&B: the shared delivery engine driving the W&B target. Used by WandbLogger, the W&B
// OTel exporters, the bridge and `runtel sync --to wandb` (replay mode).

import type { RunEvent } from '../core/events.js';
import { getStringFromEnv } from '../core/env.js';
import { DeliveryBackend } from '../delivery/DeliveryBackend.js';
import type { TargetStats } from '../delivery/DeliveryBackend.js';
import type { TargetError } from '../delivery/TargetError.js';
import { WandbClient } from './WandbClient.js';
import type { WandbClientOptions } from './WandbClient.js';
import { MAX_LINE_BYTES, MAX_REQUEST_BYTES } from './history.js';
import { WandbTarget } from './WandbTarget.js';
import type { WandbRunState } from './WandbTarget.js';

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
  /**
   * A running run with nothing else to send sends a heartbeat this often, so W&B does not mark it
   * crashed. Default: env `RUNTEL_HEARTBEAT_INTERVAL_MILLIS`, else 30000.
   */
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
  /** Finished runs kept for late data before they are forgotten. Default 1000. */
  maxDoneRuns?: number;
  /** How long `shutdown()` keeps delivering. Default: env `RUNTEL_FLUSH_TIMEOUT_MILLIS`, else 5000. */
  flushTimeoutMillis?: number;
  /**
   * Ask the server for each run before streaming (RunResumeStatus), continue its history after
   * the lines it has, and skip the points it has (read from its history). The OTel exporters and
   * the bridge do. Default: only for resumed runs.
   */
  findExistingRuns?: boolean;
  /**
   * Replay a stored run (`runtel sync --to wandb`): history is rebuilt from the start and the lines
   * the server has already (its historyLineCount) are skipped, so a second sync sends nothing twice.
   */
  replay?: boolean;
  /** Told when a request with metric points was delivered (progress). */
  onDelivered?: (points: number) => void;
  /** Told before each retry (the backend also reports the first retry of an outage). */
  onRetry?: (error: TargetError, attempt: number) => void;
}

export interface WandbStats extends TargetStats {
  /** Points W&B had already (a replay, or a restarted bridge sent them again). */
  skippedPoints: number;
  /** History lines accepted. */
  historyLines: number;
  /** Rows written with a `_step` other than their runtel step (late points, split rows). */
  remappedRows: number;
}

const W_AND_B_MODES: Record<string, WandbMode> = { online: 'online', run: 'online', offline: 'offline', dryrun: 'offline', disabled: 'disabled' };

/** `WANDB_MODE` as runtel reads it (unset or unknown: online). */
export function wandbModeFromEnv(): WandbMode {
  const raw = getStringFromEnv('WANDB_MODE')?.toLowerCase();
  return raw === undefined ? 'online' : (W_AND_B_MODES[raw] ?? 'online');
}

export class WandbBackend extends DeliveryBackend<WandbRunState, WandbStats> {
  readonly mode: WandbMode;
  /** Undefined in offline and disabled mode. */
  readonly client: WandbClient | undefined;
  private readonly _wandb: WandbTarget;

  constructor(options: WandbBackendOptions = {}) {
    const mode = options.mode ?? wandbModeFromEnv();
    // Offline, nothing is sent: the client is never used, so it needs no key.
    const client = new WandbClient(mode === 'online' ? options : { ...options, apiKey: 'offline' });
    const maxRequestBytes = options.maxRequestBytes ?? MAX_REQUEST_BYTES;
    const maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
    if (!(maxRequestBytes > 1024)) throw new RangeError(`maxRequestBytes must be greater than 1024, got ${maxRequestBytes}`);
    if (!(maxLineBytes > 0)) throw new RangeError(`maxLineBytes must be greater than 0, got ${maxLineBytes}`);
    const target = new WandbTarget(client, {
      maxRequestBytes,
      maxLineBytes,
      stepMetric: options.stepMetric,
      parseParamValues: options.parseParamValues ?? true,
      findExistingRuns: options.findExistingRuns ?? false,
      replay: options.replay ?? false,
      project: options.project ?? getStringFromEnv('WANDB_PROJECT'),
      entity: options.entity ?? getStringFromEnv('WANDB_ENTITY'),
      group: options.group ?? getStringFromEnv('WANDB_RUN_GROUP'),
      jobType: options.jobType ?? getStringFromEnv('WANDB_JOB_TYPE'),
    });
    super(target, {
      flushIntervalMillis: options.flushIntervalMillis ?? 2000,
      ...(options.heartbeatIntervalMillis !== undefined ? { heartbeatIntervalMillis: options.heartbeatIntervalMillis } : {}),
      ...(options.maxQueuedPoints !== undefined ? { maxQueuedPoints: options.maxQueuedPoints } : {}),
      ...(options.maxDoneRuns !== undefined ? { maxDoneRuns: options.maxDoneRuns } : {}),
      ...(options.flushTimeoutMillis !== undefined ? { flushTimeoutMillis: options.flushTimeoutMillis } : {}),
      ...(options.onDelivered !== undefined ? { onDelivered: options.onDelivered } : {}),
      ...(options.onRetry !== undefined ? { onRetry: options.onRetry } : {}),
    });
    this.mode = mode;
    this.client = mode === 'online' ? client : undefined;
    this._wandb = target;
  }

  override onEvent(event: RunEvent): void {
    if (this.mode === 'online') super.onEvent(event);
  }

  /** The W&B location of a run (once it exists there): entity, project and W&B run id. */
  wandbRun(runtelId: string): Promise<{ entity: string; project: string; id: string } | undefined> {
    return this._wandb.where(runtelId);
  }
}
