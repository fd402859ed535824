// Process exit: SIGINT/SIGTERM finish running runs 'killed', an uncaught exception or unhandled
// rejection 'failed'; then loggers flush within a deadline and the process exits conventionally.
// On a normal exit with runs left open they are finished 'success', as MLflow's atexit hook does.

import { flushTimeoutFromEnv, getBooleanFromEnv } from './env.js';
import type { FinalRunStatus } from './types.js';

interface TrackedRun {
  readonly status: string;
  finish(status: FinalRunStatus, error?: unknown): Promise<void>;
}

interface FlushableLogger {
  forceFlush(): Promise<void>;
}

const runs = new Set<TrackedRun>();
const loggers = new Set<FlushableLogger>();
let enabled: boolean | undefined;
let installed = false;
let exiting = false;

export interface ProcessExitOptions {
  /** Default: env `RUNTEL_EXIT_HANDLERS` (true/false), else true. */
  enabled?: boolean;
}

/** Turns runtel's signal and crash handlers on or off (for apps that manage signals themselves). */
export function configureProcessExit(options: ProcessExitOptions): void {
  enabled = options.enabled;
  if (enabled === false) uninstall();
  else if (runs.size > 0) install();
}

export function trackRun(run: TrackedRun, logger: FlushableLogger): void {
  runs.add(run);
  loggers.add(logger);
  if ((enabled ?? getBooleanFromEnv('RUNTEL_EXIT_HANDLERS') ?? true) && !installed) install();
}

export function untrackRun(run: TrackedRun): void {
  runs.delete(run);
}

export function untrackLogger(logger: FlushableLogger): void {
  loggers.delete(logger);
}

/** Finishes every running run with `status`, then flushes every logger, bounded by the exit deadline. */
export async function finishAllRuns(status: FinalRunStatus, error?: unknown): Promise<void> {
  const timeoutMillis = flushTimeoutFromEnv();
  const work = Promise.allSettled([
    ...[...runs].filter((r) => r.status === 'running').map((r) => r.finish(status, error)),
  ]).then(() => Promise.allSettled([...loggers].map((l) => l.forceFlush())));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMillis);
  });
  await Promise.race([work, deadline]);
  clearTimeout(timer);
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

function onSignal(signal: NodeJS.Signals): void {
  if (exiting) return;
  exiting = true;
  void finishAllRuns('killed').finally(() => {
    uninstall();
    // Re-raise with the default disposition so the parent sees a death by this signal (exit 130/143).
    process.kill(process.pid, signal);
  });
}

function onCrash(error: unknown): void {
  if (exiting) return;
  exiting = true;
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : `Unhandled rejection: ${String(error)}`}\n`);
  void finishAllRuns('failed', error).finally(() => process.exit(1));
}

function onBeforeExit(): void {
  if (exiting || ![...runs].some((r) => r.status === 'running')) return;
  void finishAllRuns('success');
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const signal of SIGNALS) process.on(signal, onSignal);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  process.on('beforeExit', onBeforeExit);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  for (const signal of SIGNALS) process.off(signal, onSignal);
  process.off('uncaughtException', onCrash);
  process.off('unhandledRejection', onCrash);
  process.off('beforeExit', onBeforeExit);
}
