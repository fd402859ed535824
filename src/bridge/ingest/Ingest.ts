// The bridge's ingest pipeline, shared by its receivers (OTLP/HTTP, OTLP/gRPC): a decoded export
// request → identify (every run it touches has its identity) → translate (the shared translator)
// → rewrite artifacts as tags → settle (a run's end waits for its last records) → deliver to every
// target → wait until the targets have what the request carried (acknowledge after delivery).
//
// Nothing here knows HTTP or gRPC: failures are IngestErrors of a kind each receiver maps to its
// own status (see server/).

import type { RunBackend } from '../../core/RunBackend.js';
import type { RunEvent } from '../../core/events.js';
import type { BackendErrorHandler } from '../../core/errors.js';
import { OtelRunTranslator } from '../../otel/translate/OtelRunTranslator.js';
import { OtelRunSink } from '../../otel/translate/RunEventExporters.js';
import type { OtelLogInput } from '../../otel/translate/inputs.js';
import { ATTR_RUN_ID } from '../../otel/conventions.js';
import { artifactsAsTags } from './artifacts.js';
import type { ExportInputs, OtlpSignal } from './codec.js';
import { FinishSettler } from './FinishSettler.js';
import { requestRuns, startsFirst, stringAttr, withIdentity } from './identify.js';
import type { RequestRuns } from './identify.js';
import { RunDirectory } from './RunDirectory.js';
import type { Resolution, RunFinder } from './RunDirectory.js';
import { StaleRuns } from './StaleRuns.js';

/** Why a request was not taken. Receivers answer: invalid 400 / INVALID_ARGUMENT, too-large 413 / RESOURCE_EXHAUSTED, busy 503 / UNAVAILABLE (retry after `retryAfterSeconds`). */
export class IngestError extends Error {
  constructor(
    readonly kind: 'invalid' | 'too-large' | 'busy',
    message: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
    this.name = 'IngestError';
  }
}

/**
 * A RunBackend the bridge sends to. It may say how many points it holds (back-pressure) and when
 * it has delivered a run's events (acknowledgement); the MLflow and W&B backends do. One that
 * does not is taken to have delivered what it was handed.
 */
export interface BridgeTarget extends RunBackend {
  stats?(): { queuedPoints: number };
  position?(runId: string): number | undefined;
  whenDelivered?(runId: string, seq: number): Promise<boolean>;
}

export interface ExportOutcome {
  /** Records the translator rejected (partial success). */
  rejected: number;
  message: string;
}

export interface IngestOptions {
  targets: readonly BridgeTarget[];
  onError?: BackendErrorHandler | undefined;
  finders: RunFinder[];
  orphanGraceMillis: number;
  finishSettleMillis: number;
  maxRuns: number;
  maxSeenPointsPerRun: number;
  maxSeenPoints: number;
  /** Metric points waiting in a target before requests are refused as busy. */
  maxQueuedPoints: number;
  retryAfterSeconds: number;
  /** How long a request waits for its data to be delivered before it is answered "retry later". */
  ackTimeoutMillis: number;
  /** An open run nothing (record, span, heartbeat) arrived for this long is finished `crashed` in every target. */
  staleAfterMillis: number;
}

export interface IngestStats {
  logRecords: number;
  spans: number;
  /** Data points received on /v1/metrics (accepted and ignored: runtel's points travel as log records). */
  ignoredMetricDataPoints: number;
  /** `ml.*` log records the translator rejected (reported as partial success). */
  rejectedLogRecords: number;
  /** Run events forwarded (to each target). */
  events: number;
  /** Artifacts recorded as `runtel.artifact.<name>` tags (their files stay where they were logged). */
  artifacts: number;
  /** Requests answered "retry later" because a run's identity was not known yet. */
  heldForIdentity: number;
  /** Requests answered "retry later" because their data was not delivered within ackTimeoutMillis. */
  ackTimeouts: number;
  /** Runs finished `crashed` because nothing arrived for them for staleAfterMillis. */
  crashedRuns: number;
  /** Crashed runs that spoke again afterwards (taken back: running again until their own end). */
  revivedRuns: number;
}

/** The senders' own queue bound: well above the bridge's, so a request taken just under it never makes a sender drop points. */
export function senderQueueLimit(maxQueuedPoints: number): number {
  return Math.max(1_000_000, 5 * maxQueuedPoints);
}

export class Ingest {
  readonly sinks: OtelRunSink[];
  private readonly _translator: OtelRunTranslator;
  private readonly _settler: FinishSettler;
  private readonly _directory: RunDirectory;
  private readonly _stale: StaleRuns;
  private readonly _options: IngestOptions;
  private readonly _stats: IngestStats = { logRecords: 0, spans: 0, ignoredMetricDataPoints: 0, rejectedLogRecords: 0, events: 0, artifacts: 0, heldForIdentity: 0, ackTimeouts: 0, crashedRuns: 0, revivedRuns: 0 };

  constructor(options: IngestOptions) {
    this._options = options;
    this.sinks = options.targets.map((target) => {
      const sink = new OtelRunSink(target, options.onError);
      sink.acquire();
      return sink;
    });
    this._settler = new FinishSettler(options.finishSettleMillis, (events) => this._deliver(events));
    this._translator = new OtelRunTranslator({ maxRuns: options.maxRuns, maxSeenPointsPerRun: options.maxSeenPointsPerRun, maxSeenPoints: options.maxSeenPoints });
    this._directory = new RunDirectory({ finders: options.finders, orphanGraceMillis: options.orphanGraceMillis, maxRuns: Math.max(10 * options.maxRuns, 10_000) });
    this._stale = new StaleRuns({ staleAfterMillis: options.staleAfterMillis, maxRuns: Math.max(10 * options.maxRuns, 10_000), onStale: (runId, heard) => this._crashed(runId, heard) });
  }

  stats(): IngestStats & { lookupFailures: number; rememberedPoints: number; droppedKeys: number } {
    return { ...this._stats, lookupFailures: this._directory.lookupFailures, rememberedPoints: this._translator.seenPoints, droppedKeys: this._translator.stats().droppedKeys };
  }

  /** Metric points queued in the targets (the largest of them). */
  queuedPoints(): number {
    let max = 0;
    for (const target of this._options.targets) max = Math.max(max, target.stats?.().queuedPoints ?? 0);
    return max;
  }

  /** True while the targets hold as many points as the bridge takes: new data is refused for a while. */
  busy(): boolean {
    return this.queuedPoints() >= this._options.maxQueuedPoints;
  }

  /** Takes one decoded export request; resolves once its data is delivered to every target. */
  async export(signal: OtlpSignal, inputs: ExportInputs): Promise<ExportOutcome> {
    if (signal === 'metrics') {
      this._stats.ignoredMetricDataPoints += inputs.metricDataPoints;
      return { rejected: 0, message: '' };
    }
    const { logs, spans } = inputs;
    const runs = requestRuns(logs, spans);
    // A run whose data comes is alive, even if the request must wait (a busy bridge must not call its runs crashed).
    const now = Date.now();
    for (const runId of runs.touched) if (this._translator.isOpen(runId)) this._stale.heard(runId, now);
    const queued = this.queuedPoints();
    if (queued >= this._options.maxQueuedPoints) throw this._busy(`${queued} metric points are waiting for the targets`);
    // From here to the translation nothing is changed until the request is known to be taken.
    await this._identify(logs, runs);
    this._stats.logRecords += logs.length;
    this._stats.spans += spans.length;

    let events: RunEvent[];
    let rejected = 0;
    if (signal === 'logs') {
      const before = this._translator.stats().rejected;
      events = artifactsAsTags(this._translator.logs(startsFirst(logs)), logs, (n) => (this._stats.artifacts += n));
      rejected = this._translator.stats().rejected - before;
    } else {
      events = this._translator.spans(spans);
    }
    for (const event of events) if (event.type === 'run_started' && event.resumed === true && this._stale.wasCrashed(event.runId)) this._stats.revivedRuns++;
    for (const runId of runs.touched) {
      if (this._translator.isOpen(runId)) this._stale.heard(runId, now);
      else this._stale.forget(runId);
    }
    this._deliver(this._settler.take(events));
    for (const runId of runs.touched) if (this._translator.complete(runId)) this._settler.release(runId);
    this._stats.rejectedLogRecords += rejected;
    const undelivered = await this._acknowledged(runs.touched, events);
    const notes: string[] = [];
    if (rejected > 0) notes.push(`${rejected} ml.* log record(s) lacked ml.run.id or had an invalid metric key or value, or run status`);
    if (undelivered.length > 0) notes.push(`the data of ${undelivered.length} run(s) cannot be delivered to ${undelivered.join(', ')} (a permanent error; see the bridge's log)`);
    return { rejected, message: notes.join('; ') };
  }

  /** Delivers everything held or queued so far. */
  async flush(): Promise<void> {
    this._settler.flush();
    await Promise.all(this.sinks.map((s) => s.backend.forceFlush()));
  }

  /** Releases held finishes and shuts the targets down (delivering within their deadline). */
  async close(): Promise<void> {
    this._stale.stop();
    this._settler.flush();
    await Promise.all(this.sinks.map((s) => s.release()));
  }

  /** A run nothing arrived for: finished `crashed` at the time it was last heard of, through the same delivery path as any event. */
  private _crashed(runId: string, heardMillis: number): void {
    const seconds = Math.round(this._options.staleAfterMillis / 100) / 10;
    const events = this._translator.crashed(runId, heardMillis, {
      type: 'Crashed',
      message: `nothing (record, span or heartbeat) reached the bridge for ${seconds} s: the process is presumed dead`,
    });
    if (events.length === 0) return;
    this._stats.crashedRuns++;
    this._stale.crashed(runId);
    this._deliver(events);
  }

  private _deliver(events: RunEvent[]): void {
    if (events.length === 0) return;
    for (const sink of this.sinks) sink.deliver(events);
    this._stats.events += events.length;
  }

  /**
   * Waits until every target that acknowledges (the MLflow and W&B senders) has delivered what each
   * touched run was handed so far: a resent request waits for the first copy's data too. Returns
   * the targets that gave up on one of those runs.
   */
  private async _acknowledged(touched: Set<string>, events: RunEvent[]): Promise<string[]> {
    const acks = this._options.targets.filter((t) => t.position !== undefined && t.whenDelivered !== undefined);
    if (acks.length === 0 || touched.size === 0) return [];
    const work = (async () => {
      // A run's end this request brought is held back a moment (FinishSettler); it counts too.
      const finished = new Set(events.filter((e) => e.type === 'run_finished').map((e) => e.runId));
      await Promise.all([...finished].map((runId) => this._settler.released(runId)));
      const lost = new Set<string>();
      await Promise.all(
        acks.flatMap((target) =>
          [...touched].map(async (runId) => {
            const seq = target.position!(runId);
            if (seq !== undefined && !(await target.whenDelivered!(runId, seq))) lost.add(target.name);
          }),
        ),
      );
      return [...lost];
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this._options.ackTimeoutMillis);
      timer.unref();
    });
    try {
      const outcome = await Promise.race([work, timeout]);
      if (outcome !== 'timeout') return outcome;
    } finally {
      clearTimeout(timer);
    }
    this._stats.ackTimeouts++;
    // The data stays queued and goes on; the sender keeps the request and sends it again.
    for (const runId of touched) this._translator.mayBeResent(runId);
    throw this._busy(`its data was not delivered to the targets within ${this._options.ackTimeoutMillis} ms`);
  }

  /**
   * Makes sure every run these records touch has its identity on the record that may create it
   * (see RunDirectory). Throws "busy" when a run's start has not been seen yet or the targets cannot
   * take the request's points, and changes nothing then.
   */
  private async _identify(logs: OtelLogInput[], runs: RequestRuns): Promise<void> {
    const queued = this.queuedPoints();
    const limit = senderQueueLimit(this._options.maxQueuedPoints);
    if (runs.points > limit) throw new IngestError('too-large', `${runs.points} metric points in one request; at most ${limit}`);
    if (runs.points > 0 && queued + runs.points > limit) throw this._busy(`${queued} metric points are waiting for the targets`);
    const resolutions = runs.needed.size === 0 ? new Map<string, Resolution>() : await this._directory.resolve(runs.needed);
    const waiting = [...resolutions.values()].filter((r) => r.kind === 'wait').length;
    if (waiting > 0) {
      this._stats.heldForIdentity++;
      throw new IngestError('busy', `${waiting} run(s) whose ml.run.start has not arrived yet; retry later`, 1);
    }
    // Identities a request brings are learnt only if it is taken: a request answered "retry later"
    // comes again whole, and its start record must then still create the run.
    for (const [runId, identity] of runs.brought) this._directory.learn(runId, identity);
    for (const [runId, resolution] of resolutions) if (resolution.kind === 'orphan') this._directory.accepted(runId);
    if (runs.needed.size === 0) return;
    for (const record of logs) {
      const runId = stringAttr(record.attributes, ATTR_RUN_ID);
      const identity = runId === undefined || !runs.needed.has(runId) ? undefined : this._directory.identity(runId);
      if (identity !== undefined) withIdentity(record.attributes, identity);
    }
  }

  private _busy(why: string): IngestError {
    return new IngestError('busy', `the bridge is busy (${why}); retry later`, this._options.retryAfterSeconds);
  }
}
