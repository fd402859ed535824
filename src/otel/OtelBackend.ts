// The OpenTelemetry backend: turns run events into spans, log records and instruments, following
// conventions.ts (documented in docs/semantic-conventions.md).
//
// Run -> span (root for top-level runs, child of the parent run's span when nested). Every metric
// point -> one `ml.metric` log record in the run span's context (the hot path, here). Run
// lifecycle, params, tags and artifacts -> log records too (RunRecords), so a consumer can rebuild a
// run live. Params, tags and final metrics on the span within its attribute limit
// (SpanAttributeBudget). Gauges for dashboards with a bounded number of series (RunGauges).

import { ROOT_CONTEXT, SpanStatusCode, context, metrics, trace } from '@opentelemetry/api';
import type { Attributes, Context, Meter, Span, Tracer } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import type { LogAttributes } from '@opentelemetry/api-logs';
import type { RunBackend } from '../core/RunBackend.js';
import type { ArtifactEvent, MetricsEvent, RunEvent, RunFinishedEvent, RunStartedEvent, SystemMetricsEvent } from '../core/events.js';
import type { BackendFailure } from '../core/errors.js';
import { getNumberFromEnv } from '../core/env.js';
import { heartbeatInterval } from '../core/liveness.js';
import { sha256Of } from '../core/artifacts.js';
import {
  ATTR_ARTIFACT_ERROR,
  ATTR_ARTIFACT_KIND,
  ATTR_ARTIFACT_NAME,
  ATTR_ARTIFACT_PATH,
  ATTR_ARTIFACT_SHA256,
  ATTR_ARTIFACT_SIZE,
  ATTR_EVENT_NAME,
  ATTR_EXPERIMENT_NAME,
  ATTR_RUN_ID,
  ATTR_RUN_NAME,
  ATTR_RUN_PARENT_ID,
  ATTR_RUN_RESUMED,
  ATTR_RUN_METRIC_RECORDS_COUNT,
  ATTR_RUN_STATUS,
  ATTR_SYSTEM_STEP,
  EVENT_ARTIFACT,
  EVENT_SYSTEM,
  SYSTEM_ATTR_PREFIX,
  EVENT_METRIC,
  EVENT_RUN_HEARTBEAT,
  RUNTEL_SCOPE,
} from './conventions.js';
import { processDeliveryStats } from './CountingBatchLogRecordProcessor.js';
import type { DeliveryStats, DeliveryStatsSource } from './CountingBatchLogRecordProcessor.js';
import { ProviderFlusher } from './ProviderFlusher.js';
import { RunGauges } from './RunGauges.js';
import type { Latest, RunMetrics } from './RunGauges.js';
import { RunRecords } from './RunRecords.js';
import { SystemGauges } from './SystemGauges.js';
import { SYSTEM_PREFIX } from '../system/collect.js';
import { SpanAttributeBudget } from './SpanAttributeBudget.js';
import { UNCOUNTABLE_LINE, deliveryCountable, reportOrWrite, setupWarnings, slowProvider, undeliveredLine } from './setupReport.js';
import type { OtelBackendOptions } from './OtelBackendOptions.js';
import { carrierOf, contextFromCarrier } from './traceCarrier.js';
import { traceEnv } from '../core/processParent.js';

export type { OtelBackendOptions } from './OtelBackendOptions.js';

interface RunState {
  id: string;
  name: string;
  experiment: string;
  /** The parent run when it is in this process (its end flushes the providers); not one from the environment. */
  parentId: string | undefined;
  span: Span;
  /** ROOT_CONTEXT (or the parent run's context) with this run's span: log records are emitted in it. */
  ctx: Context;
  startTime: number;
  metrics: RunMetrics;
  budget: SpanAttributeBudget;
  pendingArtifacts: Set<Promise<void>>;
  /** Settles once the run's end is emitted (it waits for its artifacts' hashes). */
  ended: Promise<void> | undefined;
  /** Something was emitted since the heartbeat timer last looked (one store on the hot path, nothing more). */
  active: boolean;
  /** Since when the heartbeat timer has seen the run quiet (or last sent a heartbeat for it). */
  quietSince: number;
  /** ml.metric and ml.system records emitted: its end says how many (ATTR_RUN_METRIC_RECORDS_COUNT). */
  metricRecords: number;
}

interface Instruments {
  tracer: Tracer;
  records: RunRecords;
  gauges: RunGauges;
  /** Made with the first system sample. */
  system?: SystemGauges;
  meter: Meter;
}

function countLimit(option: number | undefined, envName: string): number {
  const value = option ?? getNumberFromEnv(envName) ?? getNumberFromEnv('OTEL_ATTRIBUTE_COUNT_LIMIT') ?? 128;
  if (!(value >= 1)) throw new RangeError(`attribute count limit must be at least 1, got ${value}`);
  return Math.floor(value);
}

export class OtelBackend implements RunBackend {
  readonly name = 'otel';
  /** The owning logger's failure reporter: asynchronous failures (artifact hashing, setup) go there. */
  private _report: ((failure: BackendFailure) => void) | undefined;
  private readonly _options: OtelBackendOptions;
  private readonly _spanLimit: number;
  private readonly _recordLimit: number;
  private readonly _delivery: DeliveryStatsSource;
  private readonly _undeliveredBaseline: number;
  private _undeliveredReported = 0;
  private readonly _runs = new Map<string, RunState>();
  /** Recently finished runs: flushRun reads whether a run was nested after it left `_runs`. */
  private readonly _finished = new Map<string, RunState>();
  /** Finished runs whose end waits for artifact hashes, by id. */
  private readonly _ending = new Map<string, Promise<void>>();
  private readonly _pending = new Set<Promise<void>>();
  /** Provider flushes not settled yet, by signal (for the "did not finish" message). */
  private readonly _flusher: ProviderFlusher;
  private _instruments: Instruments | undefined;
  private readonly _heartbeatMillis: number;
  private _heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(options: OtelBackendOptions = {}) {
    this._options = options;
    this._flusher = new ProviderFlusher(options);
    this._heartbeatMillis = heartbeatInterval(options.heartbeatIntervalMillis);
    this._spanLimit = countLimit(options.spanAttributeCountLimit, 'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT');
    this._recordLimit = countLimit(options.logRecordAttributeCountLimit, 'OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT');
    this._delivery = options.delivery ?? { deliveryStats: processDeliveryStats };
    this._undeliveredBaseline = this._delivery.deliveryStats().undelivered;
  }

  bindFailureReporter(report: (failure: BackendFailure) => void): void {
    this._report = report;
  }

  onEvent(event: RunEvent): void {
    switch (event.type) {
      case 'metrics':
        return this._onMetrics(event);
      case 'system_metrics':
        return this._onSystem(event);
      case 'run_started':
        return this._onStarted(event);
      case 'params': {
        const run = this._runs.get(event.runId);
        if (run === undefined) return;
        run.active = true;
        run.budget.params(run.span, event.params);
        this._instruments!.records.params(run.ctx, run.id, event.params, event.time);
        return;
      }
      case 'tags': {
        const run = this._runs.get(event.runId);
        if (run === undefined) return;
        run.active = true;
        run.budget.tags(run.span, event.tags);
        this._instruments!.records.tags(run.ctx, run.id, event.tags, event.time);
        return;
      }
      case 'artifact':
        return this._onArtifact(event);
      case 'run_finished':
        return this._onFinished(event);
    }
  }

  /** TRACEPARENT / TRACESTATE of the run span: the launched process's run spans continue it. */
  childEnv(runId: string): Record<string, string> | undefined {
    const run = this._runs.get(runId) ?? this._finished.get(runId);
    return run === undefined ? undefined : traceEnv(carrierOf(run.span));
  }

  runInContext<T>(runId: string, fn: () => T): T {
    const run = this._runs.get(runId);
    return run === undefined ? fn() : context.with(trace.setSpan(context.active(), run.span), fn);
  }

  /**
   * A run's end: its artifact records and end are emitted, and for a top-level run the tracer and
   * logger providers are flushed. A nested run does not flush them (its parent's end will), and no
   * run flushes the meter provider (the gauges are exported on their own schedule).
   */
  async flushRun(runId: string): Promise<void> {
    await this._ending.get(runId);
    const run = this._runs.get(runId) ?? this._finished.get(runId);
    if (run?.parentId !== undefined) return;
    await this._flusher.flush(['traces', 'logs']);
    this._reportUndelivered();
  }

  /** Waits for pending artifact hashes and deferred run ends, then flushes the tracer, meter and logger providers. */
  async forceFlush(): Promise<void> {
    await this._settlePending();
    await this._flusher.flush(['traces', 'metrics', 'logs']);
    this._reportUndelivered();
  }

  /** Flushes; shuts down the providers runtel started (their shutdown flushes, and gives up at the first failed export). */
  async shutdown(): Promise<void> {
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = undefined;
    try {
      if (this._options.ownedSdk === undefined) {
        await this.forceFlush();
      } else {
        await this._settlePending();
        await this._options.ownedSdk.shutdown();
      }
    } finally {
      this._instruments?.gauges.remove();
      this._instruments?.system?.remove();
      this._reportUndelivered();
      if (this._instruments !== undefined && !deliveryCountable(this._options.delivery !== undefined)) reportOrWrite(this._report, 'delivery', UNCOUNTABLE_LINE);
    }
  }

  /** What is still flushing, for the logger's "did not finish" message. */
  describePending(): string | undefined {
    const slow = this._flusher.flushing().map((signal) => slowProvider(signal, this._options.ownedSdk !== undefined));
    return slow.length === 0 ? undefined : slow.join('; ');
  }

  /**
   * Log records undelivered since this backend was created (see `DeliveryStats`), or undefined when
   * runtel cannot know: no CountingBatchLogRecordProcessor exists (the SDK's own drops silently).
   */
  undeliveredCount(): number | undefined {
    if (!deliveryCountable(this._options.delivery !== undefined)) return undefined;
    return this._delivery.deliveryStats().undelivered - this._undeliveredBaseline;
  }

  /** The delivery counts of the processor(s) this backend reports on. */
  deliveryStats(): DeliveryStats {
    return this._delivery.deliveryStats();
  }

  /** Metric points not mirrored on the `ml.metric` gauge because of the cardinality bound. */
  gaugeOverflow(): { runs: number; keys: number } {
    return { ...(this._instruments?.gauges.overflow ?? { runs: 0, keys: 0 }) };
  }

  // ---- events ----

  private _onMetrics(event: MetricsEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    const { records, gauges } = this._instruments!;
    const logger = records.logger;
    const gate = this._options.exclusiveProcessor;
    const { step, timestamp, values } = event;
    const ctx = run.ctx;
    const runId = run.id;
    const latestByKey = run.metrics.latest;
    run.active = true;
    let emitted = 0;
    for (const key in values) {
      const value = values[key]!;
      if (gate === undefined || gate.hasRoom()) {
        // Literal keys keep this object literal fast; they are ATTR_METRIC_KEY, ATTR_METRIC_VALUE, ATTR_METRIC_STEP, ATTR_RUN_ID.
        const attributes: LogAttributes = {
          'ml.metric.key': key,
          'ml.metric.value': value < 9223372036854775808 && value > -9223372036854775808 ? value : String(value),
          'ml.metric.step': step,
          'ml.run.id': runId,
        };
        if (records.eventNameAttribute) attributes[ATTR_EVENT_NAME] = EVENT_METRIC;
        logger.emit({ eventName: EVENT_METRIC, timestamp, context: ctx, attributes });
        emitted++;
      } else {
        gate.countRefused(1);
      }
      const latest = latestByKey.get(key);
      if (latest === undefined) {
        latestByKey.set(key, gauges.newSeries(run.metrics, run, key, step, timestamp, value));
      } else {
        if (step > latest.step || (step === latest.step && timestamp >= latest.timestamp)) {
          latest.step = step;
          latest.timestamp = timestamp;
          latest.value = value;
        }
        if (latest.gaugeAttrs === undefined) gauges.overflow[run.metrics.stepAttrs === undefined ? 'runs' : 'keys']++;
      }
    }
    if (step > run.metrics.maxStep) run.metrics.maxStep = step;
    run.metricRecords += emitted;
  }

  private _onStarted(event: RunStartedEvent): void {
    const { tracer, records } = this._ensureInstruments();
    const parent = event.parentId === undefined ? undefined : this._runs.get(event.parentId);
    // A top-level run starts a new trace whatever span is active in the caller's context; a run
    // whose parent is in the launching process continues that process's span (TRACEPARENT).
    const parentCtx = parent !== undefined ? parent.ctx : contextFromCarrier(event.parentTrace);
    const identity: Attributes = { [ATTR_RUN_ID]: event.runId, [ATTR_RUN_NAME]: event.name, [ATTR_EXPERIMENT_NAME]: event.experiment };
    if (event.parentId !== undefined) identity[ATTR_RUN_PARENT_ID] = event.parentId;
    if (event.resumed === true) identity[ATTR_RUN_RESUMED] = true;
    const span = tracer.startSpan(event.name, { startTime: event.startTime, attributes: identity }, parentCtx);
    const run: RunState = {
      id: event.runId,
      name: event.name,
      experiment: event.experiment,
      parentId: parent?.id,
      span,
      ctx: trace.setSpan(parentCtx, span),
      startTime: event.startTime,
      metrics: { latest: new Map<string, Latest>(), maxStep: -1, stepAttrs: undefined, gaugeKeys: 0 },
      budget: new SpanAttributeBudget(this._spanLimit),
      pendingArtifacts: new Set(),
      ended: undefined,
      active: false,
      quietSince: Date.now(),
      metricRecords: 0,
    };
    this._runs.set(run.id, run);
    this._ensureHeartbeats();
    run.budget.params(span, event.params);
    run.budget.tags(span, event.tags);
    records.start(run.ctx, run.id, identity, event.params, event.tags, event.startTime);
  }

  private _onArtifact(event: ArtifactEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    run.active = true;
    // Hashing reads the file: emit when the hash is ready; forceFlush and the run's end wait for it.
    const work = sha256Of(event.path).then(
      (sha256) => this._emitArtifact(run, event, { [ATTR_ARTIFACT_SHA256]: sha256 }),
      (error: unknown) => {
        this._report?.({ backend: this.name, operation: 'artifact', error });
        this._emitArtifact(run, event, { [ATTR_ARTIFACT_ERROR]: error instanceof Error ? error.message : String(error) });
      },
    );
    this._track(work, run.pendingArtifacts);
  }

  private _emitArtifact(run: RunState, event: ArtifactEvent, hash: Attributes): void {
    const attributes: Attributes = {
      [ATTR_ARTIFACT_PATH]: event.path,
      [ATTR_ARTIFACT_NAME]: event.name,
      [ATTR_ARTIFACT_KIND]: event.kind,
      [ATTR_ARTIFACT_SIZE]: event.size,
      ...hash,
    };
    run.span.addEvent(EVENT_ARTIFACT, attributes, event.time);
    this._instruments!.records.emit(run.ctx, EVENT_ARTIFACT, event.time, { [ATTR_RUN_ID]: run.id, ...(attributes as LogAttributes) });
  }

  /** A system sample: one `ml.system` record (the bridge makes MLflow's `system/*` of it) and the semantic-convention gauges. */
  private _onSystem(event: SystemMetricsEvent): void {
    const run = this._runs.get(event.runId);
    if (run === undefined) return;
    run.active = true;
    const instruments = this._instruments!;
    const attributes: LogAttributes = { [ATTR_RUN_ID]: run.id, [ATTR_SYSTEM_STEP]: event.step };
    for (const key in event.values) if (key.startsWith(SYSTEM_PREFIX)) attributes[SYSTEM_ATTR_PREFIX + key.slice(SYSTEM_PREFIX.length)] = event.values[key]!;
    instruments.records.emit(run.ctx, EVENT_SYSTEM, event.timestamp, attributes);
    run.metricRecords++;
    instruments.system ??= new SystemGauges(instruments.meter);
    instruments.system.sample(run.id, { [ATTR_RUN_ID]: run.id, [ATTR_RUN_NAME]: run.name, [ATTR_EXPERIMENT_NAME]: run.experiment }, event.values);
  }

  private _onFinished(event: RunFinishedEvent): void {
    this._instruments?.system?.finished(event.runId);
    const run = this._runs.get(event.runId);
    if (run === undefined) {
      // A supervisor that saw another process's run die says so: its ml.run.end is all there is.
      if (event.status === 'crashed') this._ensureInstruments().records.end(ROOT_CONTEXT, event.runId, event.status, event.error, event.endTime);
      return;
    }
    this._runs.delete(run.id);
    this._finished.set(run.id, run);
    if (this._finished.size > 1000) this._finished.delete(this._finished.keys().next().value!);
    if (run.pendingArtifacts.size === 0) {
      this._end(run, event);
      return;
    }
    // Artifact records first, then the end: the span must still be open for their events.
    const work = Promise.allSettled([...run.pendingArtifacts]).then(() => this._end(run, event));
    this._ending.set(run.id, work);
    void work.finally(() => this._ending.delete(run.id));
    this._track(work);
  }

  private _end(run: RunState, event: RunFinishedEvent): void {
    const { records, gauges } = this._instruments!;
    const span = run.span;
    span.setAttributes({ [ATTR_RUN_STATUS]: event.status, [ATTR_RUN_METRIC_RECORDS_COUNT]: run.metricRecords, ...run.budget.finalAttributes(run.metrics.latest) });
    const error = event.error;
    if (error !== undefined) {
      const exception = error.stack === undefined ? { name: error.type, message: error.message } : { name: error.type, message: error.message, stack: error.stack };
      span.recordException(exception, event.endTime);
    }
    if (event.status === 'success') span.setStatus({ code: SpanStatusCode.OK });
    else if (event.status === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: error === undefined ? 'failed' : `${error.type}: ${error.message}` });
    else span.setStatus({ code: SpanStatusCode.ERROR, message: event.status });
    records.end(run.ctx, run.id, event.status, error, event.endTime, run.metricRecords);
    span.end(event.endTime);
    gauges.finished(run.metrics, event.status, run.experiment, event.endTime - run.startTime);
  }

  // ---- heartbeats ----

  /** One timer for all runs, looking every quarter interval; never keeps the process alive. */
  private _ensureHeartbeats(): void {
    if (this._heartbeatTimer !== undefined || !Number.isFinite(this._heartbeatMillis)) return;
    this._heartbeatTimer = setInterval(() => this._beat(), Math.max(1, this._heartbeatMillis / 4));
    this._heartbeatTimer.unref();
  }

  private _beat(): void {
    if (this._runs.size === 0) {
      clearInterval(this._heartbeatTimer);
      this._heartbeatTimer = undefined;
      return;
    }
    const now = Date.now();
    for (const run of this._runs.values()) {
      if (run.active) {
        run.active = false;
        run.quietSince = now;
      } else if (now - run.quietSince >= this._heartbeatMillis) {
        run.quietSince = now;
        this._instruments!.records.emit(run.ctx, EVENT_RUN_HEARTBEAT, now, { [ATTR_RUN_ID]: run.id });
      }
    }
  }

  // ---- setup and bookkeeping ----

  private _ensureInstruments(): Instruments {
    if (this._instruments !== undefined) return this._instruments;
    const o = this._options;
    const meter = (o.meterProvider ?? metrics.getMeterProvider()).getMeter(RUNTEL_SCOPE);
    this._instruments = {
      tracer: (o.tracerProvider ?? trace.getTracerProvider()).getTracer(RUNTEL_SCOPE),
      records: new RunRecords((o.loggerProvider ?? logs.getLoggerProvider()).getLogger(RUNTEL_SCOPE), this._recordLimit, o.eventNameAttribute ?? false),
      gauges: new RunGauges(meter, Math.max(0, Math.floor(o.maxGaugeRuns ?? 64)), Math.max(0, Math.floor(o.maxGaugeKeysPerRun ?? 30))),
      meter,
    };
    const explicit = { traces: o.tracerProvider !== undefined, metrics: o.meterProvider !== undefined, logs: o.loggerProvider !== undefined };
    for (const warning of setupWarnings(explicit, o.delivery !== undefined)) reportOrWrite(this._report, warning.startsWith('no global') ? 'setup' : 'delivery', warning);
    return this._instruments;
  }

  private _reportUndelivered(): void {
    const undelivered = this.undeliveredCount();
    if (undelivered === undefined || undelivered <= this._undeliveredReported) return;
    this._undeliveredReported = undelivered;
    const stats = this._delivery.deliveryStats();
    if (this._options.onUndelivered !== undefined) {
      try {
        this._options.onUndelivered(undelivered, stats);
      } catch {
        // A throwing handler must not reach training code.
      }
      return;
    }
    process.stderr.write(`runtel: otel: ${undeliveredLine(undelivered, stats)}\n`);
  }

  /** Waits for artifact hashes and deferred run ends (new ones may appear while waiting). */
  private async _settlePending(): Promise<void> {
    while (this._pending.size > 0) await Promise.allSettled([...this._pending]);
  }

  private _track(work: Promise<void>, also?: Set<Promise<void>>): void {
    const tracked = work.catch((error: unknown) => this._report?.({ backend: this.name, operation: 'onEvent', error }));
    this._pending.add(tracked);
    also?.add(tracked);
    void tracked.finally(() => {
      this._pending.delete(tracked);
      also?.delete(tracked);
    });
  }
}
