// `report_to` for runtel: the backends a program logs to, chosen by the environment.
// A new backend adds one row to BACKENDS.

import type { Logger } from '../core/types.js';
import type { BackendLoggerOptions } from '../core/BackendLogger.js';
import { getStringFromEnv } from '../core/env.js';
import { CompositeLogger } from './CompositeLogger.js';
import { ConsoleLogger } from './ConsoleLogger.js';
import { JsonlLogger } from './jsonl/JsonlLogger.js';
import { InMemoryLogger } from './InMemoryLogger.js';
import { MlflowLogger } from '../mlflow/MlflowLogger.js';
import { createOtelLoggerFromEnv, otlpEndpointConfigured } from '../otel/startOtel.js';
import { WandbLogger } from '../wandb/WandbLogger.js';
import { wandbModeFromEnv } from '../wandb/WandbBackend.js';

interface BackendEntry {
  create: (options: BackendLoggerOptions) => Logger;
  /** Whether the environment selects this backend when `RUNTEL_BACKENDS` is unset. */
  selectedByDefault: () => boolean;
}

const BACKENDS: Record<string, BackendEntry> = {
  jsonl: { create: (o) => new JsonlLogger(o), selectedByDefault: () => true },
  console: { create: (o) => new ConsoleLogger(o), selectedByDefault: () => true },
  memory: { create: (o) => new InMemoryLogger(o), selectedByDefault: () => false },
  otel: { create: (o) => createOtelLoggerFromEnv(o), selectedByDefault: otlpEndpointConfigured },
  mlflow: { create: (o) => new MlflowLogger(o), selectedByDefault: () => getStringFromEnv('MLFLOW_TRACKING_URI') !== undefined },
  wandb: { create: (o) => new WandbLogger(o), selectedByDefault: () => getStringFromEnv('WANDB_API_KEY') !== undefined && wandbModeFromEnv() === 'online' },
};

/** The backend names `createLoggerFromEnv` uses now. Throws on an unknown name in `RUNTEL_BACKENDS`. */
export function backendsFromEnv(): string[] {
  const explicit = getStringFromEnv('RUNTEL_BACKENDS');
  if (explicit === undefined) return Object.keys(BACKENDS).filter((name) => BACKENDS[name]!.selectedByDefault());
  const names = explicit
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  if (names.length === 1 && names[0] === 'none') return [];
  for (const name of names) {
    if (!(name in BACKENDS)) {
      throw new Error(`RUNTEL_BACKENDS names unknown backend ${JSON.stringify(name)}; supported: ${Object.keys(BACKENDS).join(', ')}, or none`);
    }
  }
  return [...new Set(names)];
}

/**
 * Like Hugging Face's `report_to`: the JSONL store (`RUNTEL_DIR`, default `./runtel-runs`) and the
 * console always, plus each backend whose environment is set. `RUNTEL_BACKENDS=jsonl,console,...`
 * overrides the choice (`none` for no backend at all).
 */
export function createLoggerFromEnv(options: BackendLoggerOptions = {}): CompositeLogger {
  return new CompositeLogger(
    backendsFromEnv().map((name) => BACKENDS[name]!.create(options)),
    options,
  );
}
