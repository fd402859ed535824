// `runtel demo`: a real, small training run. Softmax regression on Iris, a 3 × 3 grid over learning
// rate × L2, each grid point a nested trial run with per-epoch curves and the trained model logged.

import { resolve } from 'node:path';
import Table from 'cli-table3';
import type { Logger, Run } from '../core/types.js';
import type { RunBackend } from '../core/RunBackend.js';
import type { RunEvent } from '../core/events.js';
import { BackendLogger } from '../core/BackendLogger.js';
import { formatNumber } from '../core/format.js';
import { CompositeLogger } from '../backends/CompositeLogger.js';
import { ConsoleBackend } from '../backends/ConsoleLogger.js';
import { JsonlLogger, defaultStoreDir } from '../backends/jsonl/JsonlLogger.js';
import { backendsFromEnv, createLoggerFromEnv } from '../backends/createLoggerFromEnv.js';
import { Experiment } from '../experiment/Experiment.js';
import type { ExperimentSummary } from '../experiment/Experiment.js';
import { FEATURE_NAMES, loadIrisSplit } from './data.js';
import type { IrisSplit } from './data.js';
import { evaluate, gradientStep, initModel } from './softmax.js';
import { BarProgress, PlainProgress } from './progress.js';
import type { TrialProgress } from './progress.js';

export const DEMO_EXPERIMENT = 'iris-softmax';
/** The demo minimises the validation cross-entropy after the last epoch. */
export const DEMO_OBJECTIVE = 'final_val_loss';
export const DEMO_GRID = { lr: [0.05, 0.2, 0.5], l2: [0, 0.001, 0.01] };
/** Metric keys logged every epoch (step = epoch; step 0 is the untrained model). */
export const EPOCH_METRICS = ['train/loss', 'val/loss', 'val/accuracy'] as const;

export interface DemoParams {
  lr: number;
  l2: number;
}

export interface DemoOptions {
  /**
   * Where runs go. Default: the loggers `createLoggerFromEnv()` would build (`RUNTEL_BACKENDS`; the
   * JSONL store in `dir` and the console), shut down at the end. A logger given here is flushed, not
   * shut down, and its own console output (if any) is not routed around the progress bars.
   */
  logger?: Logger;
  /** JSONL store folder when the logger is built here. Default: env `RUNTEL_DIR`, else `./runtel-runs`. */
  dir?: string;
  /** Epochs per trial. Default 100. */
  epochs?: number;
  /** Trials trained at once. Default 3. */
  concurrency?: number;
  /** Seed of the train/validation split. Default 42. */
  seed?: number;
  /** Pause after each epoch, in milliseconds, so that progress is watchable. Default 0. */
  epochDelayMs?: number;
  /** No progress bars, no console lines, no summary. Default false. */
  quiet?: boolean;
}

/** Trains every grid point and resolves to the experiment summary; prints the best trial unless quiet. */
export async function runDemo(options: DemoOptions = {}): Promise<ExperimentSummary<DemoParams>> {
  const epochs = positiveInteger(options.epochs ?? 100, 'epochs');
  const concurrency = positiveInteger(options.concurrency ?? 3, 'concurrency');
  const seed = options.seed ?? 42;
  if (!Number.isSafeInteger(seed)) throw new TypeError(`seed must be an integer, got ${seed}`);
  const delay = options.epochDelayMs ?? 0;
  if (!(delay >= 0)) throw new RangeError(`epochDelayMs must be 0 or more, got ${delay}`);
  const quiet = options.quiet ?? false;

  const data = loadIrisSplit(seed);
  const trials = gridPoints();
  const showBars = !quiet && process.stderr.isTTY === true;
  const progress: TrialProgress = showBars
    ? new BarProgress(
        trials.map((p, i) => ({ name: `trial-${i}`, label: paramsLabel(p) })),
        epochs,
      )
    : new PlainProgress(quiet);

  const owned = options.logger === undefined ? buildLogger(options.dir, progress, showBars) : undefined;
  const logger = options.logger ?? owned!.logger;
  const finals = new Map<number, { trainAccuracy: number; valLoss: number; valAccuracy: number }>();

  let summary: ExperimentSummary<DemoParams>;
  try {
    const experiment = new Experiment({
      logger,
      name: DEMO_EXPERIMENT,
      goal: 'minimize',
      objective: DEMO_OBJECTIVE,
      config: {
        dataset: 'iris',
        model: 'softmax-regression',
        optimizer: 'full-batch gradient descent',
        epochs,
        seed,
        train_size: data.train.x.length,
        val_size: data.val.x.length,
      },
      tags: { demo: 'true' },
    });
    summary = await experiment.run({ grid: DEMO_GRID, concurrency }, async (params, run, { index }) => {
      progress.start(index);
      try {
        const final = await train(run, data, params, epochs, seed, delay, (epoch, text) => progress.update(index, epoch, text));
        finals.set(index, final);
        progress.finish(index, true, metricsText(final.valLoss, final.valAccuracy));
        return final.valLoss;
      } catch (error) {
        progress.finish(index, false, `failed: ${error instanceof Error ? error.message : String(error)}`);
        throw error;
      }
    });
  } finally {
    progress.stop();
    if (owned !== undefined) await owned.logger.shutdown();
    else await logger.forceFlush();
  }

  if (!quiet) process.stdout.write(report(summary, finals, owned === undefined ? 'unknown' : (owned.storeDir ?? 'none')));
  return summary;
}

/** The grid in `Experiment`'s order (lr outer, l2 inner), for labelling the bars before the trials start. */
function gridPoints(): DemoParams[] {
  return DEMO_GRID.lr.flatMap((lr) => DEMO_GRID.l2.map((l2) => ({ lr, l2 })));
}

async function train(
  run: Run,
  data: IrisSplit,
  params: DemoParams,
  epochs: number,
  seed: number,
  delay: number,
  onEpoch: (epoch: number, text: string) => void,
): Promise<{ trainAccuracy: number; valLoss: number; valAccuracy: number }> {
  run.logParams({ epochs, seed });
  const model = initModel(data.classes.length, FEATURE_NAMES.length);
  let trainEval = evaluate(model, data.train);
  let valEval = evaluate(model, data.val);
  const log = (epoch: number): void => {
    run.logMetrics({ 'train/loss': trainEval.loss, 'val/loss': valEval.loss, 'val/accuracy': valEval.accuracy }, { step: epoch });
    onEpoch(epoch, metricsText(valEval.loss, valEval.accuracy));
  };
  log(0);
  for (let epoch = 1; epoch <= epochs; epoch++) {
    gradientStep(model, data.train, params.lr, params.l2);
    trainEval = evaluate(model, data.train);
    valEval = evaluate(model, data.val);
    log(epoch);
    // Let the other trials (and the progress bars) run between epochs.
    await new Promise<void>((done) => (delay > 0 ? setTimeout(done, delay) : setImmediate(done)));
  }
  run.logMetrics({ 'train/accuracy': trainEval.accuracy }, { step: epochs });
  run.logModel(
    {
      weights: model.weights,
      bias: model.bias,
      classes: data.classes,
      featureNames: FEATURE_NAMES,
      featureMeans: data.featureMeans,
      featureStds: data.featureStds,
    },
    { name: 'softmax-regression' },
  );
  return { trainAccuracy: trainEval.accuracy, valLoss: valEval.loss, valAccuracy: valEval.accuracy };
}

/**
 * Builds the loggers `createLoggerFromEnv()` would (same `RUNTEL_BACKENDS` choice), except that the
 * JSONL store honours `dir` and the console writes through the progress display. While bars are
 * shown the console skips the per-epoch metric lines: the bars show those.
 */
function buildLogger(dir: string | undefined, progress: TrialProgress, bars: boolean): { logger: Logger; storeDir: string | undefined } {
  const loggers: Logger[] = [];
  const others: string[] = [];
  let storeDir: string | undefined;
  for (const name of backendsFromEnv()) {
    if (name === 'jsonl') {
      const jsonl = new JsonlLogger(dir === undefined ? {} : { dir });
      storeDir = jsonl.dir;
      loggers.push(jsonl);
    } else if (name === 'console') {
      const lines = new ConsoleBackend((line) => progress.write(line));
      loggers.push(new BackendLogger(bars ? new EpochLinesFilter(lines) : lines));
    } else {
      others.push(name);
    }
  }
  if (others.length > 0) loggers.push(withBackendsEnv(others, () => createLoggerFromEnv()));
  return { logger: new CompositeLogger(loggers), storeDir };
}

function withBackendsEnv<T>(names: string[], fn: () => T): T {
  const saved = process.env.RUNTEL_BACKENDS;
  process.env.RUNTEL_BACKENDS = names.join(',');
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env.RUNTEL_BACKENDS;
    else process.env.RUNTEL_BACKENDS = saved;
  }
}

/** Passes every event to the console except the per-epoch metric points. */
class EpochLinesFilter implements RunBackend {
  readonly name: string;
  private readonly _inner: RunBackend;

  constructor(inner: RunBackend) {
    this._inner = inner;
    this.name = inner.name;
  }

  onEvent(event: RunEvent): void {
    if (event.type === 'metrics' && EPOCH_METRICS.some((key) => key in event.values)) return;
    this._inner.onEvent(event);
  }

  forceFlush(): Promise<void> {
    return this._inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this._inner.shutdown();
  }
}

function report(
  summary: ExperimentSummary<DemoParams>,
  finals: ReadonlyMap<number, { trainAccuracy: number; valLoss: number; valAccuracy: number }>,
  /** The JSONL store folder; `'none'` when the built logger has no JSONL store, `'unknown'` for a caller's logger. */
  storeDir: string,
): string {
  const color = process.stdout.isTTY === true;
  const table = new Table({
    head: ['', 'trial', 'lr', 'l2', 'val/loss', 'val/accuracy', 'train/accuracy', 'status'],
    colAligns: ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'left'],
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] },
  });
  const ranked = [...summary.trials].sort((a, b) => (a.value ?? Infinity) - (b.value ?? Infinity) || a.index - b.index);
  for (const t of ranked) {
    const f = finals.get(t.index);
    table.push([
      t.index === summary.best?.index ? '★' : '',
      t.name,
      String(t.params.lr),
      String(t.params.l2),
      f === undefined ? '' : formatNumber(f.valLoss),
      f === undefined ? '' : percent(f.valAccuracy),
      f === undefined ? '' : percent(f.trainAccuracy),
      t.status,
    ]);
  }
  const lines = ['', `Grid search over lr × l2 (${summary.trials.length} trials), minimising ${DEMO_OBJECTIVE} (validation cross-entropy after the last epoch):`, table.toString(), ''];
  const best = summary.best;
  if (best === undefined) {
    lines.push('Every trial failed; see the errors above.');
  } else {
    const f = finals.get(best.index);
    lines.push(
      `Best trial: ${best.name} (${paramsLabel(best.params)}): val/loss ${formatNumber(best.value)}` +
        (f === undefined ? '' : `, val/accuracy ${percent(f.valAccuracy)}`),
    );
  }
  if (storeDir === 'none') {
    lines.push('', 'Runs were not stored locally: RUNTEL_BACKENDS does not include jsonl.');
  } else if (storeDir !== 'unknown') {
    const flag = resolve(storeDir) === defaultStoreDir() ? '' : ` --dir ${quoteArg(storeDir)}`;
    const hints: Array<[string, string]> = [
      [`runtel ls${flag}`, 'every run, trials under their search'],
      [`runtel show ${DEMO_EXPERIMENT}${flag}`, 'the search: params, best trial, child runs'],
    ];
    if (best !== undefined) hints.push([`runtel show ${best.name}${flag}`, 'the best trial: curves and model']);
    const width = Math.max(...hints.map(([command]) => command.length));
    lines.push('', `Runs are stored in ${storeDir}. Explore them with:`, ...hints.map(([command, what]) => `  ${command.padEnd(width)}   ${what}`));
  }
  return lines.join('\n') + '\n';
}

function paramsLabel(p: DemoParams): string {
  return `lr=${p.lr} l2=${p.l2}`;
}

function metricsText(valLoss: number, valAccuracy: number): string {
  return `val/loss ${valLoss.toFixed(4)}  val/acc ${percent(valAccuracy)}`;
}

function percent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, got ${value}`);
  return value;
}
