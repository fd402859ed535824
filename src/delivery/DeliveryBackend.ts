// The RunBackend behind every remote target. `onEvent` only queues (it runs inside logMetrics);
// requests go out in the background, per run through the target's channels, each with its own
// in-flight bound, and across runs within a limit found by measuring, up to `maxConcurrentRequests`
// (AdaptiveConcurrencyLimit.ts), round-robin.
//
// It knows, per run and per event, what has been delivered (see DeliveryTarget.ts), so a caller can
// wait for exactly what it handed over (`whenDelivered`, `flushRun`); the bridge answers a request
// only once its events are delivered. It reports the first retry of an outage when it happens, and at
// shutdown cuts off what is left after the deadline, counted undelivered and reported in one line.

import type { RunBackend } from '../core/RunBackend.js';
import type { RunEvent, RunFinishedEvent, RunStartedEvent } from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import { AdaptiveConcurrencyLimit } from './AdaptiveConcurrencyLimit.js';
import { DeliveryReports } from './DeliveryReports.js';
import { flushTimeoutFromEnv } from '../core/env.js';
import { heartbeatInterval } from '../core/liveness.js';
import type { DeliveryTarget, StartedRun, Work } from './DeliveryTarget.js';
import { newSlot, pendingSeq, settleWaiters } from './RunSlot.js';
import type { Slot } from './RunSlot.js';
import type { TargetError } from './TargetError.js';
import type { DeliveryOptions, TargetStats } from './DeliveryOptions.js';

export type { DeliveryOptions, TargetStats } from './DeliveryOptions.js';

const FINISH_CHANNEL = '\0finish';
/** A waiter that has waited this long makes its run send what it has (W&B closes open rows). */
const EXPEDITE_AFTER_MILLIS = 200;

export class DeliveryBackend<R, S extends TargetStats = TargetStats> implements RunBackend {
  readonly name: string;
  /** Where runs go, without credentials (`MLflow http://…`). */
  readonly location: string;
  protected readonly target: DeliveryTarget<R>;
  private readonly _slots = new Map<string, Slot<R>>();
  private readonly _ready = new Set<Slot<R>>();
  private readonly _done: string[] = [];
  private readonly _idle = new Set<() => void>();
  private readonly _config: Required<Omit<DeliveryOptions, 'onDelivered' | 'onRetry'>>;
  private readonly _onDelivered: ((points: number) => void) | undefined;
  private readonly _stats = { sentPoints: 0, undeliveredPoints: 0, retries: 0, heartbeats: 0 };
  private readonly _reports: DeliveryReports;
  private _queuedPoints = 0;
  private _inflight = 0;
  private readonly _limit: AdaptiveConcurrencyLimit;
  /** Metric points of the requests in flight. */
  private _inflightPoints = 0;
  /** Creations not sent yet (queued, or waiting for what they need). */
  private _pendingCreates = 0;
  private _pendingFinishes = 0;
  private _timer: NodeJS.Timeout | undefined;
  private _abandoned = false;
  private _shutdown: Promise<void> | undefined;

  constructor(target: DeliveryTarget<R>, options: DeliveryOptions) {
    this.target = target;
    this.name = target.name;
    this.location = target.location;
    this._reports = new DeliveryReports(target.name, target.location);
    this._config = {
      flushIntervalMillis: options.flushIntervalMillis,
      maxQueuedPoints: options.maxQueuedPoints ?? 1_000_000,
      maxConcurrentRequests: options.maxConcurrentRequests ?? Number.POSITIVE_INFINITY,
      maxDoneRuns: options.maxDoneRuns ?? 1000,
      flushTimeoutMillis: options.flushTimeoutMillis ?? flushTimeoutFromEnv(),
      heartbeatIntervalMillis: heartbeatInterval(options.heartbeatIntervalMillis),
    };
    for (const [key, value] of Object.entries(this._config)) {
      if (!(value > 0)) throw new RangeError(`${key} must be greater than 0, got ${value}`);
    }
    this._limit = new AdaptiveConcurrencyLimit({ max: this._config.maxConcurrentRequests });
    this._onDelivered = options.onDelivered;
    const onRetry = options.onRetry;
    if (onRetry !== undefined) target.client.addRetryListener(onRetry);
    target.bind({
      reportOnce: (kind, operation, error) => this._reports.once(kind, operation, error),
      report: (failure) => this._reports.report(failure),
      discard: (points, outcome) => {
        this._queuedPoints -= points;
        if (outcome === 'undelivered') this._stats.undeliveredPoints += points;
      },
      wake: (runId) => {
        const slot = this._slots.get(runId);
        if (slot !== undefined) this._wake(slot);
      },
    });
    target.client.addRetryListener((error) => this._onRetry(error));
  }

  bindFailureReporter(report: (failure: BackendFailure) => void): void {
    this._reports.bind(report);
  }

  /** Delivery counters, with the target's own (W&B's skipped points, …). */
  stats(): S {
    return { ...this.target.stats?.(), ...this._stats, queuedPoints: this._queuedPoints, runs: this._slots.size, concurrencyLimit: this._limit.current } as S;
  }

  onEvent(event: RunEvent): void {
    if (this._abandoned) return this._undeliverable(event);
    let slot = this._slots.get(event.runId);
    if (event.type === 'run_started') {
      slot = this._start(event, slot);
      return;
    }
    if (slot === undefined) {
      const adopted = this.target.adopt?.(event.runId);
      if (adopted === undefined) {
        this._reports.once('no-run', 'onEvent', new Error(`${event.type} for run ${event.runId}, which this backend has not seen start: not delivered`));
        return this._undeliverable(event);
      }
      slot = this._open(event.runId, adopted, 0);
    }
    if (slot.dead) return this._undeliverable(event);
    if (event.type === 'metrics' || event.type === 'system_metrics') {
      const count = Object.keys(event.values).length;
      if (this._queuedPoints + count > this._config.maxQueuedPoints) {
        this._stats.undeliveredPoints += count;
        this._reports.once('queue-full', 'enqueue', new Error(`${this.target.location}: queue full (${this._config.maxQueuedPoints} points): points are dropped here and kept in the local run log`));
        return;
      }
      this._queuedPoints += count;
    }
    const seq = ++slot.seq;
    if (event.type === 'run_finished') {
      this._setFinishing(slot, event, seq);
      slot.lastFinish = event;
    } else if (slot.done) {
      // Data after the end (OTel pipelines reorder a run's span and its last records).
      slot.done = false;
      if (this.target.refinishAfterLateData === true && slot.lastFinish !== undefined) this._setFinishing(slot, slot.lastFinish, seq);
    }
    const urgent = this.target.accept(slot.state, event, seq);
    this._ready.add(slot);
    if (urgent || event.type === 'run_finished') this._pump();
    else this._ensureTimer();
  }

  /** The target's part of `Run.childEnv()` (W&B: the group of the run's tree). */
  childEnv(runId: string): Record<string, string> | undefined {
    const slot = this._slots.get(runId);
    return slot === undefined ? undefined : this.target.childEnv?.(slot.state);
  }

  /** The seq of the last event handed over for `runId` (undefined for an unknown run). */
  position(runId: string): number | undefined {
    return this._slots.get(runId)?.seq;
  }

  /**
   * Resolves true once every event of `runId` up to `seq` has been delivered, false when the run's
   * delivery ended without it (a permanent failure, the shutdown deadline). Unknown runs: true.
   */
  whenDelivered(runId: string, seq: number): Promise<boolean> {
    const slot = this._slots.get(runId);
    if (slot === undefined || seq < this._pendingSeq(slot)) return Promise.resolve(slot?.dead !== true);
    if (slot.dead) return Promise.resolve(false);
    slot.expedite ??= unrefTimeout(() => {
      slot.expedite = undefined;
      const upTo = Math.max(...slot.waiters.map((w) => w.seq));
      if (this.target.expedite !== undefined) this.target.expedite(slot.state, upTo);
      else this.target.flush?.(slot.state);
      this._wake(slot);
    }, EXPEDITE_AFTER_MILLIS);
    return new Promise((resolve) => slot.waiters.push({ seq, resolve }));
  }

  /** Delivers what was handed over for one run so far (a run's `finish()` waits for this). */
  async flushRun(runId: string): Promise<void> {
    const seq = this.position(runId);
    if (seq === undefined) return;
    const slot = this._slots.get(runId)!;
    this.target.flush?.(slot.state);
    this._wake(slot);
    await this.whenDelivered(runId, seq);
  }

  async forceFlush(): Promise<void> {
    for (const slot of this._slots.values()) {
      if (slot.dead || slot.done) continue;
      this.target.flush?.(slot.state);
      this._ready.add(slot);
    }
    this._pump();
    if (this._isIdle()) return;
    await new Promise<void>((resolve) => this._idle.add(resolve));
  }

  /**
   * Delivers what it can within the deadline, then cuts off the rest: queued and in-flight points
   * are counted undelivered and reported in one line. Idempotent.
   */
  shutdown(options: { timeoutMillis?: number } = {}): Promise<void> {
    this._shutdown ??= (async () => {
      const timeoutMillis = options.timeoutMillis ?? this._config.flushTimeoutMillis;
      let timer: NodeJS.Timeout | undefined;
      const delivered = await Promise.race([
        this.forceFlush().then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMillis))),
      ]);
      clearTimeout(timer);
      if (!delivered) this._abandon(timeoutMillis);
      clearInterval(this._timer);
      this._timer = undefined;
      await this.target.client.close();
    })();
    return this._shutdown;
  }

  // --- runs ---

  private _start(event: RunStartedEvent, previous: Slot<R> | undefined): Slot<R> {
    const started = this.target.start(event, previous?.dead === false ? previous.state : undefined);
    if (previous !== undefined && !previous.dead) {
      previous.state = started.state;
      previous.done = false;
      previous.finishing = undefined;
      const seq = ++previous.seq;
      if (started.create !== undefined) this._create(previous, started.create, seq, started.after);
      this._ready.add(previous);
      this._ensureTimer();
      return previous;
    }
    if (previous !== undefined) this._slots.delete(event.runId);
    return this._open(event.runId, started, 1);
  }

  private _open(runId: string, started: StartedRun<R>, seq: number): Slot<R> {
    const slot = newSlot(runId, started.state, seq);
    this._slots.set(runId, slot);
    if (started.create !== undefined) this._create(slot, started.create, seq, started.after);
    this._ensureTimer();
    return slot;
  }

  /** Queues the run's creation: it is sent like any request, within maxConcurrentRequests, once `after` settled. */
  private _create(slot: Slot<R>, create: () => Promise<void>, seq: number, after?: Promise<unknown>): void {
    slot.creating = Math.min(slot.creating, seq);
    if (!slot.createPending) this._pendingCreates++;
    slot.createPending = true;
    if (after === undefined) {
      slot.create = create;
      this._ready.add(slot);
      return;
    }
    // Until then the run is not ready: the pump does not see it, and it holds no request slot.
    slot.create = undefined;
    void after.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      if (!slot.createPending || slot.create !== undefined) return;
      slot.create = create;
      this._wake(slot);
    });
  }

  private _startCreate(slot: Slot<R>, create: () => Promise<void>): void {
    slot.create = undefined;
    slot.createPending = false;
    this._inflight++;
    this._pendingCreates--;
    void create().then(
      () => {
        slot.lastSentAt = Date.now();
        this._reports.delivered();
      },
      (error: unknown) => this._kill(slot, error, this.target.createOperation),
    ).finally(() => {
      this._settledRequest(0, 0);
      slot.creating = Number.POSITIVE_INFINITY;
      this._settled(slot);
    });
  }

  private _setFinishing(slot: Slot<R>, event: RunFinishedEvent, seq: number): void {
    if (slot.finishing === undefined) this._pendingFinishes++;
    slot.finishing = { event, seq };
  }

  /** A permanent failure: the run's queued data is dropped and counted; its waiters learn it. */
  private _kill(slot: Slot<R>, error: unknown, operation: string): void {
    this._reports.failure(error, operation);
    if (slot.dead) return;
    slot.dead = true;
    if (slot.createPending) {
      slot.create = undefined;
      slot.createPending = false;
      slot.creating = Number.POSITIVE_INFINITY;
      this._pendingCreates--;
    }
    const dropped = this.target.drop(slot.state);
    this._queuedPoints -= dropped;
    this._stats.undeliveredPoints += dropped;
    if (slot.finishing !== undefined) this._pendingFinishes--;
    slot.finishing = undefined;
    this._ready.delete(slot);
  }

  // --- sending ---

  private _wake(slot: Slot<R>): void {
    this._ready.add(slot);
    this._pump();
  }

  /** Starts as many requests as the bounds allow, runs in turn. */
  private _pump(): void {
    if (this._abandoned) return;
    const limit = this._limit.current;
    // Deleting the current entry while iterating a Set is safe; an entry is added back only before a break.
    for (const slot of this._ready) {
      if (this._inflight >= limit) break;
      if (slot.dead || slot.creating !== Number.POSITIVE_INFINITY) {
        this._ready.delete(slot);
        // Nothing else of the run goes before it exists; its creation settling brings it back.
        if (!slot.dead && slot.create !== undefined) this._startCreate(slot, slot.create);
        continue;
      }
      let room = true;
      for (const channel of this.target.channels) {
        while ((slot.inflight.get(channel.name) ?? 0) < channel.maxInFlightPerRun) {
          if (this._inflight >= limit) {
            room = false;
            break;
          }
          const work = this.target.take(slot.state, channel.name);
          if (work === undefined) break;
          this._send(slot, channel.name, work);
        }
        if (!room) break;
      }
      if (room && slot.finishing !== undefined && slot.works.size === 0 && !this.target.hasQueued(slot.state)) {
        this._sendFinish(slot, slot.finishing.event);
      }
      // Taken to the back: the next pump serves the other runs first.
      this._ready.delete(slot);
      if (!room) this._ready.add(slot);
    }
    if (this._idle.size > 0 && this._isIdle()) {
      for (const resolve of this._idle) resolve();
      this._idle.clear();
    }
  }

  private _sendFinish(slot: Slot<R>, event: RunFinishedEvent): void {
    const finishing = slot.finishing!;
    // Sent once: whether it succeeds or fails for good, the run is finished as far as delivery goes.
    const settle = (): void => {
      if (slot.finishing !== finishing) return;
      slot.finishing = undefined;
      this._pendingFinishes--;
      this._completed(slot);
    };
    this._send(slot, FINISH_CHANNEL, this.target.finish(slot.state, event), { seq: finishing.seq, onSent: settle, onFailed: settle });
  }

  /** `extra` adds the backend's own bookkeeping to a target's request (its finish, a heartbeat). */
  private _send(slot: Slot<R>, channel: string, work: Work, extra: { seq?: number; onSent?: () => void; onFailed?: () => void } = {}): void {
    this._inflight++;
    this._inflightPoints += work.points;
    slot.inflight.set(channel, (slot.inflight.get(channel) ?? 0) + 1);
    const tracked = extra.seq === undefined ? work : { seq: extra.seq };
    slot.works.add(tracked);
    let delivered = 0;
    void work.send().then(
      () => {
        if (this._abandoned) return;
        delivered = work.points;
        this._queuedPoints -= work.points;
        this._stats.sentPoints += work.points;
        slot.lastSentAt = Date.now();
        this._reports.delivered();
        work.onSent?.();
        extra.onSent?.();
        if (work.points > 0) this._onDelivered?.(work.points);
      },
      (error: unknown) => {
        if (this._abandoned) return;
        this._queuedPoints -= work.points;
        this._stats.undeliveredPoints += work.points;
        work.onFailed?.();
        extra.onFailed?.();
        if (work.killsRun?.(error) === true) this._kill(slot, error, work.operation);
        else this._reports.failure(error, work.operation);
      },
    ).finally(() => {
      this._settledRequest(work.points, delivered);
      slot.inflight.set(channel, slot.inflight.get(channel)! - 1);
      slot.works.delete(tracked);
      this._settled(slot);
    });
  }

  /** A request of `points` settled, `delivered` of them accepted: the concurrency limit learns from it. */
  private _settledRequest(points: number, delivered: number): void {
    // Points still queued beyond those in flight: demand was there. A gap in sending while some are held
    // (a part-filled batch, a client waiting for its acknowledgement) is counted against the level: it is
    // what that level cost (4 requests at once on SQLite answer the oldest last, which holds up every acknowledgement).
    const waiting = this._queuedPoints + points > this._inflightPoints || this._pendingCreates > 0;
    this._inflight--;
    this._inflightPoints -= points;
    this._limit.onSettled(delivered, waiting, this._inflight);
  }

  /** After anything of a run settled: resolve the waiters it satisfied, and send what is next. */
  private _settled(slot: Slot<R>): void {
    if (slot.waiters.length > 0) settleWaiters(slot, slot.dead ? -1 : this._pendingSeq(slot));
    if (!slot.dead) this._ready.add(slot);
    this._pump();
  }

  private _pendingSeq(slot: Slot<R>): number {
    return pendingSeq(slot, this.target.queuedSeq(slot.state));
  }

  /** A finished run stays known for late data and its children, up to maxDoneRuns of them. */
  private _completed(slot: Slot<R>): void {
    slot.done = true;
    this._done.push(slot.id);
    while (this._done.length > this._config.maxDoneRuns) {
      const oldest = this._slots.get(this._done.shift()!);
      if (oldest?.done === true && oldest.works.size === 0 && oldest.waiters.length === 0) {
        this._slots.delete(oldest.id);
        this._ready.delete(oldest);
        this.target.forget?.(oldest.state);
      }
    }
  }

  private _isIdle(): boolean {
    return this._inflight === 0 && this._pendingCreates === 0 && this._pendingFinishes === 0 && this._ready.size === 0;
  }

  private _ensureTimer(): void {
    if (this._timer !== undefined || this._shutdown !== undefined) return;
    const period = Math.min(this._config.flushIntervalMillis, this._config.heartbeatIntervalMillis);
    // Never keeps the process alive: finish(), forceFlush() and shutdown() drive delivery themselves.
    this._timer = setInterval(() => this._tick(), period);
    this._timer.unref();
  }

  private _tick(): void {
    const now = Date.now();
    let live = false;
    for (const slot of this._slots.values()) {
      if (slot.dead || slot.done) continue;
      live = true;
      this._ready.add(slot);
      if (slot.finishing === undefined && slot.creating === Number.POSITIVE_INFINITY && slot.works.size === 0 && now - slot.lastSentAt >= this._config.heartbeatIntervalMillis) {
        const beat = this.target.heartbeat?.(slot.state);
        if (beat !== undefined) this._send(slot, beat.channel, beat.work, { onSent: () => this._stats.heartbeats++ });
      }
    }
    this._pump();
    if (!live && this._ready.size === 0) {
      clearInterval(this._timer);
      this._timer = undefined;
    }
  }

  // --- failures ---

  private _undeliverable(event: RunEvent): void {
    if (event.type === 'metrics' || event.type === 'system_metrics') this._stats.undeliveredPoints += Object.keys(event.values).length;
  }

  private _onRetry(error: TargetError): void {
    this._stats.retries++;
    this._reports.retrying(error, this.target.client.retryTimeoutMillis);
  }

  /** Past the shutdown deadline: what is left is counted undelivered, reported once, and cut off. */
  private _abandon(timeoutMillis: number): void {
    this._abandoned = true;
    let runs = 0;
    const points = this._queuedPoints;
    for (const slot of this._slots.values()) {
      if (slot.dead || slot.done) continue;
      if (slot.works.size > 0 || slot.finishing !== undefined || this.target.hasQueued(slot.state) || slot.creating !== Number.POSITIVE_INFINITY) runs++;
      for (const w of slot.waiters) w.resolve(false);
      slot.waiters = [];
    }
    this._stats.undeliveredPoints += points;
    this._queuedPoints = 0;
    this._reports.abandoned(points, runs, timeoutMillis);
  }
}

function unrefTimeout(fn: () => void, millis: number): NodeJS.Timeout {
  const timer = setTimeout(fn, millis);
  timer.unref();
  return timer;
}

