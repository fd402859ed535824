// How many requests a DeliveryBackend keeps in flight, found by measuring. Servers differ: MLflow on
// SQLite serializes its writes and concurrent ones wait on the database lock (here, 4 log-batch
// requests at once stored 10% fewer points/s than 1), MLflow on PostgreSQL stores 30% more with 4
// than with 1. So the limit measures points/s while work is queued at the levels 1, 2, 4, … up to
// `maxConcurrentRequests`: the ceiling first, then 1, then keeps to the better and measures its
// neighbours now and then (the levels between too), as a server's rate drifts. One window is off by up to ±20% on
// MLflow's SQLite store, so the level in use is judged on its recent windows together, and another
// level is taken only after it led twice (see _judge), unless it led by far. A level far behind the
// best is left after a few requests, before its window is full.

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
/**
 * A level measured at under CLEARLY_WORSE × the best's rate after this many requests ends its window
 * there. On PostgreSQL 1 in flight stores 0.54–0.73× what 4 does, at about 100 ms a request, so each
 * request less at 1 saves some 40 ms of a 4's worth. Simulated with SQLite's heavy-tailed noise, fresh
 * runs left a level 1 that is really 5%, 10%, 30% better than 4 after its first window as often with 3
 * as with 4 (45%, 39%, 16–17%, before _judge's second window: a full window's noise did most of that),
 * and then lose only that margin until 1 is measured again.
 */
const MIN_REQUESTS_TO_LOSE = 3;
const CLEARLY_WORSE = 0.7;
/**
 * A level measured against the one in use and found this far ahead is taken after one window. Through
 * the bridge, MLflow's SQLite store took 1.25–2.9× as much at 1 as at 4; PostgreSQL's 1 (0.54–0.73× of
 * 4) leads 4 at all only on a window of 4 that ran slow.
 */
const CLEARLY_AHEAD = 1.25;
/** A level is preferred to a lower one only when it delivered this much more: the same points/s with fewer requests is kinder to the server. */
const BETTER_BY = 1.03;
/** How many recent windows a level's rate is the mean of (older ones weigh less, as the server drifts). */
const WINDOWS_PER_RATE = 8;

/** A level (`candidate`) measured against the one in use (`from`); `confirming`: it led once, narrowly. */
interface Measuring {
  from: number;
  candidate: number;
  confirming: boolean;
}

/** A level's rate: points and milliseconds of its recent windows. */
interface Rate {
  points: number;
  millis: number;
  windows: number;
  /** Windows measured (at any level) since this one was last measured. */
  age: number;
}

function perSecond(rate: Rate): number {
  return (rate.points * 1000) / rate.millis;
}

export class AdaptiveConcurrencyLimit {
  private readonly _levels: number[];
  private readonly _rates: Array<Rate | undefined>;
  private readonly _windowMillis: number;
  private readonly _now: () => number;
  private _index: number;
  /** Requests sent under the previous level still to settle: not counted. */
  private _skip = 0;
  private _windowStart: number | undefined;
  private _points = 0;
  private _settledCount = 0;
  private _remeasureAfter = REMEASURE_AFTER_WINDOWS;
  /** Another level being measured against the one in use (see _judge). */
  private _measuring: Measuring | undefined;
  private _warm = false;
  /** Windows recorded, at any level: how long a level never measured has waited. */
  private _windows = 0;

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
      if (this._skip === 0) this._restart(waiting && inFlight === 0);
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
    if (!this._clearlyLosing(elapsed)) {
      if (elapsed < this._windowMillis) return;
      if (!this._warm) {
        // The first 500 ms are left out: a new server, an empty table and a full queue run faster (or a cold one slower) than what follows.
        this._warm = true;
        return this._restart(inFlight === 0);
      }
      // A whole number of requests per slot: requests sent together settle close together, and a window
      // ending partway through such a bunch counted part of one. Simulated at 4 in flight, requests within
      // ±2% of each other: windows off by 13% (sd; 8% low with none) against 0.6%; within ±10%: 8.8% against 3.1%.
      if (this._settledCount < Math.max(MIN_REQUESTS_PER_WINDOW, 2 * this.current) || this._settledCount % this.current !== 0) return;
    }
    this._record(this._points, elapsed);
    if (this._measuring !== undefined) return this._judge(this._measuring, inFlight);
    const { next, measuring } = this._next();
    if (measuring) this._measuring = { from: this._index, candidate: next, confirming: false };
    this._moveTo(next, inFlight);
    this._restart(inFlight === 0);
  }

  /**
   * Another level measured from the one in use: behind it, the limit goes back at once; ahead by
   * CLEARLY_AHEAD, it is taken; ahead by less, it must lead again after one more window, of
   * whichever of the two has fewer behind its rate. That is the other level's own, or the one measured
   * from when it has only one: a fresh limit's ceiling, whose single window on PostgreSQL was at times
   * low enough for 1 to lead, and 1 then kept the limit for 60% of an 8 s run.
   */
  private _judge(measuring: Measuring, inFlight: number): void {
    const { from, candidate } = measuring;
    const leads = this._best() === candidate;
    if (leads && !measuring.confirming && perSecond(this._rates[candidate]!) < perSecond(this._rates[from]!) * CLEARLY_AHEAD) {
      measuring.confirming = true;
      if (this._rates[from]!.windows < 2) this._moveTo(from, inFlight);
      return this._restart(inFlight === 0);
    }
    this._measuring = undefined;
    // Each measuring that confirms the level measured from doubles the wait before the next.
    this._remeasureAfter = leads ? REMEASURE_AFTER_WINDOWS : Math.min(this._remeasureAfter * 2, REMEASURE_AFTER_WINDOWS_MAX);
    this._moveTo(leads ? candidate : from, inFlight);
    this._restart(inFlight === 0);
  }

  /** Requests still in flight were sent under the old level: their settling is not counted. */
  private _moveTo(index: number, inFlight: number): void {
    if (index === this._index) return;
    this._index = index;
    this._skip = inFlight;
  }

  private _record(points: number, millis: number): void {
    this._windows++;
    for (const rate of this._rates) if (rate !== undefined) rate.age++;
    const previous = this._rates[this._index];
    // A level measured lately adds this window to its recent ones; one measured long ago (or being
    // measured again) starts over.
    if (previous === undefined || previous.age > REMEASURE_AFTER_WINDOWS || this._measuring?.candidate === this._index && !this._measuring.confirming) {
      this._rates[this._index] = { points, millis, windows: 1, age: 0 };
      return;
    }
    const keep = previous.windows < WINDOWS_PER_RATE ? 1 : (WINDOWS_PER_RATE - 1) / WINDOWS_PER_RATE;
    this._rates[this._index] = { points: previous.points * keep + points, millis: previous.millis * keep + millis, windows: Math.min(previous.windows + 1, WINDOWS_PER_RATE), age: 0 };
  }

  /**
   * The ceiling, then 1; then the best level measured (a higher one only when it beats a lower by
   * BETTER_BY), measured anew first unless it was the one measured just before; at the best, a
   * neighbour not measured lately, or never.
   */
  private _next(): { next: number; measuring: boolean } {
    const here = this._index;
    // Straight to 1, as the two ends tell the servers apart in one window each: through the bridge on
    // MLflow's SQLite store 1 stored 10,000–11,500 points/s against 4,000–8,000 at 4 (and 2 did no
    // better than 4: both wait on the one writer), on PostgreSQL 1 stores 0.6× what 4 does. A level
    // between, measured on the way down, cost a window on both and, within a window's ±20%, won by
    // luck often enough that a fresh bridge on PostgreSQL spent a median 28% of a 10 s run below 4.
    if (this._rates[0] === undefined) return { next: 0, measuring: true };
    const best = this._best();
    if (best !== here) return { next: best, measuring: this._rates[best]!.age > 1 };
    for (const i of [here - 1, here + 1]) {
      if (i < 0 || i >= this._levels.length) continue;
      const age = this._rates[i]?.age ?? this._windows;
      if (age >= this._remeasureAfter) return { next: i, measuring: true };
    }
    return { next: here, measuring: false };
  }

  /** The best level measured: a higher one only when it beats a lower by BETTER_BY. */
  private _best(): number {
    // The current level was just recorded, so one is measured.
    let best = this._rates.findIndex((rate) => rate !== undefined);
    this._rates.forEach((rate, i) => {
      if (i > best && rate !== undefined && perSecond(rate) > perSecond(this._rates[best]!) * BETTER_BY) best = i;
    });
    return best;
  }

  /**
   * A level other than the best, measured so far at far below the best's rate: its window ends early,
   * as the rest of it could only cost points/s (PostgreSQL's 1 in flight stores 0.6× what 4 does).
   */
  private _clearlyLosing(elapsed: number): boolean {
    if (!this._warm || this._settledCount < MIN_REQUESTS_TO_LOSE) return false;
    const best = this._best();
    if (best < 0 || best === this._index) return false;
    return (this._points * 1000) / elapsed < perSecond(this._rates[best]!) * CLEARLY_WORSE;
  }

  /**
   * A new window. `startNow` when nothing is in flight and work waits: the next request goes out now, so
   * the window can start here; otherwise it starts at the next settling, as requests in flight began
   * before it (at 1 in flight, this counts a request that settling would spend, 100 ms on PostgreSQL).
   */
  private _restart(startNow = false): void {
    this._windowStart = startNow ? this._now() : undefined;
    this._points = 0;
    this._settledCount = 0;
  }
}
