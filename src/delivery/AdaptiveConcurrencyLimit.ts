// How many requests a DeliveryBackend keeps in flight, found by measuring. Servers differ: MLflow on
// SQLite serializes its writes and concurrent ones wait on the database lock (here, 4 log-batch
// requests at once stored 10% fewer points/s than 1), MLflow on PostgreSQL stores 30% more with 4
// than with 1. So the limit measures points/s while work is queued at each of the levels 1, 2, 4, …
// up to `maxConcurrentRequests`, from the ceiling down while each level does as well as the one above,
// keeps to the best, and measures its neighbours again now and then, as a server's rate drifts.

export interface AdaptiveConcurrencyLimitOptions {
  /** The ceiling (maxConcurrentRequests); Infinity or 1: the limit stays there. */
  max: number;
  /** Shortest measuring window. Default 500. */
  windowMillis?: number;
  now?: () => number;
}

/**
 * A neighbour measured this many windows ago is measured again; each measuring that confirms the
 * current level doubles the wait, up to the maximum, as measuring a worse level costs points/s.
 */
const REMEASURE_AFTER_WINDOWS = 8;
const REMEASURE_AFTER_WINDOWS_MAX = 64;
/**
 * Fewest requests a window counts: one log-batch on MLflow's SQLite store takes 90–250 ms as its
 * writes sync, so 3 requests in 500 ms measured the same level anywhere from 5,200 to 10,700 points/s.
 */
const MIN_REQUESTS_PER_WINDOW = 8;
/** A level is preferred to a lower one only when it delivered this much more: the same points/s with fewer requests is kinder to the server. */
const BETTER_BY = 1.03;

export class AdaptiveConcurrencyLimit {
  private readonly _levels: number[];
  private readonly _rates: Array<{ pointsPerSecond: number; age: number } | undefined>;
  private readonly _windowMillis: number;
  private readonly _now: () => number;
  private _index: number;
  /** Requests sent under the previous level still to settle: not counted. */
  private _skip = 0;
  private _windowStart: number | undefined;
  private _points = 0;
  private _settledCount = 0;
  private _remeasureAfter = REMEASURE_AFTER_WINDOWS;
  /** The level a neighbour is being measured from. */
  private _measuringFrom: number | undefined;
  private _warm = false;

  constructor(options: AdaptiveConcurrencyLimitOptions) {
    const { max } = options;
    this._levels = [];
    if (Number.isFinite(max) && max > 1) {
      for (let level = 1; level < max; level *= 2) this._levels.push(level);
    }
    this._levels.push(max);
    this._rates = this._levels.map(() => undefined);
    // From the ceiling down: a wrong level costs PostgreSQL more below its best than SQLite above it
    // (climbing from 1 instead delivered 9–14% fewer points/s on PostgreSQL in bench/bridge-ingest).
    this._index = this._levels.length - 1;
    this._windowMillis = options.windowMillis ?? 500;
    this._now = options.now ?? (() => performance.now());
  }

  get current(): number {
    return this._levels[this._index]!;
  }

  /**
   * A request settled, having delivered `points` (0 when it failed). `waiting`: work was queued
   * beyond what was in flight, so the sender, not the demand, bounded the rate. `inFlight`: requests
   * still in flight.
   */
  onSettled(points: number, waiting: boolean, inFlight: number): void {
    if (this._levels.length === 1) return;
    if (this._skip > 0) {
      this._skip--;
      if (this._skip === 0) this._restart();
      return;
    }
    // Nothing queued beyond what is in flight: the demand set the rate, not the server.
    if (!waiting) return this._restart();
    const now = this._now();
    if (this._windowStart === undefined) {
      this._windowStart = now;
      return;
    }
    this._points += points;
    this._settledCount++;
    const elapsed = now - this._windowStart;
    if (elapsed < this._windowMillis) return;
    if (!this._warm) {
      // The first 500 ms are left out: a new server, an empty table and a full queue run faster (or a cold one slower) than what follows.
      this._warm = true;
      return this._restart();
    }
    if (this._settledCount < Math.max(MIN_REQUESTS_PER_WINDOW, 2 * this.current)) return;
    this._record((this._points * 1000) / elapsed);
    const { next, measuring } = this._next();
    if (this._measuringFrom !== undefined) {
      const confirmed = next === this._measuringFrom;
      this._remeasureAfter = confirmed ? Math.min(this._remeasureAfter * 2, REMEASURE_AFTER_WINDOWS_MAX) : REMEASURE_AFTER_WINDOWS;
    }
    this._measuringFrom = measuring ? this._index : undefined;
    if (next !== this._index) {
      this._index = next;
      this._skip = inFlight;
    }
    this._restart();
  }

  private _record(pointsPerSecond: number): void {
    for (const rate of this._rates) if (rate !== undefined) rate.age++;
    const previous = this._rates[this._index];
    // Staying at a level averages its windows; one measured long ago is measured anew.
    const blended = previous !== undefined && previous.age < REMEASURE_AFTER_WINDOWS ? (previous.pointsPerSecond + pointsPerSecond) / 2 : pointsPerSecond;
    this._rates[this._index] = { pointsPerSecond: blended, age: 0 };
  }

  /**
   * The best level measured (a higher one only when it beats a lower by BETTER_BY); at the best, the
   * level below while it is unmeasured (the descent from the ceiling stops where a level loses to the
   * one above: PostgreSQL never pays for 1 in flight once 2 lost to 4); else a neighbour not measured lately.
   */
  private _next(): { next: number; measuring: boolean } {
    const here = this._index;
    let best: number | undefined;
    this._rates.forEach((rate, i) => {
      if (rate !== undefined && (best === undefined || rate.pointsPerSecond > this._rates[best]!.pointsPerSecond * BETTER_BY)) best = i;
    });
    if (best !== undefined && best !== here) return { next: best, measuring: false };
    if (here > 0 && this._rates[here - 1] === undefined) return { next: here - 1, measuring: false };
    for (const i of [here - 1, here + 1]) {
      const rate = this._rates[i];
      if (rate !== undefined && rate.age >= this._remeasureAfter) return { next: i, measuring: true };
    }
    return { next: here, measuring: false };
  }

  private _restart(): void {
    this._windowStart = undefined;
    this._points = 0;
    this._settledCount = 0;
  }
}
