// The active run of an async context (AsyncLocalStorage): set by `startRun` for the code that
// follows it, and by `withRun` for its callback.
//
// The rule: a run is active from `startRun()` on for the code that follows in the same async
// context (the rest of the function and whatever it awaits or calls), until it finishes;
// `withRun(logger, options, fn)` makes it active inside `fn` only. "Active" is what `activeRun()`
// returns, the parent `startRun({ nested: true })` takes, and, through the backend's context (the
// OTel run span), the parent of spans created meanwhile (auto-instrumented HTTP calls, say).

import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger, Run, RunOptions } from './types.js';
import { enterBackendContext } from '../otel/enterContext.js';

/** One run made active, over the one that was active before it. */
interface Activation {
  readonly run: Run;
  readonly outer: Activation | undefined;
}

const storage = new AsyncLocalStorage<Activation>();

/** How to undo a `startRun` activation, while the context is still the one it set. */
interface Entered {
  activation: Activation;
  leaveBackend: (() => void) | undefined;
}

const entered = new WeakMap<Run, Entered>();

/**
 * The active run: the one made active most recently in this async context (by `startRun` or an
 * enclosing `withRun`) that has not finished; undefined when there is none.
 */
export function activeRun(): Run | undefined {
  for (let a = storage.getStore(); a !== undefined; a = a.outer) {
    if (a.run.status === 'running') return a.run;
  }
  return undefined;
}

/** Anything that can run a callback inside a run's backend context (the OTel span, for one). */
interface ContextBinder {
  runInContext<T>(run: Run, fn: () => T): T;
}

function hasBinder(logger: Logger): logger is Logger & ContextBinder {
  return typeof (logger as Partial<ContextBinder>).runInContext === 'function';
}

/** Runs `fn` with `run` as the active run (and the logger's backend context, when it has one). */
export function runWithActive<T>(logger: Logger, run: Run, fn: () => T): T {
  const activation: Activation = { run, outer: storage.getStore() };
  return storage.run(activation, () => (hasBinder(logger) ? logger.runInContext(run, fn) : fn()));
}

/**
 * Makes `run` active for the rest of the calling async context (`AsyncLocalStorage.enterWith`),
 * with the logger's backend context (the OTel run span) entered the same way.
 */
export function enterRun(logger: Logger, run: Run): void {
  const activation: Activation = { run, outer: storage.getStore() };
  storage.enterWith(activation);
  const leaveBackend = hasBinder(logger) ? enterBackendContext((fn) => logger.runInContext(run, fn)) : undefined;
  entered.set(run, { activation, leaveBackend });
}

/**
 * Called when `run` finishes: where it is still the active run (the usual case: `finish()` or the
 * end of an `await using` block in the code that started it), the run that was active before it
 * becomes active again. Elsewhere nothing changes; a finished run is skipped by `activeRun()`.
 */
export function leaveRun(run: Run): void {
  const state = entered.get(run);
  if (state === undefined) return;
  entered.delete(run);
  if (storage.getStore() === state.activation) storage.enterWith(state.activation.outer as Activation);
  state.leaveBackend?.();
}

/**
 * Starts a run, makes it active inside `fn` (only), and finishes it: `'success'` when `fn` returns
 * or resolves, `'failed'` with the error recorded when it throws or rejects (the error is then
 * rethrown). Works with sync and async functions; the result is always a promise.
 */
export async function withRun<T>(logger: Logger, options: RunOptions, fn: (run: Run) => T | Promise<T>): Promise<T> {
  const run = logger.startRun({ ...options, activate: false });
  let result: T;
  try {
    result = await runWithActive(logger, run, () => fn(run));
  } catch (error) {
    await run.finish('failed', error);
    throw error;
  }
  await run.finish('success');
  return result;
}
