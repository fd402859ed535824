// The interface a remote target implements (MLflow, W&B). Read this file and one target
// (src/mlflow/MlflowTarget.ts) to add another: a target maps run events to its own requests; the
// DeliveryBackend (DeliveryBackend.ts) owns everything else — per-run state, the created gate,
// channels and their in-flight bounds, the queue bound, retries' reporting, acknowledgements,
// heartbeats, flush and shutdown deadlines, and forgetting finished runs.
//
// Every event handed to a run gets a sequence number (`seq`, increasing per run). A target keeps
// the seq of what it queued, so the backend can tell when an event has been delivered: when no
// queued unit, request in flight, pending creation or pending finish holds a seq at or below it.

import type { RunEvent, RunFinishedEvent, RunStartedEvent } from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import type { HttpClient } from './HttpClient.js';

/** One request a target wants sent. */
export interface Work {
  /** For reports: `log-batch`, `file_stream`, … */
  readonly operation: string;
  /** Metric points it carries: counted sent when it succeeds, undelivered when it fails. */
  readonly points: number;
  /** The smallest event seq it carries (Infinity when it carries none, e.g. a heartbeat). */
  readonly seq: number;
  send(): Promise<void>;
  /** Whether a failure of this request ends the run's delivery (a deleted run, a broken stream). Default: no, only this request is lost. */
  killsRun?(error: unknown): boolean;
  /** Told when the request succeeded, before the backend looks for more work. */
  onSent?(): void;
  /** Told when the request failed for good. */
  onFailed?(): void;
}

export interface Channel {
  /** `batch`, `artifacts`, `stream`, … */
  readonly name: string;
  /** Requests of this channel in flight at once, per run. */
  readonly maxInFlightPerRun: number;
}

/** What the backend offers a target: failure reports, and a way to say a run has work now. */
export interface DeliveryContext {
  /** Reports once per `kind` (later ones are dropped). */
  reportOnce(kind: string, operation: string, error: unknown): void;
  report(failure: BackendFailure): void;
  /** The run has new work that should not wait for the next tick (a full batch). */
  wake(runId: string): void;
  /**
   * Metric points that left the queue without a request: found on the target already (`delivered`)
   * or impossible to send (too large: counted undelivered).
   */
  discard(points: number, outcome: 'delivered' | 'undelivered'): void;
}

export interface StartedRun<R> {
  state: R;
  /**
   * Creates (or finds) the run remotely; nothing else of the run is sent before it settles. A
   * rejection ends the run's delivery (its data is counted undelivered). Omit when the run exists
   * already (resumed in this process).
   */
  create?: () => Promise<void>;
  /**
   * What the creation needs first (a parent run being created): it is sent once this settles, and
   * takes no request slot while it waits, so a child can never hold the slot its parent needs.
   */
  after?: Promise<unknown>;
}

export interface DeliveryTarget<R> {
  /** `mlflow`, `wandb`: the backend's name in reports and `RUNTEL_BACKENDS`. */
  readonly name: string;
  /** Where runs go, without credentials (a URL), for messages. */
  readonly location: string;
  readonly client: HttpClient;
  readonly channels: readonly Channel[];
  /** How a run's creation is named in reports (`create-run`, `upsert-run`). */
  readonly createOperation: string;
  /** A target that completes runs again after late data (W&B reopens a run that gets data after its end). */
  readonly refinishAfterLateData?: boolean;

  bind(context: DeliveryContext): void;
  /** A run starts, or starts again (`previous` is its state when the backend still has it). */
  start(event: RunStartedEvent, previous: R | undefined): StartedRun<R>;
  /**
   * Records of a run whose start this backend never saw (a restarted exporter or bridge, a run it
   * forgot). Return a started run to take them (finding the remote run first), or undefined to
   * count them undelivered.
   */
  adopt?(runId: string): StartedRun<R> | undefined;
  /** Queues an event (not run_started). Returns true when the run should be sent to without waiting for the tick. */
  accept(state: R, event: Exclude<RunEvent, RunStartedEvent>, seq: number): boolean;
  /** The next request of `channel` that can go now, or undefined. */
  take(state: R, channel: string): Work | undefined;
  /** True while anything is queued (the run's finish waits for it). */
  hasQueued(state: R): boolean;
  /** The smallest seq still queued (not taken), or Infinity. */
  queuedSeq(state: R): number;
  /** The request that finishes the run, sent once nothing else is queued or in flight. */
  finish(state: R, event: RunFinishedEvent): Work;
  /** What a process the run launches needs from this target (see RunBackend.childEnv). */
  childEnv?(state: R): Record<string, string> | undefined;
  /** A request that shows the run is alive (`channel` names where it counts), or undefined for none. */
  heartbeat?(state: R): { channel: string; work: Work } | undefined;
  /** Makes everything queued sendable now (W&B closes its open history rows). */
  flush?(state: R): void;
  /** Makes what holds events up to `seq` sendable now (someone waits for them); default `flush`. */
  expedite?(state: R, seq: number): void;
  /** Empties a run's queues after its delivery ended; returns the metric points dropped. */
  drop(state: R): number;
  /** The run was forgotten (finished long ago). */
  forget?(state: R): void;
  /** Target-specific counters for `stats()`. */
  stats?(): Record<string, number>;
}
