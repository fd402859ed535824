// The active run of the current async context (AsyncLocalStorage), and `withRun`.

import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger, Run, RunOptions } from './types.js';

const storage = new AsyncLocalStorage<Run>();

/** The run made active by the nearest enclosing `withRun` (or `runWithActive`), if any. */
export function activeRun(): Run | undefined {
  return storage.getStore();
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
  return storage.run(run, () => (hasBinder(logger) ? logger.runInContext(run, fn) : fn()));
}

/**
 * Starts a run, makes it active for `fn`, and finishes it: `'success'` when `fn` returns or resolves,
 * `'failed'` with the error recorded when it throws or rejects (the error is then rethrown).
 * Works with sync and async functions; the result is always a promise.
 */
export async function withRun<T>(logger: Logger, options: RunOptions, fn: (run: Run) => T | Promise<T>): Promise<T> {
  const run = logger.startRun(options);
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
