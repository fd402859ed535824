// When the bridge last heard of each open run (any record, span or heartbeat), and which runs have
// been silent for `staleAfterMillis`: their process is presumed dead, and Ingest finishes them
// `crashed` in every target. Runs are kept in order of last activity, so a check looks only at the
// silent ones; the number of runs watched is bounded (the least recently heard of is dropped and
// then never reaped by the bridge: `runtel reap --mlflow` still finds it).

export interface StaleRunsOptions {
  staleAfterMillis: number;
  /** Runs watched at once. */
  maxRuns: number;
  /** Called with each run that went silent, and when it was last heard of. */
  onStale: (runId: string, lastHeardMillis: number) => void;
}

export class StaleRuns {
  private readonly _lastHeard = new Map<string, number>();
  /** Runs finished crashed (bounded), to tell a revival from an ordinary resume. */
  private readonly _crashed = new Set<string>();
  private readonly _options: StaleRunsOptions;
  private _timer: NodeJS.Timeout | undefined;
  private _dropped = 0;

  constructor(options: StaleRunsOptions) {
    this._options = options;
  }

  /** Runs watched now. */
  get size(): number {
    return this._lastHeard.size;
  }

  /** Runs no longer watched because more than maxRuns were. */
  get dropped(): number {
    return this._dropped;
  }

  /** The run was heard of now. */
  heard(runId: string, now = Date.now()): void {
    this._lastHeard.delete(runId);
    this._lastHeard.set(runId, now);
    if (this._lastHeard.size > this._options.maxRuns) {
      this._lastHeard.delete(this._lastHeard.keys().next().value!);
      this._dropped++;
    }
    this._ensureTimer();
  }

  /** The run finished (or was finished): no longer watched. */
  forget(runId: string): void {
    this._lastHeard.delete(runId);
  }

  /** The run was finished crashed. */
  crashed(runId: string): void {
    this._crashed.add(runId);
    if (this._crashed.size > this._options.maxRuns) this._crashed.delete(this._crashed.values().next().value!);
  }

  /** Whether the run was finished crashed (and is no longer: it spoke again). */
  wasCrashed(runId: string): boolean {
    return this._crashed.delete(runId);
  }

  /** Reports every run silent for staleAfterMillis (and stops watching it). */
  check(now = Date.now()): void {
    for (const [runId, heard] of this._lastHeard) {
      if (now - heard < this._options.staleAfterMillis) break;
      this._lastHeard.delete(runId);
      this._options.onStale(runId, heard);
    }
    if (this._lastHeard.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this._timer);
    this._timer = undefined;
  }

  // Looks ten times per stale-after (at most every second): a dead run is finished within 1.1 × stale-after of its last sign.
  private _ensureTimer(): void {
    if (this._timer !== undefined) return;
    this._timer = setInterval(() => this.check(), Math.min(1000, this._options.staleAfterMillis / 10));
    this._timer.unref();
  }
}
