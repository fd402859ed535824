// Where the bridge sends runs: the MLflow and W&B backends the environment names, as the library
// reads it, and how each is described in logs (URLs without credentials).

import type { RunBackend } from '../core/RunBackend.js';
import { getStringFromEnv } from '../core/env.js';
import { DeliveryBackend } from '../delivery/DeliveryBackend.js';
import { MlflowBackend } from '../mlflow/MlflowBackend.js';
import type { MlflowBackendOptions } from '../mlflow/MlflowBackend.js';
import { WandbBackend } from '../wandb/WandbBackend.js';
import type { WandbBackendOptions } from '../wandb/WandbBackend.js';
import { senderQueueLimit } from './ingest/Ingest.js';

export interface BridgeTargetOptions {
  /** Options of the MLflow target, or false for none. */
  mlflow?: MlflowBackendOptions | false;
  /** Options of the W&B target, or false for none. */
  wandb?: WandbBackendOptions | false;
  /** The bridge's bound on queued points (the senders' own bound is set well above it). */
  maxQueuedPoints?: number;
  /** How long a target keeps delivering at shutdown. */
  flushTimeoutMillis?: number;
}

export const DEFAULT_MAX_QUEUED_POINTS = 200_000;

/**
 * The targets named by the environment (MLFLOW_TRACKING_URI, WANDB_API_KEY) or by the options, each
 * finding runs it already has (a restarted bridge duplicates nothing) and keeping the process alive
 * while it delivers.
 */
export function bridgeTargetsFromEnv(options: BridgeTargetOptions = {}): RunBackend[] {
  const targets: RunBackend[] = [];
  const shared = {
    maxQueuedPoints: senderQueueLimit(options.maxQueuedPoints ?? DEFAULT_MAX_QUEUED_POINTS),
    keepProcessAlive: true,
    ...(options.flushTimeoutMillis !== undefined ? { flushTimeoutMillis: options.flushTimeoutMillis } : {}),
  };
  if (options.mlflow !== false && (options.mlflow !== undefined || getStringFromEnv('MLFLOW_TRACKING_URI') !== undefined)) {
    targets.push(new MlflowBackend({ ...shared, ...(options.mlflow ?? {}), findExistingRuns: true, sourceTags: false }));
  }
  if (options.wandb !== false && (options.wandb !== undefined || getStringFromEnv('WANDB_API_KEY') !== undefined)) {
    const wandb = new WandbBackend({ ...shared, ...(options.wandb ?? {}), findExistingRuns: true });
    if (wandb.mode === 'online') targets.push(wandb);
  }
  return targets;
}

/** `mlflow http://…` for logs; a target of the bridge's own kind is described by its location. */
export function describeTarget(target: RunBackend): string {
  if (target instanceof DeliveryBackend) return target.location;
  return target.name;
}
