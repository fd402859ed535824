// Hyperparameter search as nested runs: one parent run per search, one child run per trial.
// Trials come from the search space (search.ts), run with bounded concurrency, each inside its own
// active-run context so `activeRun()` and nesting just work, or each in its own process
// (processTrial.ts), so a trial that crashes cannot take the search down.

import type { ErrorInfo } from '../core/events.js';
import { runWithActive } from '../core/context.js';
import type { ConfigValue, FinalRunStatus, Logger, Run } from '../core/types.js';
import { validateKey } from '../core/validation.js';
import type { SearchSpec, TrialParams } from './search.js';
import { describeSearch, planTrials } from './search.js';
import type { TrialFunction, TrialOutcome } from './trial.js';
import { runTrialBody } from './trial.js';
import type { CheckedProcessTrial, ProcessTrial } from './processTrial.js';
import { checkProcessTrial, isProcessTrial, runProcessTrial } from './processTrial.js';

export { planTrials, mulberry32 } from './search.js';
export type { RandomSearch, RandomSpaceEntry, RangeSpec, SearchSpec, TrialParams } from './search.js';
export type { TrialFunction, TrialInfo } from './trial.js';
export type { ProcessTrial } from './processTrial.js';

export type ExperimentGoal = 'minimize' | 'maximize';


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
  /**
   * `'killed'` when something else finished the trial's run as killed (a signal, `logger.shutdown()`);
   * `'crashed'` when the trial's process died without finishing it (SIGKILL, out of memory).
   */
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
   * `trial` is the trial function, or `{ isolation: 'process', module }` to run each trial in its
   * own Node process from a module whose default export is the trial function.
   */
  async run<S extends SearchSpec>(search: S, trial: TrialFunction<TrialParams<S>> | ProcessTrial): Promise<ExperimentSummary<TrialParams<S>>> {
    let body: TrialFunction<TrialParams<S>> | CheckedProcessTrial;
    if (isProcessTrial(trial)) body = checkProcessTrial(trial);
    else if (typeof trial === 'function') body = trial;
    else throw new TypeError("experiment.run needs a trial function (params, run) => objective, or { isolation: 'process', module }");
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
        trials[index] = await this._runTrial(parent, index, params.length, params[index]!, body);
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

  private async _runTrial<P>(parent: Run, index: number, total: number, params: P, trial: TrialFunction<P> | CheckedProcessTrial): Promise<TrialSummary<P>> {
    const name = `${this.name}-trial-${index}`;
    let runId: string;
    let outcome: TrialOutcome;
    if (typeof trial === 'function') {
      const run = this._logger.startRun({
        parent,
        name,
        experiment: this.name,
        activate: false,
        config: params as Record<string, ConfigValue>,
        tags: { trial_index: String(index) },
      });
      runId = run.id;
      outcome = await runTrialBody(this._logger, run, trial, params, { index, total, name }, this.objective);
    } else {
      const request = { name, experiment: this.name, objective: this.objective, params, index, total };
      ({ runId, ...outcome } = await runProcessTrial({ logger: this._logger, parent, trial, request }));
    }
    return { index, runId, name, params, ...outcome };
  }
}

