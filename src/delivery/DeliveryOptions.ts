// Options and counters of a DeliveryBackend (DeliveryBackend.ts).

import type { TargetError } from './TargetError.js';

export interface DeliveryOptions {
  /** Queued data is sent at least this often. */
  flushIntervalMillis: number;
  /** Metric points queued before new points are dropped (and counted). Default 1,000,000. */
  maxQueuedPoints?: number;
  /**
   * Requests in flight at once, across runs, at most. Below it, the backend keeps in flight the
   * number (1, 2, 4, …) that it measured to deliver the most points/s. Default: no bound beyond the channels'.
   */
  maxConcurrentRequests?: number;
  /** Finished runs kept for late data; the oldest are forgotten past this. Default 1000. */
  maxDoneRuns?: number;
  /** How long `shutdown()` keeps delivering. Default: env `RUNTEL_FLUSH_TIMEOUT_MILLIS`, else 5000. */
  flushTimeoutMillis?: number;
  /**
   * A running run with nothing sent for this long gets a heartbeat (when the target has one).
   * Default: env `RUNTEL_HEARTBEAT_INTERVAL_MILLIS`, else 30000; a value that is not a number above 0 is an error.
   */
  heartbeatIntervalMillis?: number;
  /** Told when a request with metric points was delivered. */
  onDelivered?: (points: number) => void;
  /** Told before each retry (the backend also reports the first retry of an outage). */
  onRetry?: (error: TargetError, attempt: number) => void;
}

export interface TargetStats {
  /** Metric points the target accepted. */
  sentPoints: number;
  /** Points queued or in flight, not yet accepted. */
  queuedPoints: number;
  /** Points given up on (queue full, permanent error, dead run, shutdown deadline); the local run log still has them. */
  undeliveredPoints: number;
  /** Requests retried after 429, 5xx or a connection error. */
  retries: number;
  heartbeats: number;
  /** Runs the backend holds state for. */
  runs: number;
  /** Requests it keeps in flight at once now (see maxConcurrentRequests). */
  concurrencyLimit: number;
}
