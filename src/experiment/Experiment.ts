// Hyperparameter search as nested runs: one parent run per search, one child run per trial.
// Trials come from a grid (cartesian product) and/or seeded random sampling, run with bounded
// concurrency, each inside its own active-run context so `activeRun()` and nesting just work.

import type { ErrorInfo } from '../core/events.js';
import { toErrorInfo } from '../core/events.js';
import { runWithActive } from '../core/context.js';
import type { ConfigValue, FinalRunStatus, Logger, Run } from '../core/types.js';
import { validateKey } from '../core/validation.js';

export type ExperimentGoal = 'minimize' | 'maximize';

/** A numeric range sampled uniformly (or log-uniformly), optionally as integers. */
export interface RangeSpec {
  min: number;
  max: number;
  /** Sample uniformly in log space (needs `min > 0`). */
  log?: boolean;
  /** Draw integers in `[ceil(min), floor(max)]`. */
  integer?: boolean;
}

/** An array (uniform choice among its items) or a numeric range. */
export type RandomSpaceEntry = readonly unknown[] | RangeSpec;

export interface RandomSearch {
  /** Number of random trials: a positive integer. */
  n: number;
  /** Seed of the PRNG: the same seed and space give the same trials. */
  seed: number;
  space: Record<string, RandomSpaceEntry>;
}

export interface SearchSpec {
  /** Every combination, in key order, the last key varying fastest. */
  grid?: Record<string, readonly unknown[]>;
  /** `n` trials sampled from `space`; run after the grid trials when both are given. */
  random?: RandomSearch;
  /** Trials in flight at once. Default 1. */
  concurrency?: number;
}

type GridParams<G> = { [K in keyof G]: G[K] extends readonly (infer V)[] ? V : unknown };
type RandomParams<R> = { [K in keyof R]: R[K] extends readonly (infer V)[] ? V : number };
// `unknown extends X` catches a property the spec does not have (inferred as unknown).
type GridPart<S> = S extends { grid?: infer G } ? (unknown extends G ? never : [NonNullable<G>] extends [never] ? never : GridParams<NonNullable<G>>) : never;
type RandomPart<S> = S extends { random?: infer Rs }
  ? unknown extends Rs
    ? never
    : NonNullable<Rs> extends { space: infer R }
      ? RandomParams<R>
      : never
  : never;
type EmptyPart<S> = S extends { grid: unknown } | { random: unknown } ? never : Record<string, never>;

/** The params a trial receives for a search spec (grid trials and random trials may differ). */
export type TrialParams<S extends SearchSpec = SearchSpec> = GridPart<S> | RandomPart<S> | EmptyPart<S>;

/** Where a trial stands in its search. */
export interface TrialInfo {
  /** 0-based position in the trial list (grid trials first). */
  index: number;
  /** Total number of trials. */
  total: number;
  /** The trial run's name, `<experiment>-trial-<index>`. */
  name: string;
}

/** Returns the objective (a number, or a promise of one). Throwing, or returning NaN or a non-number, fails the trial. */
export type TrialFunction<P> = (params: P, run: Run, info: TrialInfo) => number | Promise<number>;

export interface ExperimentOptions {
  logger: Logger;
  /** The experiment name: also the parent run's name and the trials' name prefix. */
  name: string;
  /** Default `'minimize'`. */
  goal?: ExperimentGoal;
  /**
   * Metric key under which each trial's objective is logged, with the default step (one past the
   * trial's last step, so it is that key's latest value). Default `'objective'`.
   */
  objective?: string;
  /** Logged as params of the parent run (next to the `search.*` description). */
  config?: Record<string, ConfigValue>;
  /** Tags of the parent run. */
  tags?: Record<string, string>;
}

export interface TrialSummary<P = Record<string, unknown>> {
  index: number;
  runId: string;
  name: string;
  params: P;
  /** `'killed'` when something else finished the trial's run as killed (a signal, `logger.shutdown()`). */
  status: FinalRunStatus;
  /** The objective, when the trial succeeded. */
  value?: number;
  /** Why the trial failed. */
  error?: ErrorInfo;
}

export interface BestTrial<P = Record<string, unknown>> {
  index: number;
  runId: string;
  name: string;
  params: P;
  value: number;
}

export interface ExperimentSummary<P = Record<string, unknown>> {
  /** The parent run's id. */
  runId: string;
  /** Every trial, by index. */
  trials: Array<TrialSummary<P>>;
  /** The best successful trial (the earliest one on ties); absent when every trial failed. */
  best?: BestTrial<P>;
  /** Number of trials that did not succeed. */
  failed: number;
}

const GOALS: ReadonlySet<string> = new Set(['minimize', 'maximize']);

/**
 * A hyperparameter search logged as nested runs. The parent run (named after the experiment) gets
 * the config and the search space as params (`search.grid.lr = [0.01,0.1]`, ...), tags `objective`
 * and `goal`, and when done tags `best_trial_id`, `best_trial_name`, `best_value` and metrics
 * `best_<objective>`, `trials_completed`, `trials_failed`. Each trial is a child run
 * `<name>-trial-<index>` with its params as params and tag `trial_index`.
 */
export class Experiment {
  readonly name: string;
  readonly goal: ExperimentGoal;
  readonly objective: string;
  private readonly _logger: Logger;
  private readonly _config: Record<string, ConfigValue> | undefined;
  private readonly _tags: Record<string, string> | undefined;

  constructor(options: ExperimentOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('Experiment options must be an object');
    const { logger, name, goal = 'minimize', objective = 'objective', config, tags } = options;
    if (typeof logger !== 'object' || logger === null || typeof logger.startRun !== 'function') {
      throw new TypeError('Experiment needs a logger (an object with startRun)');
    }
    if (typeof name !== 'string' || name.trim() === '') throw new TypeError('Experiment name must be a non-empty string');
    if (!GOALS.has(goal)) throw new TypeError(`Experiment goal must be 'minimize' or 'maximize', got ${JSON.stringify(goal)}`);
    if (typeof objective !== 'string') throw new TypeError('Experiment objective must be a metric key string');
    validateKey(objective, 'objective metric');
    validateKey(`best_${objective}`, 'objective metric');
    if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) {
      throw new TypeError('Experiment config must be an object');
    }
    if (config !== undefined && 'search' in config) {
      throw new TypeError('Experiment config must not have a "search" key: the parent run logs the search space under search.*');
    }
    this._logger = logger;
    this.name = name;
    this.goal = goal;
    this.objective = objective;
    this._config = config;
    this._tags = tags;
  }

  /**
   * Runs every trial of `search` as a child run of one parent run, at most `concurrency` at a time,
   * and resolves to the summary once all have finished. A failed trial does not stop the others.
   */
  async run<S extends SearchSpec>(search: S, trial: TrialFunction<TrialParams<S>>): Promise<ExperimentSummary<TrialParams<S>>> {
    if (typeof trial !== 'function') throw new TypeError('experiment.run needs a trial function (params, run) => objective');
    const plan = planTrials(search);
    const concurrency = search.concurrency ?? 1;
    const params = plan.map((p) => p as TrialParams<S>);
    const logger = this._logger;

    const parent = logger.startRun({
      name: this.name,
      experiment: this.name,
      activate: false,
      config: { ...this._config, search: describeSearch(search, concurrency) },
      tags: { ...this._tags, objective: this.objective, goal: this.goal },
    });

    const trials = new Array<TrialSummary<TrialParams<S>> | undefined>(params.length);
    let next = 0;
    let aborted = false;
    const worker = async (): Promise<void> => {
      // The parent stops running when something else finishes it: a signal, a crash, logger.shutdown().
      while (!aborted && parent.status === 'running' && next < params.length) {
        const index = next++;
        trials[index] = await this._runTrial(parent, index, params.length, params[index]!, trial);
      }
    };

    const outcomes = await runWithActive(logger, parent, () =>
      Promise.allSettled(
        Array.from({ length: Math.min(concurrency, params.length) }, () =>
          worker().catch((error: unknown) => {
            aborted = true;
            throw error;
          }),
        ),
      ),
    );
    const crash = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (crash !== undefined) {
      // Not a trial failure (those are caught): the logger itself failed, e.g. it was shut down.
      await parent.finish('failed', crash.reason);
      throw crash.reason;
    }

    if (parent.status !== 'running') {
      const started = trials.filter((t) => t !== undefined).length;
      throw new Error(
        `experiment ${JSON.stringify(this.name)} was interrupted: its run was finished ${parent.status} from outside ` +
          `after ${started} of ${params.length} trials had started`,
      );
    }

    const done = trials as Array<TrialSummary<TrialParams<S>>>;
    let best: BestTrial<TrialParams<S>> | undefined;
    for (const t of done) {
      if (t.status !== 'success' || t.value === undefined) continue;
      if (best === undefined || this._better(t.value, best.value)) {
        best = { index: t.index, runId: t.runId, name: t.name, params: t.params, value: t.value };
      }
    }
    const failed = done.filter((t) => t.status !== 'success').length;

    const metrics: Record<string, number> = { trials_completed: done.length - failed, trials_failed: failed };
    if (best !== undefined) {
      metrics[`best_${this.objective}`] = best.value;
      parent.setTags({ best_trial_id: best.runId, best_trial_name: best.name, best_value: String(best.value) });
    }
    parent.logMetrics(metrics);
    if (best === undefined && done.length > 0) {
      const first = done[0]!.error;
      const why = first === undefined ? '' : `; first error: ${first.type}: ${first.message}`;
      await parent.finish('failed', new Error(`all ${done.length} trials failed${why}`));
    } else {
      await parent.finish('success');
    }

    const summary: ExperimentSummary<TrialParams<S>> = { runId: parent.id, trials: done, failed };
    if (best !== undefined) summary.best = best;
    return summary;
  }

  private _better(a: number, b: number): boolean {
    return this.goal === 'minimize' ? a < b : a > b;
  }

  private async _runTrial<P>(parent: Run, index: number, total: number, params: P, trial: TrialFunction<P>): Promise<TrialSummary<P>> {
    const name = `${this.name}-trial-${index}`;
    const run = this._logger.startRun({
      parent,
      name,
      experiment: this.name,
      activate: false,
      config: params as Record<string, ConfigValue>,
      tags: { trial_index: String(index) },
    });
    const summary: TrialSummary<P> = { index, runId: run.id, name, params, status: 'failed' };
    let error: unknown;
    let value: unknown;
    try {
      // `async` turns a synchronous throw into a rejection.
      value = await runWithActive(this._logger, run, async () => trial(params, run, { index, total, name }));
    } catch (thrown) {
      error = thrown ?? new Error(`trial ${index} threw ${String(thrown)}`);
    }
    if (error === undefined && (typeof value !== 'number' || Number.isNaN(value))) {
      const got = typeof value === 'number' ? 'NaN' : value === null ? 'null' : typeof value;
      error = new TypeError(`trial ${index} returned ${got}; the trial function must return the objective as a number`);
    }
    if (run.status !== 'running') {
      // The run was finished already (by the trial itself, or as killed by a signal handler): keep that outcome.
      if (error === undefined && run.status === 'success') {
        summary.status = 'success';
        summary.value = value as number;
      } else {
        summary.status = run.status === 'killed' ? 'killed' : 'failed';
        summary.error = toErrorInfo(error ?? new Error(`trial run was finished ${run.status}`));
      }
      return summary;
    }
    if (error !== undefined) {
      summary.error = toErrorInfo(error);
      await run.finish('failed', error);
      return summary;
    }
    run.logMetrics({ [this.objective]: value as number });
    summary.status = 'success';
    summary.value = value as number;
    await run.finish('success');
    return summary;
  }
}

/** The trials' params in run order: the grid's product, then the random samples; `[{}]` when neither is given. */
export function planTrials(search: SearchSpec): Array<Record<string, unknown>> {
  if (typeof search !== 'object' || search === null) throw new TypeError('experiment.run needs a search spec object ({ grid?, random?, concurrency? })');
  const { grid, random, concurrency } = search;
  if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
    throw new RangeError(`concurrency must be a positive integer, got ${String(concurrency)}`);
  }
  const plan: Array<Record<string, unknown>> = [];
  if (grid !== undefined) plan.push(...gridTrials(grid));
  if (random !== undefined) plan.push(...randomTrials(random));
  if (grid === undefined && random === undefined) plan.push({});
  return plan;
}

function gridTrials(grid: Record<string, readonly unknown[]>): Array<Record<string, unknown>> {
  if (typeof grid !== 'object' || grid === null || Array.isArray(grid)) throw new TypeError('grid must be an object of arrays');
  const keys = Object.keys(grid);
  if (keys.length === 0) throw new TypeError('grid must name at least one parameter');
  for (const key of keys) {
    const values = grid[key];
    if (!Array.isArray(values)) throw new TypeError(`grid.${key} must be an array of values`);
    if (values.length === 0) throw new RangeError(`grid.${key} is an empty array: give at least one value`);
  }
  let combos: Array<Record<string, unknown>> = [{}];
  for (const key of keys) {
    const next: Array<Record<string, unknown>> = [];
    for (const combo of combos) for (const value of grid[key]!) next.push({ ...combo, [key]: value });
    combos = next;
  }
  return combos;
}

function randomTrials(random: RandomSearch): Array<Record<string, unknown>> {
  if (typeof random !== 'object' || random === null) throw new TypeError('random must be { n, seed, space }');
  const { n, seed, space } = random;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new RangeError(`random.n must be a positive integer, got ${String(n)}`);
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`random.seed must be an integer, got ${String(seed)}`);
  if (typeof space !== 'object' || space === null || Array.isArray(space)) throw new TypeError('random.space must be an object');
  const keys = Object.keys(space);
  if (keys.length === 0) throw new TypeError('random.space must name at least one parameter');
  for (const key of keys) checkSpaceEntry(key, space[key]);
  const next = mulberry32(seed);
  const trials: Array<Record<string, unknown>> = [];
  for (let i = 0; i < n; i++) {
    const params: Record<string, unknown> = {};
    for (const key of keys) params[key] = sample(space[key]!, next);
    trials.push(params);
  }
  return trials;
}

function checkSpaceEntry(key: string, entry: unknown): void {
  if (Array.isArray(entry)) {
    if (entry.length === 0) throw new RangeError(`random.space.${key} is an empty array: give at least one value`);
    return;
  }
  if (typeof entry !== 'object' || entry === null) {
    throw new TypeError(`random.space.${key} must be an array of choices or { min, max, log?, integer? }`);
  }
  const { min, max, log, integer } = entry as Partial<RangeSpec>;
  if (typeof min !== 'number' || !Number.isFinite(min) || typeof max !== 'number' || !Number.isFinite(max)) {
    throw new TypeError(`random.space.${key} needs finite numbers min and max`);
  }
  if (min > max) throw new RangeError(`random.space.${key}: min (${min}) is greater than max (${max})`);
  if (log === true && min <= 0) throw new RangeError(`random.space.${key}: a log range needs min > 0, got ${min}`);
  if (integer === true && Math.ceil(min) > Math.floor(max)) {
    throw new RangeError(`random.space.${key}: no integer between min (${min}) and max (${max})`);
  }
}

function sample(entry: RandomSpaceEntry, next: () => number): unknown {
  if (isChoices(entry)) return entry[Math.floor(next() * entry.length)];
  const { min, max, log = false, integer = false } = entry;
  const u = next();
  if (!integer) return log ? Math.exp(Math.log(min) + u * (Math.log(max) - Math.log(min))) : min + u * (max - min);
  const lo = Math.ceil(min);
  const hi = Math.floor(max);
  if (!log) return lo + Math.floor(u * (hi - lo + 1));
  // Log-uniform over [lo - 0.5, hi + 0.5) (clamped above 0), rounded: every integer is reachable.
  const a = Math.max(lo - 0.5, lo / 2);
  const b = hi + 0.5;
  return Math.min(hi, Math.max(lo, Math.round(Math.exp(Math.log(a) + u * (Math.log(b) - Math.log(a))))));
}

function isChoices(entry: RandomSpaceEntry): entry is readonly unknown[] {
  return Array.isArray(entry);
}

/** mulberry32: a tiny 32-bit PRNG; uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The parent run's `search.*` params. */
function describeSearch(search: SearchSpec, concurrency: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (search.grid !== undefined) out.grid = { ...search.grid };
  if (search.random !== undefined) {
    const space: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(search.random.space)) space[key] = isChoices(entry) ? entry : { ...entry };
    out.random = { n: search.random.n, seed: search.random.seed, space };
  }
  out.concurrency = concurrency;
  return out;
}
