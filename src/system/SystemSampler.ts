// Samples the machine for one top-level run every interval, off the hot path: an unref'd timer
// (never keeps the process alive), asynchronous reads, at most one sample in flight (a slow one
// skips a tick rather than piling up), and nothing emitted once the run has finished.

import type { SystemMetricsEvent } from '../core/events.js';
import { SystemCollector } from './collect.js';
import type { NvidiaSmi } from './nvidiaSmi.js';

export interface SystemSamplerOptions {
  runId: string;
  intervalMillis: number;
  emit: (event: SystemMetricsEvent) => void;
  /** First step; a resumed run continues after its last system step. Default 0. */
  firstStep?: number;
  gpus?: NvidiaSmi;
}

export class SystemSampler {
  private readonly _options: SystemSamplerOptions;
  private readonly _collector: SystemCollector;
  private readonly _timer: NodeJS.Timeout;
  private _step: number;
  private _busy = false;
  private _stopped = false;

  constructor(options: SystemSamplerOptions) {
    this._options = options;
    this._step = options.firstStep ?? 0;
    // nvidia-smi gets at most half an interval (and never more than 5 s).
    // The event-loop monitor ticks ten times an interval, at most every 10 ms and at least every 100 ms.
    this._collector = new SystemCollector({
      gpuTimeoutMillis: Math.min(5000, Math.max(100, options.intervalMillis / 2)),
      loopResolutionMillis: Math.min(100, Math.max(10, Math.floor(options.intervalMillis / 10))),
      ...(options.gpus ? { gpus: options.gpus } : {}),
    });
    // Like MLflow, the first sample comes one interval after the start (CPU is a rate over it).
    this._timer = setInterval(() => this._tick(), options.intervalMillis);
    this._timer.unref();
  }

  /** Stops sampling; a sample still being read is dropped. Idempotent. */
  stop(): void {
    if (this._stopped) return;
    this._stopped = true;
    clearInterval(this._timer);
    this._collector.close();
  }

  private _tick(): void {
    if (this._busy || this._stopped) return;
    this._busy = true;
    const timestamp = Date.now();
    this._collector.sample().then(
      (values) => {
        this._busy = false;
        if (this._stopped) return;
        this._options.emit({ type: 'system_metrics', runId: this._options.runId, step: this._step++, timestamp, values });
      },
      () => {
        // A failed read (a vanished /proc, say) skips this sample; the next tick tries again.
        this._busy = false;
      },
    );
  }
}
