// Holds each run's run_finished for a short while before it is forwarded. A Collector sends spans
// and log records through separate pipelines, and its sending queue runs several requests at once,
// so a run's span (its end) often arrives before the last of its metric records. MLflow takes
// points for a finished run, but W&B would see the run complete and then reopen it. Points that
// arrive within the window go out before the finish; later ones are still forwarded (W&B's sender
// streams them and completes the run again), so nothing is ever dropped here. An end that counts
// its run's records (ml.run.metric_records_count) is let go as soon as they have all arrived.

import type { RunEvent } from '../../core/events.js';

export class FinishSettler {
  private readonly _held = new Map<string, { event: RunEvent; timer: NodeJS.Timeout; released: Promise<void>; release: () => void }>();

  /**
   * @param settleMillis how long a run_finished waits for late records (0: not at all)
   * @param release forwards events; called for held finishes when their time is up
   */
  constructor(
    private readonly _settleMillis: number,
    private readonly _release: (events: RunEvent[]) => void,
  ) {}

  /** The events to forward now; run_finished events are kept back and released later. */
  take(events: RunEvent[]): RunEvent[] {
    if (this._settleMillis <= 0) return events;
    const now: RunEvent[] = [];
    for (const event of events) {
      if (event.type === 'run_finished') {
        // A second finish (a resumed run): the first goes first. Waiters run after the caller forwards `now`.
        this._releaseRun(event.runId, now)?.();
        const timer = setTimeout(() => {
          const held = this._held.get(event.runId);
          this._held.delete(event.runId);
          this._release([event]);
          held?.release();
        }, this._settleMillis);
        timer.unref();
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        this._held.set(event.runId, { event, timer, released, release });
      } else {
        // A run started again after its finish (resumed): the finish must reach the targets before it.
        if (event.type === 'run_started') this._releaseRun(event.runId, now)?.();
        now.push(event);
      }
    }
    return now;
  }

  /** Resolves once the run's held finish has been forwarded (at once when none is held). */
  released(runId: string): Promise<void> {
    return this._held.get(runId)?.released ?? Promise.resolve();
  }

  /** Forwards the run's held finish now, if one is held (its records have all arrived). */
  release(runId: string): void {
    const out: RunEvent[] = [];
    const release = this._releaseRun(runId, out);
    if (release === undefined) return;
    this._release(out);
    release();
  }

  /** Forwards every held finish now (shutdown). */
  flush(): void {
    const out: RunEvent[] = [];
    const released: Array<() => void> = [];
    for (const runId of [...this._held.keys()]) released.push(this._releaseRun(runId, out)!);
    if (out.length > 0) this._release(out);
    for (const release of released) release();
  }

  /** Moves a held finish to `out`; returns the function that tells its waiters, to call once it is forwarded. */
  private _releaseRun(runId: string, out: RunEvent[]): (() => void) | undefined {
    const held = this._held.get(runId);
    if (held === undefined) return undefined;
    clearTimeout(held.timer);
    this._held.delete(runId);
    out.push(held.event);
    return held.release;
  }
}
