// Lifecycle callbacks (Keras / Hugging Face style) mapped onto a run.

import { createRequire } from 'node:module';
import type { FinalRunStatus, Run } from '../core/types.js';

type Awaitable = void | Promise<void>;
export type MetricLogs = Record<string, number>;

/** Optional hooks; plain objects are fine. */
export interface RunCallbacks {
  onTrainBegin?(): Awaitable;
  onEpochBegin?(epoch: number): Awaitable;
  onEpochEnd?(epoch: number, logs?: MetricLogs): Awaitable;
  onStepEnd?(step: number, logs?: MetricLogs): Awaitable;
  onLog?(logs: MetricLogs, step?: number): Awaitable;
  onEvaluate?(metrics: MetricLogs, step?: number): Awaitable;
  onTrainEnd?(status?: FinalRunStatus): Awaitable;
}

const HOOKS = ['onTrainBegin', 'onEpochBegin', 'onEpochEnd', 'onStepEnd', 'onLog', 'onEvaluate', 'onTrainEnd'] as const;

/**
 * Callbacks that log to `run`, then call each of `extra` in order (awaiting each). The mapping:
 * - `onStepEnd(step, logs)` and `onLog(logs, step)` log `logs` at `step`.
 * - `onEpochEnd(epoch, logs)` logs `logs` at step `epoch`; once step-level logging is in use it logs
 *   them at the last step seen instead, with an `epoch` metric (as Hugging Face does).
 * - `onEvaluate(metrics, step)` logs each metric as `eval/<key>` (keys already under `eval/` stay).
 * - `onTrainBegin`/`onTrainEnd` time training: `onTrainEnd` logs `train/duration_seconds` and sets the
 *   tag `train.status`. They do not finish the run: the code that started it does.
 */
export function callbacksFor(run: Run, ...extra: RunCallbacks[]): Required<RunCallbacks> {
  let lastStep: number | undefined;
  let trainStart: number | undefined;
  const own: Required<RunCallbacks> = {
    onTrainBegin: () => {
      trainStart = performance.now();
    },
    onEpochBegin: () => undefined,
    onEpochEnd: (epoch, logs) => {
      if (logs === undefined) return;
      if (lastStep === undefined) run.logMetrics(logs, { step: epoch });
      else run.logMetrics({ ...logs, epoch }, { step: lastStep });
    },
    onStepEnd: (step, logs) => {
      lastStep = step;
      if (logs !== undefined) run.logMetrics(logs, { step });
    },
    onLog: (logs, step) => {
      if (step !== undefined) lastStep = Math.max(lastStep ?? step, step);
      run.logMetrics(logs, step === undefined ? undefined : { step });
    },
    onEvaluate: (metrics, step) => {
      const prefixed: MetricLogs = {};
      for (const [key, value] of Object.entries(metrics)) prefixed[key.startsWith('eval/') ? key : `eval/${key}`] = value;
      run.logMetrics(prefixed, step === undefined ? (lastStep === undefined ? undefined : { step: lastStep }) : { step });
    },
    onTrainEnd: (status = 'success') => {
      if (trainStart !== undefined) run.logMetrics({ 'train/duration_seconds': (performance.now() - trainStart) / 1000 }, lastStep === undefined ? undefined : { step: lastStep });
      run.setTags({ 'train.status': status });
    },
  };
  const combined = {} as Required<RunCallbacks>;
  for (const hook of HOOKS) {
    combined[hook] = async (...args: unknown[]) => {
      await (own[hook] as (this: void, ...a: unknown[]) => Awaitable)(...args);
      for (const callbacks of extra) {
        // Called as a method: user callbacks may be class instances that use `this`.
        if (callbacks[hook] !== undefined) await (callbacks as Record<string, (...a: unknown[]) => Awaitable>)[hook]!(...args);
      }
    };
  }
  return combined;
}

/** The shape TensorFlow.js `model.fit({ callbacks })` accepts as a custom callback (no tfjs import). */
export interface TfjsCustomCallback {
  onTrainBegin?: (logs?: Record<string, unknown>) => Promise<void>;
  onTrainEnd?: (logs?: Record<string, unknown>) => Promise<void>;
  onEpochBegin?: (epoch: number, logs?: Record<string, unknown>) => Promise<void>;
  onEpochEnd?: (epoch: number, logs?: Record<string, unknown>) => Promise<void>;
  onBatchBegin?: (batch: number, logs?: Record<string, unknown>) => Promise<void>;
  onBatchEnd?: (batch: number, logs?: Record<string, unknown>) => Promise<void>;
}

/** What `tfjsCallbacks` needs of the TensorFlow.js module: its `CustomCallback` class. */
export interface TfjsModule {
  CustomCallback: new (args: TfjsCustomCallback) => object;
}

export interface TfjsCallbacksOptions {
  /**
   * The tfjs module the model comes from (`import * as tf from '@tensorflow/tfjs'`, or tfjs-node).
   * Default: the one loaded in this process (found in the module cache); pass it when several copies are loaded.
   */
  tf?: TfjsModule;
}

/** Where the tfjs callbacks of a run stand, so that a later `fit` continues the run's steps. */
interface TfjsProgress {
  nextEpochStep: number;
  batches: number;
}

const tfjsProgress = new WeakMap<Run, TfjsProgress>();

/**
 * Callbacks for TensorFlow.js `model.fit`: epoch logs (`loss`, `acc`, `val_loss`, …) at step = epoch;
 * batch logs as `batch/<key>` at a running batch counter. tfjs's own `batch` and `size` entries are
 * bookkeeping, not metrics, and are left out.
 *
 * When tfjs is loaded (it is not a dependency of runtel) the result is a `tf.CustomCallback`, so it
 * goes in one `callbacks` array with tfjs's own (`tf.callbacks.earlyStopping()`), in any order.
 * Several `fit` calls on one run continue its steps: the epochs of a second `fit` (numbered from 0
 * again by tfjs, unless it has `initialEpoch`) follow the first one's, and so do the batches.
 */
export function tfjsCallbacks(run: Run, options: TfjsCallbacksOptions = {}): TfjsCustomCallback {
  let progress = tfjsProgress.get(run);
  if (progress === undefined) tfjsProgress.set(run, (progress = { nextEpochStep: 0, batches: 0 }));
  const state = progress;
  // Epoch numbers of this fit → steps: shifted so that they follow the epochs logged before.
  let offset: number | undefined;
  const epochStep = (epoch: number): number => epoch + (offset ??= Math.max(0, state.nextEpochStep - epoch));
  const hooks: TfjsCustomCallback = {
    onEpochBegin: (epoch) => {
      epochStep(epoch);
      return Promise.resolve();
    },
    onEpochEnd: (epoch, logs) => {
      const step = epochStep(epoch);
      state.nextEpochStep = Math.max(state.nextEpochStep, step + 1);
      const values = numericLogs(logs);
      if (Object.keys(values).length > 0) run.logMetrics(values, { step });
      return Promise.resolve();
    },
    onBatchEnd: (_batch, logs) => {
      const values: MetricLogs = {};
      for (const [key, value] of Object.entries(numericLogs(logs))) values[`batch/${key}`] = value;
      if (Object.keys(values).length > 0) run.logMetrics(values, { step: state.batches });
      state.batches++;
      return Promise.resolve();
    },
  };
  const CustomCallback = (options.tf ?? loadedTfjs())?.CustomCallback;
  return CustomCallback === undefined ? hooks : new CustomCallback(hooks);
}

const TFJS_LAYERS = /[\\/]@tensorflow[\\/]tfjs-layers[\\/]/;

/** The tfjs-layers module loaded in this process (the one every tfjs flavour re-exports), if any. */
function loadedTfjs(): TfjsModule | undefined {
  const found = new Map<TfjsModule['CustomCallback'], string>();
  const cache = createRequire(import.meta.url).cache;
  for (const [path, module] of Object.entries(cache)) {
    if (!TFJS_LAYERS.test(path)) continue;
    const exported = (module?.exports as Partial<TfjsModule> | undefined)?.CustomCallback;
    if (typeof exported === 'function' && !found.has(exported)) found.set(exported, path);
  }
  if (found.size > 1) {
    throw new Error(
      `tfjsCallbacks: ${found.size} copies of @tensorflow/tfjs-layers are loaded (${[...found.values()].join(', ')}); ` +
        "pass the model's module: tfjsCallbacks(run, { tf })",
    );
  }
  const [CustomCallback] = found.keys();
  return CustomCallback === undefined ? undefined : { CustomCallback };
}

function numericLogs(logs: Record<string, unknown> | undefined): MetricLogs {
  const out: MetricLogs = {};
  if (logs === undefined) return out;
  for (const [key, value] of Object.entries(logs)) {
    if (key === 'batch' || key === 'size') continue;
    if (typeof value === 'number') out[key] = value;
  }
  return out;
}
