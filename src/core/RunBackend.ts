// The interface a backend implements. Read this file and one backend (backends/InMemoryLogger.ts)
// to add a new one.

import type { RunEvent } from './events.js';
import type { RunRecord } from './RunRecord.js';
import type { BackendFailure } from './errors.js';

export interface RunBackend {
  /** Short name used in error reports and `RUNTEL_BACKENDS` (e.g. `jsonl`, `mlflow`). */
  readonly name: string;
  /**
   * Receives every event in order. Must not block on I/O: queue and deliver in the background.
   * A throw is caught and reported by the logger; it never reaches training code.
   */
  onEvent(event: RunEvent): void;
  /**
   * The state of an earlier run, for `startRun({ runId })`. Synchronous because `startRun` is.
   * Return undefined when this backend does not know the run.
   */
  resume?(runId: string): RunRecord | undefined;
  /**
   * True when the backend keeps artifact source paths for later reads (InMemory hands them to
   * tests): staged model copies are then left in place instead of being deleted after the run.
   */
  readonly retainsArtifactPaths?: boolean;
  /**
   * True when the backend shows what other backends publish while they flush (run links): a
   * composite shuts it down after the others.
   */
  readonly shutsDownLast?: boolean;
  /** Runs `fn` with backend-specific context for the run (the OTel backend makes its span active). */
  runInContext?<T>(runId: string, fn: () => T): T;
  /**
   * Called once by the logger with a function that reports failures found in the background
   * (a rejected request, a dropped batch). Counted and handled like any other backend failure.
   */
  bindFailureReporter?(report: (failure: BackendFailure) => void): void;
  /** Delivers everything queued so far. Should settle; the logger bounds it with its flush deadline. */
  forceFlush(): Promise<void>;
  /**
   * Delivers what was handed over for one run (its `finish()` waits for this, bounded by the flush
   * deadline). Default: `forceFlush`, which waits for every run.
   */
  flushRun?(runId: string): Promise<void>;
  /** What is still in progress when a flush deadline passes (a slow exporter and its endpoint), for the message. */
  describePending?(): string | undefined;
  /**
   * Flushes within `timeoutMillis` (the logger's flush deadline) and releases resources; what is
   * not delivered by then is given up (the JSONL store keeps it). Called once.
   */
  shutdown(options?: { timeoutMillis?: number }): Promise<void>;
}
