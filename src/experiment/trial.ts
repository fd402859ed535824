// One trial's body, the same in the experiment's process and in a trial process: call the trial
// function with its run active, check the objective, log it and finish the run.

import type { ErrorInfo } from '../core/events.js';
import { toErrorInfo } from '../core/events.js';
import { runWithActive } from '../core/context.js';
import type { FinalRunStatus, Logger, Run } from '../core/types.js';

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

/** How a trial ended. */
export interface TrialOutcome {
  status: FinalRunStatus;
  /** The objective, when the trial succeeded. */
  value?: number;
  /** Why the trial did not succeed. */
  error?: ErrorInfo;
}

/**
 * Calls `trial` with `run` active, then finishes the run: `success` with the objective logged under
 * `objective`, else `failed` with the error. A run the trial (or a signal handler) finished already
 * keeps that outcome. Never rejects for the trial's sake: a failure is the outcome.
 */
export async function runTrialBody<P>(logger: Logger, run: Run, trial: TrialFunction<P>, params: P, info: TrialInfo, objective: string): Promise<TrialOutcome> {
  let error: unknown;
  let value: unknown;
  try {
    // `async` turns a synchronous throw into a rejection.
    value = await runWithActive(logger, run, async () => trial(params, run, info));
  } catch (thrown) {
    error = thrown ?? new Error(`trial ${info.index} threw ${String(thrown)}`);
  }
  if (error === undefined && (typeof value !== 'number' || Number.isNaN(value))) {
    const got = typeof value === 'number' ? 'NaN' : value === null ? 'null' : typeof value;
    error = new TypeError(`trial ${info.index} returned ${got}; the trial function must return the objective as a number`);
  }
  if (run.status !== 'running') {
    // The run was finished already (by the trial itself, or as killed by a signal handler): keep that outcome.
    if (error === undefined && run.status === 'success') return { status: 'success', value: value as number };
    return { status: run.status === 'killed' ? 'killed' : 'failed', error: toErrorInfo(error ?? new Error(`trial run was finished ${run.status}`)) };
  }
  if (error !== undefined) {
    await run.finish('failed', error);
    return { status: 'failed', error: toErrorInfo(error) };
  }
  run.logMetrics({ [objective]: value as number });
  await run.finish('success');
  return { status: 'success', value: value as number };
}

/** An error rebuilt from its `ErrorInfo` (one that crossed a process boundary), to finish a run with. */
export function errorFromInfo(info: ErrorInfo): Error {
  const error = new Error(info.message);
  error.name = info.type;
  if (info.stack !== undefined) error.stack = info.stack;
  return error;
}
