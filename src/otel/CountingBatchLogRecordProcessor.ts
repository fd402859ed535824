// A batching LogRecordProcessor that accounts for every record: exported, or counted as undelivered.
//
// The SDK's BatchLogRecordProcessor keeps at most 2048 records and drops the rest without telling
// anyone but diag. Metric points arrive faster than that in any tight training loop, so runtel's
// processor has a larger (bounded) queue, exports as soon as a batch is full, makes room inline
// when the queue is full and an export slot is free, and counts every record it could not deliver:
// refused because the queue was full, failed by the exporter (after the exporter's own retries),
// timed out, or abandoned at shutdown. It never throws into the code that emits.

import { context } from '@opentelemetry/api';
import { ExportResultCode, suppressTracing } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, LogRecordProcessor, SdkLogRecord } from '@opentelemetry/sdk-logs';
import { getNumberFromEnv } from '../core/env.js';

export interface CountingBatchLogRecordProcessorOptions {
  exporter: LogRecordExporter;
  /**
   * Records held while waiting for export; past it, records are refused and counted (`dropped`).
   * Default: env `OTEL_BLRP_MAX_QUEUE_SIZE`, else 32768 (16× the SDK's 2048; a metric-point record
   * holds about 350 bytes of heap, so a full queue is about 11 MB of heap, about 25 MB of RSS).
   */
  maxQueueSize?: number;
  /** Records per export request, and the threshold that starts an export. Default: env `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`, else 512. */
  maxExportBatchSize?: number;
  /** A partial batch is exported this long after its first record. Default: env `OTEL_BLRP_SCHEDULE_DELAY`, else 1000. */
  scheduledDelayMillis?: number;
  /** An export that has not called back by then counts as failed. Default: env `OTEL_BLRP_EXPORT_TIMEOUT`, else 30000. */
  exportTimeoutMillis?: number;
  /** Export requests in flight at once. Default: 2. */
  maxConcurrentExports?: number;
}

/** What happened to the log records a processor (or every processor in the process) was given. */
export interface DeliveryStats {
  /** Records queued for export. */
  accepted: number;
  /** Records the exporter confirmed. */
  exported: number;
  /** Records refused because the queue was full. */
  dropped: number;
  /** Records whose export failed (after the exporter's retries) or timed out. */
  failed: number;
  /** Records emitted after shutdown began, or still queued when shutdown gave up on a failing exporter. */
  abandoned: number;
  /** Records queued or being exported right now. */
  pending: number;
  /** `dropped + failed + abandoned`: records that will never reach the backend. */
  undelivered: number;
  /** The most recent export error, if any. */
  lastError?: string;
}

/** Anything that can report delivery counts (a processor, the handle `startOtel` returns). */
export interface DeliveryStatsSource {
  deliveryStats(): DeliveryStats;
}

interface Counts {
  accepted: number;
  exported: number;
  dropped: number;
  failed: number;
  abandoned: number;
  lastError?: string;
}

// Process-wide totals, so an OtelLogger can report drops of processors it does not own (NodeSDK users).
const processTotals: Counts = { accepted: 0, exported: 0, dropped: 0, failed: 0, abandoned: 0 };
const liveProcessors = new Set<CountingBatchLogRecordProcessor>();
let processorsCreated = 0;

/** Delivery counts summed over every CountingBatchLogRecordProcessor this process created. */
export function processDeliveryStats(): DeliveryStats {
  let pending = 0;
  for (const processor of liveProcessors) pending += processor.pendingCount();
  return toStats(processTotals, pending);
}

/** How many CountingBatchLogRecordProcessors this process has created (0: drops cannot be counted). */
export function countingProcessorsCreated(): number {
  return processorsCreated;
}

function toStats(counts: Counts, pending: number): DeliveryStats {
  const stats: DeliveryStats = {
    accepted: counts.accepted,
    exported: counts.exported,
    dropped: counts.dropped,
    failed: counts.failed,
    abandoned: counts.abandoned,
    pending,
    undelivered: counts.dropped + counts.failed + counts.abandoned,
  };
  if (counts.lastError !== undefined) stats.lastError = counts.lastError;
  return stats;
}

interface InFlight {
  /** Sequence number one past this batch's last record. */
  end: number;
  done: boolean;
}

interface Waiter {
  target: number;
  resolve: () => void;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const chosen = value ?? fallback;
  if (!(chosen > 0) || !Number.isFinite(chosen)) throw new RangeError(`${name} must be a positive number, got ${chosen}`);
  return chosen;
}

export class CountingBatchLogRecordProcessor implements LogRecordProcessor, DeliveryStatsSource {
  private readonly _exporter: LogRecordExporter;
  private readonly _maxQueueSize: number;
  private readonly _batchSize: number;
  private readonly _delayMillis: number;
  private readonly _timeoutMillis: number;
  private readonly _maxConcurrent: number;

  private readonly _counts: Counts = { accepted: 0, exported: 0, dropped: 0, failed: 0, abandoned: 0 };
  /** Full batches, oldest first. */
  private _full: SdkLogRecord[][] = [];
  /** The batch being filled. */
  private _open: SdkLogRecord[] = [];
  private _queued = 0;
  private _inFlight = 0;
  /** Records taken out of the queue so far (exported, being exported, or abandoned). */
  private _dequeued = 0;
  /** Every record before this sequence number has settled. */
  private _settled = 0;
  private readonly _order: InFlight[] = [];
  private _waiters: Waiter[] = [];
  /** Export partial batches until this many records have been dequeued (forceFlush, shutdown). */
  private _flushTarget = 0;
  private _timer: NodeJS.Timeout | undefined;
  private _immediate: NodeJS.Immediate | undefined;
  private _pumping = false;
  private _repump = false;
  private _shuttingDown = false;
  private _shutdown: Promise<void> | undefined;

  constructor(options: CountingBatchLogRecordProcessorOptions) {
    if (options?.exporter === undefined) throw new TypeError('CountingBatchLogRecordProcessor needs { exporter }');
    this._exporter = options.exporter;
    this._maxQueueSize = Math.floor(positive(options.maxQueueSize ?? getNumberFromEnv('OTEL_BLRP_MAX_QUEUE_SIZE'), 32_768, 'maxQueueSize'));
    this._batchSize = Math.min(
      this._maxQueueSize,
      Math.floor(positive(options.maxExportBatchSize ?? getNumberFromEnv('OTEL_BLRP_MAX_EXPORT_BATCH_SIZE'), 512, 'maxExportBatchSize')),
    );
    this._delayMillis = positive(options.scheduledDelayMillis ?? getNumberFromEnv('OTEL_BLRP_SCHEDULE_DELAY'), 1000, 'scheduledDelayMillis');
    this._timeoutMillis = positive(options.exportTimeoutMillis ?? getNumberFromEnv('OTEL_BLRP_EXPORT_TIMEOUT'), 30_000, 'exportTimeoutMillis');
    this._maxConcurrent = Math.floor(positive(options.maxConcurrentExports, 2, 'maxConcurrentExports'));
    liveProcessors.add(this);
    processorsCreated++;
  }

  onEmit(logRecord: SdkLogRecord): void {
    if (this._shuttingDown) {
      this._count('abandoned', 1);
      return;
    }
    if (this._queued >= this._maxQueueSize) {
      // The producer outran the event loop: hand the oldest batch to the exporter now if a slot is free.
      if (this._inFlight < this._maxConcurrent && this._full.length > 0) this._exportBatch(this._full.shift()!);
      if (this._queued >= this._maxQueueSize) {
        this._count('dropped', 1);
        return;
      }
    }
    const open = this._open;
    open.push(logRecord);
    this._queued++;
    this._count('accepted', 1);
    if (open.length >= this._batchSize) {
      this._full.push(open);
      this._open = [];
      this._schedulePump();
    } else if (this._timer === undefined) {
      this._timer = setTimeout(() => {
        this._timer = undefined;
        this._flushTarget = Math.max(this._flushTarget, this._counts.accepted);
        this._pump();
      }, this._delayMillis);
      this._timer.unref();
    }
  }

  /**
   * Whether `onEmit` would take a record now. An emitter that is this processor's only source of
   * records can skip building a record when it is false, and count it with `countRefused`.
   */
  hasRoom(): boolean {
    return !this._shuttingDown && (this._queued < this._maxQueueSize || (this._inFlight < this._maxConcurrent && this._full.length > 0));
  }

  /** Counts records an emitter did not build because `hasRoom()` was false (as dropped, or abandoned once shutdown began). */
  countRefused(n: number): void {
    this._count(this._shuttingDown ? 'abandoned' : 'dropped', n);
  }

  /** Exports everything queued before the call; resolves when each of those records is exported or counted. */
  forceFlush(): Promise<void> {
    const target = this._counts.accepted;
    if (this._settled >= target) return Promise.resolve();
    this._flushTarget = Math.max(this._flushTarget, target);
    const done = new Promise<void>((resolve) => this._waiters.push({ target, resolve }));
    this._pump();
    return done;
  }

  /** Flushes (giving up on the rest at the first failed export), then shuts the exporter down. Idempotent. */
  shutdown(): Promise<void> {
    this._shutdown ??= (async () => {
      this._shuttingDown = true;
      await this.forceFlush();
      clearTimeout(this._timer);
      this._timer = undefined;
      try {
        await this._exporter.shutdown();
      } catch (error) {
        this._counts.lastError = processTotals.lastError = errorMessage(error);
      }
      liveProcessors.delete(this);
    })();
    return this._shutdown;
  }

  /** This processor's counts. */
  deliveryStats(): DeliveryStats {
    return toStats(this._counts, this.pendingCount());
  }

  /** Records dropped, failed or abandoned so far. */
  undeliveredCount(): number {
    return this._counts.dropped + this._counts.failed + this._counts.abandoned;
  }

  /** Records queued or in flight. */
  pendingCount(): number {
    return this._counts.accepted - this._settled;
  }

  private _count(kind: 'accepted' | 'exported' | 'dropped' | 'failed' | 'abandoned', n: number): void {
    this._counts[kind] += n;
    processTotals[kind] += n;
  }

  private _schedulePump(): void {
    if (this._immediate !== undefined || this._inFlight >= this._maxConcurrent) return;
    this._immediate = setImmediate(() => {
      this._immediate = undefined;
      this._pump();
    });
  }

  /** Starts exports while slots are free: full batches always, the open batch when a flush or the timer asks. */
  private _pump(): void {
    if (this._pumping) {
      this._repump = true;
      return;
    }
    this._pumping = true;
    try {
      do {
        this._repump = false;
        while (this._inFlight < this._maxConcurrent) {
          if (this._full.length > 0) {
            this._exportBatch(this._full.shift()!);
          } else if (this._open.length > 0 && this._dequeued < this._flushTarget) {
            const batch = this._open;
            this._open = [];
            clearTimeout(this._timer);
            this._timer = undefined;
            this._exportBatch(batch);
          } else {
            break;
          }
        }
      } while (this._repump);
    } finally {
      this._pumping = false;
    }
  }

  private _exportBatch(batch: SdkLogRecord[]): void {
    const n = batch.length;
    this._queued -= n;
    this._dequeued += n;
    const entry: InFlight = { end: this._dequeued, done: false };
    this._order.push(entry);
    this._inFlight++;
    let finished = false;
    const timer = setTimeout(() => {
      onResult({ code: ExportResultCode.FAILED, error: new Error(`log export did not complete within ${this._timeoutMillis} ms`) });
    }, this._timeoutMillis);
    timer.unref();
    const onResult = (result: ExportResult): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      this._inFlight--;
      if (result.code === ExportResultCode.SUCCESS) {
        this._count('exported', n);
      } else {
        this._count('failed', n);
        this._counts.lastError = processTotals.lastError = errorMessage(result.error ?? 'log export failed');
        // Shutting down with a failing exporter: do not wait out a timeout per remaining batch.
        if (this._shuttingDown) this._abandonQueued();
      }
      entry.done = true;
      this._settle();
      this._pump();
    };
    try {
      context.with(suppressTracing(context.active()), () => this._exporter.export(batch, onResult));
    } catch (error) {
      onResult({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  private _abandonQueued(): void {
    const n = this._queued;
    if (n === 0) return;
    this._full = [];
    this._open = [];
    this._queued = 0;
    this._dequeued += n;
    this._order.push({ end: this._dequeued, done: true });
    this._count('abandoned', n);
  }

  private _settle(): void {
    const order = this._order;
    let head = 0;
    while (head < order.length && order[head]!.done) this._settled = order[head++]!.end;
    if (head > 0) order.splice(0, head);
    if (this._waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const waiter of this._waiters) {
      if (this._settled >= waiter.target) waiter.resolve();
      else still.push(waiter);
    }
    this._waiters = still;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
